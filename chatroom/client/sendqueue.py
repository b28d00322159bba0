"""The client's unacknowledged messages: sequence numbers, window, pacing, retries.

Each message gets the next sequence number and keeps it for life, so that any
retransmission (also after logging in again with ``resume``) is stored once by
the server. At most ``window`` messages are in flight; transmissions are paced
by a token bucket mirroring the server's advertised rate limit (WELCOME's
``BURST/PER_SECOND``; a SAY over the limit is not acknowledged, so pacing
ourselves saves a retransmission timeout), and retransmitted on the RFC 6298
timer of chatroom/rtt.py until ACKED or ``give_up_after``. Pure. The bucket is
chatroom/ratelimit.py's, the server's own kind.

One queue for every conversation (the sequence numbers are the session's): each
message carries its conversation, ``chan`` as the wire names it and ``key`` its
canonical form. A message may be held back (``due``'s ``held``: its room is still
being joined), which holds those behind it too, so the typed order stays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from chatroom.events import LOBBY
from chatroom.ratelimit import Bucket, Rate
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


def pacer_for(rate: str, now: float) -> Bucket | None:
    """The token bucket we pace ourselves by, from WELCOME's ``BURST/PER_SECOND``
    (``off``, or anything we do not understand: None, no pacing), a little under
    the server's so that network jitter cannot push us over its bucket."""
    try:
        limit = Rate.parse(rate)
    except ValueError:
        return None
    if limit is None:
        return None
    burst = max(1.0, limit.burst - 1)
    return Bucket.full(Rate(burst, limit.per_second * 0.95), now)


@dataclass(slots=True)
class SendQueue:
    """The session's messages not yet acknowledged, in the order typed. (Not the
    server's ``Outbox``, which holds a conversation's events for one session.)"""

    window: int = 1
    give_up_after: float = 60.0
    rtt: RttEstimator = field(default_factory=lambda: RttEstimator(minimum=0.02))
    pacer: Bucket | None = None
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

    def claim(self, text: str, key: str = LOBBY) -> Outgoing | None:
        """Our own message came back as an event before its ACKED (which may be
        lost): the oldest in-flight message of conversation ``key`` with that
        text is stored; returns it, taken out. Only a message of our own session
        can carry our name while we hold it."""
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
