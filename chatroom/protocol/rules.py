"""What a name and a chat message may contain; uniqueness and reservation rules."""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from typing import Final

from chatroom.confusables import skeletons
from chatroom.protocol.frames import MAX_NAME, MAX_TEXT, PEER_PREFIX, ROOM_PREFIX
from chatroom.sanitize import BIDI_CONTROLS

_RESERVED: Final = frozenset(
    {
        "admin",
        "administrator",
        "operator",
        "server",
        "system",
        "root",
        "moderator",
        "mod",
        "sysop",
        "announcement",
        "管理员",
        "管理员消息",
        "系统",
        "系统消息",
        "*",
        "-",
    }
)

# Bidi overrides/isolates/marks: reordering tricks that let a message disguise itself.
_BIDI: Final = frozenset(map(chr, BIDI_CONTROLS))


@cache
def _reserved_skeletons() -> frozenset[str]:
    return frozenset(sk for name in _RESERVED for sk in skeletons(name))


def name_key(name: str) -> str:
    """The canonical form used for uniqueness: NFKC then casefold, so ``Alice``,
    ``ALICE`` and fullwidth ``Ａｌｉｃｅ`` are one name."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def check_name(raw: str) -> tuple[str, str | None]:
    """Normalise a requested name. Returns (name, None) or (raw, reason-code).

    Codes: ``invalid`` (empty, too long, whitespace/control/format characters)
    and ``reserved`` (impersonates the operator).
    """
    name = unicodedata.normalize("NFC", raw)
    if not 1 <= len(name) <= MAX_NAME:
        return raw, "invalid"
    if name[0] in ROOM_PREFIX + PEER_PREFIX:  # those start rooms and direct conversations
        return raw, "invalid"
    for ch in name:
        cat = unicodedata.category(ch)
        if ch.isspace() or cat[0] in "CZ" or ch in _BIDI:
            return raw, "invalid"
    key = name_key(name)
    if any(sk in _reserved_skeletons() for sk in skeletons(name)):
        return raw, "reserved"
    if key in _RESERVED or key.startswith("管理员") or key.startswith("admin"):
        return raw, "reserved"
    return name, None


def check_room(raw: str) -> tuple[str, str | None]:
    """Normalise a requested room name (``#`` and a name). Returns (room, None)
    or (raw, ``badroom``). A room follows the name rules for its characters and
    length (reserved words are a user-name matter: ``#admin`` is a fine room)."""
    if not raw.startswith(ROOM_PREFIX):
        return raw, "badroom"
    body = unicodedata.normalize("NFC", raw[len(ROOM_PREFIX) :])
    if not 1 <= len(body) <= MAX_NAME:
        return raw, "badroom"
    for ch in body:
        if ch.isspace() or unicodedata.category(ch)[0] in "CZ" or ch in _BIDI or ch == ":":
            return raw, "badroom"
    return ROOM_PREFIX + body, None


def room_key(room: str) -> str:
    """A room's canonical form (unique ignoring case and width, like names)."""
    return ROOM_PREFIX + name_key(room[len(ROOM_PREFIX) :])


# What bad_text_char refuses, as one character class: a regex scans in C, where a
# Python loop over the characters cost ~40 ns each on every message (the profile in
# docs/benchmarks.md).
_BAD_TEXT: Final = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f" + "".join(sorted(_BIDI)) + "]")


def text_too_long(text: str) -> bool:
    """Over MAX_TEXT bytes of UTF-8 (see chatroom/protocol/frames.py for why)."""
    return len(text) > MAX_TEXT // 4 and len(text.encode("utf-8")) > MAX_TEXT


def bad_text_char(text: str) -> str | None:
    """The first character a chat message may not contain, or None.

    C0 and C1 controls, DEL and bidi controls are refused: they can drive or
    disguise a terminal. Tab is allowed (rendered as a space by clients).
    """
    bad = _BAD_TEXT.search(text)
    return bad.group() if bad is not None else None
