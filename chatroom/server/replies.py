"""Error replies, and the checks of a message's text both dialects share.

An error reply goes at most once a second to any address (the guard decides),
so forged datagrams cannot turn the server into a traffic source against a
third party.
"""

from __future__ import annotations

from collections import Counter

from chatroom import protocol as p
from chatroom.registry import Address
from chatroom.server.effects import Effect, Send
from chatroom.server.guard import Guard


class Replies:
    def __init__(self, guard: Guard, stats: Counter[str]) -> None:
        self.guard = guard
        self.stats = stats

    def error(self, addr: Address, now: float, payload: bytes) -> list[Effect]:
        if not self.guard.may_reply_error(addr, now):
            self.stats["errors.suppressed"] += 1
            return []
        return [Send(payload, (addr,))]


def text_problem(text: str) -> str | None:
    """Why a message text is refused (``badtext``, ``toolong``), or None."""
    if p.bad_text_char(text) is not None:
        return "badtext"
    if p.text_too_long(text):
        return "toolong"
    return None
