"""What the server keeps for a v2 client beyond its registry entry."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from chatroom.ratelimit import Bucket
from chatroom.server.delivery import Outbox

#: How many (seq -> event) answers a session remembers for idempotent retries.
SEQ_MEMORY: Final = 1024


@dataclass(slots=True)
class Session:
    sid: str
    nonce: str
    last_seen: float
    #: The room the session logged in to (WELCOME names it).
    home: str
    #: What the latest WELCOME said: the newest position of ``home`` before the
    #: session's join, or, after a move to a new address, before that move (the
    #: client pulls anything newer; an older one would make it start over).
    base_id: int
    bucket: Bucket | None
    #: seq -> (conversation key, position): the answer to a retried SAY.
    seqs: dict[int, tuple[str, int]] = field(default_factory=dict)
    #: In a cluster: messages sent for numbering and storing, not yet back
    #: (a retry meanwhile is dropped: its ACKED is on its way).
    pending: set[int] = field(default_factory=set)
    #: One reliable stream per conversation the session is in.
    subs: dict[str, Outbox] = field(default_factory=dict)
    #: The JOINED answer of each conversation joined with JOIN (a retry gets it again).
    joined_at: dict[str, int] = field(default_factory=dict)
    #: Taken back after a server restart: rooms it re-joins where it never left
    #: are not announced again.
    resumed: bool = False
    #: The client has been heard from since its WELCOME (round-trip samples
    #: start only then; see Outbox.heard_at).
    heard: bool = False
    #: Its slot in the idle wheel (timers.py): the second it was last heard.
    slot: int = -1
    #: Puts one of its streams in the retransmission heap (timers.py).
    alarm: Callable[[str, Outbox], None] | None = None

    def remember(self, seq: int, key: str, pos: int) -> None:
        self.seqs[seq] = (key, pos)
        if len(self.seqs) > SEQ_MEMORY:
            del self.seqs[next(iter(self.seqs))]

    def subscribe(self, key: str, base: int, now: float, *, probation: bool = False) -> Outbox:
        """A new stream of conversation ``key`` starting after position ``base``."""
        outbox = Outbox(base, base, probation=probation)
        if self.alarm is not None:
            outbox.alarm = functools.partial(self.alarm, key, outbox)
        if self.heard:
            outbox.heard_at = now
        self.subs[key] = outbox
        return outbox

    def hear(self, now: float) -> None:
        """Any valid frame from the client."""
        self.last_seen = now
        if not self.heard:
            self.heard = True
            for outbox in self.subs.values():
                outbox.heard_at = now
