"""Display width of text on a terminal (CJK and emoji take two columns), padding
and wrapping by columns rather than by characters. Built on wcwidth."""

from __future__ import annotations

from wcwidth import wcwidth


def char_width(ch: str) -> int:
    w: int = wcwidth(ch)
    return 1 if w < 0 else w  # non-printables never reach here (visible()); be safe


def display_width(text: str) -> int:
    return sum(char_width(ch) for ch in text)


def pad_left(text: str, width: int) -> str:
    """Right-align ``text`` in ``width`` columns (longer text is left as is)."""
    return " " * max(0, width - display_width(text)) + text


def wrap(text: str, width: int) -> list[str]:
    """Split ``text`` into lines of at most ``width`` columns, at spaces when
    possible; never splits a wide character. ``width`` < 1 means no wrapping."""
    if width < 1 or display_width(text) <= width:
        return [text]
    lines: list[str] = []
    line: list[str] = []
    used = 0
    last_space = -1  # index in ``line`` of the last space
    for ch in text:
        w = char_width(ch)
        if used + w > width:
            if ch == " ":
                lines.append("".join(line))
                line, used, last_space = [], 0, -1
                continue
            if last_space > 0:  # break at the last space
                lines.append("".join(line[:last_space]))
                line = line[last_space + 1 :]
                used = sum(char_width(c) for c in line)
                last_space = -1
            if used + w > width:  # no space to break at (or still too long): hard break
                lines.append("".join(line))
                line, used, last_space = [], 0, -1
        if ch == " ":
            last_space = len(line)
        line.append(ch)
        used += w
    lines.append("".join(line))
    return lines
