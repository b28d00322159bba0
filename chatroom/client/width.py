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


def end_position(text: str, columns: int) -> tuple[int, int]:
    """(row, column) just after ``text`` written from the start of a row on a
    terminal ``columns`` wide that wraps by itself, as readline lays out its
    line: a wide character that does not fit at the end of a row goes to the
    next one. The column may equal ``columns`` (the terminal's pending wrap)."""
    columns = max(1, columns)
    row = col = 0
    for ch in text:
        w = char_width(ch)
        if col + w > columns and col > 0:
            row, col = row + 1, 0
        col += w
    return row, col


def rows_of(text: str, columns: int) -> int:
    """How many screen rows ``text`` occupies (at least one)."""
    return end_position(text, columns)[0] + 1


def cursor_row(before: str, after: str, columns: int) -> int:
    """The row of the cursor, counted from the first row of the line, when
    ``before`` is left of it and ``after`` right of it: the cursor sits on the
    next character, which may have had to move to the next row; at the end of a
    full row it is on the next one (readline puts it there)."""
    row, col = end_position(before, columns)
    nxt = char_width(after[0]) if after else 1
    return row + 1 if col + max(1, nxt) > max(1, columns) else row
