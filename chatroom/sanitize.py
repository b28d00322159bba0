"""Make stored or received text safe to print on a terminal.

A chat message is someone else's bytes. Printed raw, ``ESC ] 52 ; c ; ... BEL`` would
write the reader's clipboard, ``ESC ] 0 ; ...`` retitle the window, ``ESC [ 2 J`` clear
the screen, ``CSI 21 t`` make some terminals type the title back as input, and a
right-to-left override (U+202E) reorder what the reader sees. :func:`visible` replaces
every such character with a visible escape, so the text can only ever be text.
"""

from __future__ import annotations

from typing import Final

#: Bidirectional formatting characters (Trojan Source, CVE-2021-42574): embeddings and
#: overrides, isolates, the implicit marks and the Arabic letter mark. Reordering
#: tricks that let a text disguise itself: escaped here, refused in names and
#: messages (chatroom/protocol/rules.py).
BIDI_CONTROLS: Final = (
    *range(0x202A, 0x202F),  # LRE RLE PDF LRO RLO
    *range(0x2066, 0x206A),  # LRI RLI FSI PDI
    0x200E,  # LRM
    0x200F,  # RLM
    0x061C,  # ALM
)
#: The same plus the Unicode line and paragraph separators, which some terminals
#: treat as new lines: escaped on output, allowed in a message.
BIDI_AND_SEPARATORS: Final = (
    *BIDI_CONTROLS,
    0x2028,  # LINE SEPARATOR
    0x2029,  # PARAGRAPH SEPARATOR
)


def _escape(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _table() -> dict[int, str]:
    table = {code: _escape(code) for code in range(0x20)}  # C0, including ESC and BEL
    table[0x7F] = _escape(0x7F)  # DEL
    table.update({code: _escape(code) for code in range(0x80, 0xA0)})  # C1 (CSI, OSC...)
    table.update({code: _escape(code) for code in BIDI_AND_SEPARATORS})
    table[0x09] = " "  # a tab is harmless, only its width is not
    return table


_TABLE: Final = _table()


def visible(text: str) -> str:
    """``text`` with every control character, DEL and bidi control shown as an escape.

    ``"\\x1b]52;c;aGk=\\x07"`` becomes ``"\\\\x1b]52;c;aGk=\\\\x07"`` (the backslash is
    literal): the sequence is printed, never interpreted. Newlines and carriage
    returns are escaped too, so a message cannot forge a line of its own. A tab becomes
    one space. Everything else, including every printable non-ASCII letter, is kept.
    """
    return text.translate(_TABLE)
