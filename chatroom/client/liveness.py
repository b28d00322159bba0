"""Is the server still there? Heartbeats, probes and the "connection lost" state.

Pure bookkeeping for the session (times are passed in):

* a heartbeat PING every ~idle_timeout/3, jittered down to a quarter (15-20 s
  for the default 60 s), keeps the session alive on the server and, since PONG
  carries the newest event id, notices a lost tail; the session brings it
  forward after an announcement (the server's shutdown notice is one);
* when anything that calls for an answer (LOGIN, SAY, PULL, PING, WHO) has gone
  unanswered for ``probe_after``, PINGs probe the path (backing off to
  ``probe_max``); after ``lost_after`` the user is told the connection is lost;
  the first valid frame from the server ends that.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(slots=True)
class Liveness:
    probe_after: float = 1.0
    probe_max: float = 2.0
    lost_after: float = 4.0
    lost: bool = False
    next_ping: float = 0.0
    #: When the one outstanding heartbeat was sent (an RTT sample), if unambiguous.
    ping_sent: float | None = None
    awaiting: float | None = None
    next_probe: float | None = None
    probe_gap: float = 0.0

    def expect(self, now: float) -> None:
        """We sent something that calls for an answer."""
        if self.awaiting is None:
            self.awaiting = now
            self.probe_gap = self.probe_after
            self.next_probe = now + self.probe_after

    def heard(self, *, ends_outage: bool) -> bool:
        """A valid frame from the server. True if it ends a "connection lost"
        period (only frames that prove the session works may: ``ends_outage``)."""
        self.awaiting = None
        self.next_probe = None
        if self.lost and ends_outage:
            self.lost = False
            return True
        return False

    def schedule_ping(self, now: float, idle_timeout: float, rng: random.Random) -> None:
        fraction = 0.25 + rng.random() * (1 / 3 - 0.25)
        self.next_ping = now + idle_timeout * fraction

    def check_soon(self, at: float) -> None:
        """Bring the next heartbeat forward to ``at`` (if it is later)."""
        self.next_ping = min(self.next_ping, at)

    def ping_sent_at(self, now: float, *, probe: bool) -> None:
        """Record a PING: only a lone heartbeat gives an unambiguous RTT sample."""
        self.ping_sent = now if self.ping_sent is None and not probe else None
        self.expect(now)

    def pong(self, now: float) -> float | None:
        """A PONG: the RTT sample it gives, if any."""
        sent, self.ping_sent = self.ping_sent, None
        return None if sent is None else now - sent

    def probe_due(self, now: float) -> bool:
        """True (once per probe interval) while an answer is overdue."""
        if self.next_probe is None or now < self.next_probe:
            return False
        self.probe_gap = min(self.probe_gap * 2, self.probe_max)
        self.next_probe = now + self.probe_gap
        return True

    def became_lost(self, now: float) -> bool:
        """True once, when an answer has been overdue for ``lost_after``."""
        if self.lost or self.awaiting is None or now < self.awaiting + self.lost_after:
            return False
        self.lost = True
        return True

    def deadlines(self, *, live: bool) -> list[float]:
        times = []
        if live:
            times.append(self.next_ping)
            if self.next_probe is not None:
                times.append(self.next_probe)
        if self.awaiting is not None and not self.lost:
            times.append(self.awaiting + self.lost_after)
        return times
