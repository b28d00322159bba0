"""Reliable delivery of one conversation to one session: window, acks, retransmission.

Pure: times come in as arguments. A v2 session has one ``Outbox`` per
conversation it is in (ids are the conversation's own positions).
Events are pushed live while fewer than ``WINDOW`` are unacknowledged; beyond
that the session is *held* and catches up from the room's ring as acks arrive,
so a slow or dead client never makes the server queue without bound.
Unacknowledged events are retransmitted after an RFC 6298 retransmission timeout
(SRTT/RTTVAR with alpha 1/8, beta 1/4, K = 4, Karn's rule: no samples from
retransmitted events, exponential back-off on each expiry).

The clamp is [0.2 s, 4 s] rather than RFC 6298's 1 s minimum: on a LAN or
loopback a chat line should not wait a full second for its retransmission, and
our client acknowledges within 0.2 s anyway (that delay is part of every sample).

The window is 256 events. It bounds memory and a dead client's cost, not the pace
(the per-session rate limit paces senders). It was 64 until the benchmark of ten
busy senders (bench/test_bench_v2.py, 160 lines in flight in the room) showed
every session held nearly all the time: each event then went out once per
session from the catch-up path instead of once in the fan-out, and waited for an
ACK round trip. At 256 that room fans out live; a session's state stays a few
kilobytes, and a retransmission burst is still ``BURST`` events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from chatroom.rtt import RttEstimator

WINDOW: Final = 256  # see the module docstring
RTO_INITIAL: Final = 1.0
RTO_MIN: Final = 0.2
RTO_MAX: Final = 4.0
#: Most events retransmitted per expiry (the oldest ones; the client pulls the rest).
BURST: Final = 8


@dataclass(slots=True)
class Outbox:
    """What one v2 session has been sent and has acknowledged."""

    acked: int
    sent_upto: int
    #: First-transmission time of each unacked id; None once retransmitted (Karn).
    sent_at: dict[int, float | None] = field(default_factory=dict)
    estimator: RttEstimator = field(
        default_factory=lambda: RttEstimator(RTO_INITIAL, RTO_MIN, RTO_MAX)
    )
    #: The current timeout: the estimator's, doubled on each expiry until a sample.
    rto: float = RTO_INITIAL
    #: When the oldest unacked event is due for retransmission (None: nothing due).
    deadline: float | None = None
    #: When the client was first heard from after its WELCOME (None: not yet).
    #: Events sent before that cannot give a round-trip sample: a client whose
    #: WELCOME was lost acknowledges them only once a retried LOGIN gets through,
    #: and that wait (3.2 s in the simulation) would inflate the timeout for long.
    heard_at: float | None = None
    #: A conversation the client was not told the start of (a direct message out
    #: of the blue): one event at a time until the client acknowledges one. The
    #: client starts such a conversation at the first event it sees, so the
    #: first must be the oldest; a later one overtaking a lost first would make
    #: the client start past it and never show it.
    probation: bool = False
    #: The deadline of its entry in the server's timer heap (timers.py; None:
    #: not in it), which ``alarm`` puts it in when a deadline appears, or
    #: comes earlier than that entry (an ACK ended a back-off).
    scheduled: float | None = None
    alarm: Callable[[], None] | None = None

    def can_push(self, event_id: int) -> bool:
        """True when ``event_id`` is the next in sequence and fits the window."""
        window = 1 if self.probation else WINDOW
        return event_id == self.sent_upto + 1 and event_id - self.acked <= window

    def pushed(self, event_id: int, now: float) -> None:
        self.sent_upto = event_id
        self.sent_at[event_id] = now
        if self.deadline is None:
            self.deadline = now + self.rto
            self._wake()

    def _wake(self) -> None:
        """Tell the timer heap about a deadline earlier than its entry's."""
        due, entry = self.deadline, self.scheduled
        if self.alarm is not None and due is not None and (entry is None or due < entry):
            self.alarm()

    def ack(self, upto: int, now: float) -> bool:
        """A cumulative ack. Returns True when it advanced (the window opened)."""
        if upto <= self.acked:
            return False
        self.probation = False
        sample: float | None = None
        last = min(upto, self.sent_upto)
        heard = self.heard_at
        for event_id in range(self.acked + 1, last + 1):
            sent = self.sent_at.pop(event_id, None)
            # Only the largest id acknowledged gives a sample (QUIC's rule, RFC
            # 9002 5.1): an older one acknowledged late because the ACK that
            # covered it was lost, or was waiting behind a hole, would measure
            # that wait, not the path (a 3.2 s first sample kept one session's
            # timeout at 4 s for a whole run in the simulation).
            if event_id == last and sent is not None and heard is not None and sent >= heard:
                sample = now - sent
        self.acked = upto
        self.sent_upto = max(self.sent_upto, upto)
        if sample is not None:
            self.estimator.sample(sample)
        # Progress proves the path works: the back-off collapses to the estimate
        # even without a sample (QUIC resets its PTO back-off on any newly
        # acknowledged data, RFC 9002 6.2.1). Keeping a 4 s back-off after a
        # lossy burst left a lost last event waiting 4 s for its retransmission.
        self.rto = self.estimator.rto
        self.deadline = now + self.rto if self.sent_at else None
        self._wake()
        return True

    def expired(self, now: float) -> list[int]:
        """Ids to retransmit now (oldest first), backing the timer off."""
        if self.deadline is None or now < self.deadline:
            return []
        due = sorted(self.sent_at)[:BURST]
        for event_id in due:
            self.sent_at[event_id] = None
        self.rto = self.estimator.backoff(self.rto)
        self.deadline = now + self.rto if self.sent_at else None
        return due

    def catch_up(self, last_id: int) -> range:
        """Ids a held session may be sent now that its window has room."""
        stop = min(last_id, self.acked + (1 if self.probation else WINDOW))
        return range(self.sent_upto + 1, stop + 1)
