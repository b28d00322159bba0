"""Colours and terminal capabilities: when to use them and which.

Colour only on a terminal, never with ``NO_COLOR`` set to anything non-empty
(no-color.org), ``--no-color`` or ``TERM=dumb``. Cursor control (clearing the
line being typed before printing above it) needs a terminal that is not dumb;
it is not colour, so NO_COLOR keeps it.

Each name gets a stable colour from the 256-colour cube: a CRC of the name's
canonical form picks from the cube colours of middling luminance and some
saturation, which stay readable on dark and light backgrounds alike (the 16
theme colours, the greys and the near-black/near-white corners are left out).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from chatroom.protocol import name_key

_LEVELS: Final = (0, 95, 135, 175, 215, 255)


def _palette() -> tuple[int, ...]:
    colours = []
    for r in range(6):
        for g in range(6):
            for b in range(6):
                rgb = (_LEVELS[r], _LEVELS[g], _LEVELS[b])
                luma = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]
                if 95 <= luma <= 175 and max(r, g, b) - min(r, g, b) >= 2:
                    colours.append(16 + 36 * r + 6 * g + b)
    return tuple(colours)


PALETTE: Final = _palette()


def name_colour(name: str) -> int:
    """A 256-colour index for ``name``: the same in every run and every client."""
    return PALETTE[zlib.crc32(name_key(name).encode("utf-8")) % len(PALETTE)]


def colour_enabled(*, isatty: bool, no_color_flag: bool, env: Mapping[str, str]) -> bool:
    if no_color_flag or env.get("NO_COLOR", "") != "" or env.get("TERM", "") == "dumb":
        return False
    return isatty


def cursor_enabled(*, isatty: bool, env: Mapping[str, str]) -> bool:
    return isatty and env.get("TERM", "") != "dumb"


@dataclass(frozen=True, slots=True)
class Style:
    """SGR styling, or none at all when ``colour`` is off."""

    colour: bool

    def sgr(self, text: str, *codes: str | int) -> str:
        if not self.colour or not codes or not text:
            return text
        return f"\x1b[{';'.join(str(c) for c in codes)}m{text}\x1b[0m"

    def name(self, name: str, shown: str, *, own: bool = False, dim: bool = False) -> str:
        codes: list[str | int] = ["38", "5", name_colour(name)]
        if own:
            codes += ["1", "4"]
        if dim:
            codes.insert(0, "2")
        return self.sgr(shown, *codes)


# Styles of the kinds of line (SGR parameters).
TIME: Final = ("2",)
JOIN: Final = ("32",)
LEAVE: Final = ("33",)
TIMEOUT: Final = ("31",)
ANNOUNCE: Final = ("1", "35")
NOTICE: Final = ("36",)
ERROR: Final = ("1", "31")
HISTORY: Final = ("2",)
#: A direct message's arrow and text; the room's name on a line from another room.
DIRECT: Final = ("95",)
ROOM: Final = ("94",)
