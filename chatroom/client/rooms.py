"""Conversations' names, and joining and leaving rooms. Pure.

A conversation is a room (``#dev``) or the direct messages with one peer
(``@bob``, from our point of view). ``chan_key`` is its canonical form (rooms and
names are unique ignoring case and width), which the session keys its state by;
the wire name it keeps for display and for the frames it sends.

``Requests`` keeps JOIN and PART going until they are answered: JOINED and
PARTED answer retries too, so each is simply sent again on a doubling timer
(from the path's retransmission timeout, capped at ``MAX_RTO``) until its answer
comes. One request per conversation is in flight at a time; asking the opposite
meanwhile (``/join #dev`` then ``/part #dev``) queues it behind the first, so
the server sees them in the order they were typed whatever the network does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal

from chatroom import protocol as p

#: A JOIN or PART is repeated with its timeout doubled, up to this.
MAX_RTO: Final = 2.0

Verb = Literal["join", "part"]


def chan_key(chan: str) -> str:
    """The canonical form of a conversation's wire name: ``room_key`` for a room,
    ``@`` and the name's key for a direct conversation."""
    if chan.startswith(p.PEER_PREFIX):
        return p.PEER_PREFIX + p.name_key(chan[len(p.PEER_PREFIX) :])
    return p.room_key(chan)


def is_direct(key: str) -> bool:
    """A direct conversation's key (or wire name)."""
    return key.startswith(p.PEER_PREFIX)


@dataclass(slots=True)
class Request:
    verb: Verb
    chan: str
    #: The opposite request, asked for while this one was in flight.
    then: Verb | None = None
    deadline: float = float("-inf")
    rto: float = 0.0
    tries: int = 0


@dataclass(slots=True)
class Requests:
    items: dict[str, Request] = field(default_factory=dict)

    def ask(self, key: str, chan: str, verb: Verb) -> None:
        """Ask to join or leave conversation ``key`` (``chan`` on the wire)."""
        r = self.items.get(key)
        if r is None:
            self.items[key] = Request(verb, chan)
        elif r.verb == verb:
            r.then = None  # back to what is being asked already
        else:
            r.then = verb

    def wants(self, key: str, verb: Verb) -> bool:
        """Is ``verb`` asked for ``key``, in flight or queued?"""
        r = self.items.get(key)
        return r is not None and verb in (r.verb, r.then)

    def joining(self, key: str) -> bool:
        """Is a JOIN of ``key`` in flight?"""
        r = self.items.get(key)
        return r is not None and r.verb == "join"

    def final(self, key: str) -> Verb | None:
        """What ``key`` will be once its requests are answered (None: none asked)."""
        r = self.items.get(key)
        return None if r is None else r.then or r.verb

    def answered(self, key: str, verb: Verb) -> bool:
        """JOINED or PARTED: True if it answers the request in flight (False: a
        duplicate, or an answer nobody asked for)."""
        r = self.items.get(key)
        if r is None or r.verb != verb:
            return False
        if r.then is not None:
            self.items[key] = Request(r.then, r.chan)
        else:
            del self.items[key]
        return True

    def due(self, now: float, rto: float, ready: Callable[[str, Request], bool]) -> list[Request]:
        """The requests to send now (recorded as sent): those due that are
        ``ready`` (a PART waits until our messages to the room have gone)."""
        out: list[Request] = []
        for key, r in self.items.items():
            if now < r.deadline or not ready(key, r):
                continue
            r.rto = rto if r.tries == 0 else min(r.rto * 2, MAX_RTO)
            r.tries += 1
            r.deadline = now + r.rto
            out.append(r)
        return out

    def deadline(self, ready: Callable[[str, Request], bool]) -> float | None:
        """When ``due`` has something to send (one not ``ready`` waits for an
        input, not for the clock)."""
        times = [r.deadline for key, r in self.items.items() if ready(key, r)]
        return min(times) if times else None

    def resend_now(self, now: float) -> None:
        """The path is back: send whatever is in flight again at once."""
        for r in self.items.values():
            if r.tries:
                r.deadline = now

    def restart(self) -> None:
        """A new session (after logging in again): every request afresh."""
        for r in self.items.values():
            r.deadline, r.rto, r.tries = float("-inf"), 0.0, 0
