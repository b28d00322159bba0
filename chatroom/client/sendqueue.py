"""The client's unacknowledged messages: sequence numbers, window, pacing, retries.

Each message gets the next sequence number and keeps it for life, so that any
retransmission (also after logging in again with ``resume``) is stored once by
the server. At most ``window`` messages are in flight; transmissions are paced
by a token bucket mirroring the server's advertised rate limit (WELCOME's
``BURST/PER_SECOND``; a SAY over the limit is not acknowledged, so pacing
ourselves saves a retransmission timeout), and retransmitted on the RFC 6298
timer of chatroom/rtt.py until ACKED or ``give_up_after``. Pure.

One queue for every conversation (the sequence numbers are the session's): each
message carries its conversation, ``chan`` as the wire names it and ``key`` its
canonical form. A message may be held back (``due``'s ``held``: its room is still
being joined), which holds those behind it too, so the typed order stays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from chatroom.events import LOBBY
from chatroom.rtt import RttEstimator


@dataclass(slots=True)
class Outgoing:
    seq: int
    text: str
    created: float
    #: When it first left: giving up counts from here, not from ``created``, since
    #: a line queued behind others (a paste, a slow path) has not been tried yet.
    first_sent: float | None = None
    sent_at: float | None = None
    tries: int = 0
    deadline: float = 0.0
    rto: float = 0.0
    #: The conversation: ``#room`` or ``@peer`` as sent, and its canonical key.
    chan: str = LOBBY
    key: str = LOBBY
    #: The user was shown it as pending (it waited): its delivery is marked.
    pending_shown: bool = False


@dataclass(slots=True)
class Pacer:
    """A token bucket; ``None`` rate means unlimited."""

    burst: float = 0.0
    per_second: float = 0.0
    tokens: float = 0.0
    at: float = 0.0

    @classmethod
    def from_rate(cls, rate: str, now: float) -> Pacer | None:
        """Parse WELCOME's ``BURST/PER_SECOND`` (or ``off``), a little under it so
        that network jitter cannot push us over the server's bucket."""
        burst_s, sep, per_s = rate.partition("/")
        try:
            burst, per = float(burst_s), float(per_s)
        except ValueError:
            return None  # "off", or nothing we understand: do not pace
        if not sep or burst < 1 or per <= 0:
            return None
        burst = max(1.0, burst - 1)
        return cls(burst, per * 0.95, burst, now)

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.at) * self.per_second)
        self.at = max(self.at, now)

    def take(self, now: float) -> bool:
        self._refill(now)
        if self.tokens >= 1.0 - 1e-9:  # ready_at() must never be a time take() refuses
            self.tokens -= 1.0
            return True
        return False

    def ready_at(self) -> float:
        """When the next token is there (tokens were last counted at ``at``)."""
        return self.at + max(0.0, 1.0 - self.tokens) / self.per_second + 1e-9


@dataclass(slots=True)
class Outbox:
    window: int = 1
    give_up_after: float = 60.0
    rtt: RttEstimator = field(default_factory=lambda: RttEstimator(minimum=0.02))
    pacer: Pacer | None = None
    items: dict[int, Outgoing] = field(default_factory=dict)
    next_seq: int = 1
    _blocked: bool = False

    def __len__(self) -> int:
        return len(self.items)

    def add(self, text: str, now: float, chan: str = LOBBY, key: str = LOBBY) -> Outgoing:
        item = Outgoing(self.next_seq, text, now, chan=chan, key=key)
        self.items[item.seq] = item
        self.next_seq += 1
        return item

    def due(
        self, now: float, held: Callable[[str], bool] | None = None
    ) -> tuple[list[Outgoing], list[Outgoing]]:
        """(to transmit now, given up). Transmitting is recorded here. A message
        whose conversation key ``held`` says to hold is not transmitted: not yet
        sent, it waits and so does every message typed after it; in flight, its
        retransmission waits."""
        gave_up = [
            o
            for o in self.items.values()
            if o.first_sent is not None and now >= o.first_sent + self.give_up_after
        ]
        for o in gave_up:
            del self.items[o.seq]
        send: list[Outgoing] = []
        in_flight = sum(1 for o in self.items.values() if o.sent_at is not None)
        self._blocked = False
        for o in self.items.values():  # in seq order: dicts keep insertion order
            if o.sent_at is None:
                if in_flight >= self.window or (held is not None and held(o.key)):
                    break
                rto = self.rtt.rto
                in_flight += 1
            elif now >= o.deadline and (held is None or not held(o.key)):
                rto = self.rtt.backoff(o.rto)
            else:
                continue
            if self.pacer is not None and not self.pacer.take(now):
                self._blocked = True
                break
            self._record(o, now, rto)
            send.append(o)
        return send, gave_up

    def _record(self, o: Outgoing, now: float, rto: float) -> None:
        if o.first_sent is None:
            o.first_sent = now
        o.sent_at = now
        o.tries += 1
        o.rto = rto
        o.deadline = now + rto

    def acked(self, seq: int, now: float) -> Outgoing | None:
        """An ACKED: the message it settles, or None if not ours or not new."""
        o = self.items.pop(seq, None)
        if o is None:
            return None
        if o.tries == 1 and o.sent_at is not None:
            self.rtt.sample(now - o.sent_at)  # Karn: only unambiguous samples
        return o

    def rejected(self, seq: int) -> Outgoing | None:
        """A REJECTED: the message it settles (never to be stored), if ours."""
        return self.items.pop(seq, None)

    def drop(self, key: str) -> list[Outgoing]:
        """Take out every message for conversation ``key`` (it cannot be joined)."""
        gone = [o for o in self.items.values() if o.key == key]
        for o in gone:
            del self.items[o.seq]
        return gone

    def has(self, key: str) -> bool:
        """Is a message for conversation ``key`` still waiting or in flight?"""
        return any(o.key == key for o in self.items.values())

    def stored_as_event(self, text: str, key: str = LOBBY) -> bool:
        """Our own message came back as an event before its ACKED (which may be
        lost): the oldest in-flight message of conversation ``key`` with that
        text is stored. Only a message of our own session can carry our name
        while we hold it."""
        return self.claim(text, key) is not None

    def claim(self, text: str, key: str = LOBBY) -> Outgoing | None:
        """``stored_as_event``, returning the message it settles."""
        for o in self.items.values():
            if o.sent_at is not None and o.text == text and o.key == key:
                del self.items[o.seq]
                return o
        return None

    def resend_now(self, now: float) -> None:
        """The path is back: make everything in flight due at once, fresh timer."""
        for o in self.items.values():
            if o.sent_at is not None:
                o.deadline = now
                o.rto = self.rtt.rto / 2  # due() doubles it back

    def deadline(self, held: Callable[[str], bool] | None = None) -> float | None:
        """When ``due`` has something to do (a held message waits for an input,
        not for the clock)."""
        times = [
            o.first_sent + self.give_up_after
            for o in self.items.values()
            if o.first_sent is not None
        ]
        times += [
            o.deadline
            for o in self.items.values()
            if o.sent_at is not None and (held is None or not held(o.key))
        ]
        if self._blocked and self.pacer is not None:
            times.append(self.pacer.ready_at())
        return min(times) if times else None

    def drain(self) -> list[Outgoing]:
        items = list(self.items.values())
        self.items.clear()
        return items
