"""Is the server still there? Heartbeats, probes and the "connection lost" state.

Pure bookkeeping for the session (times are passed in):

* a heartbeat PING every ~idle_timeout/3, jittered down to a quarter (15-20 s
  for the default 60 s), keeps the session alive on the server and, since PONG
  carries the newest event id, notices a lost tail; the session brings it
  forward after an announcement (the server's shutdown notice is one). Given
  the wall clock, it goes on a whole ``HEARTBEAT_GRID`` of it: a server with
  thousands of idle sessions then gets their heartbeats in bursts, one
  wake-up for hundreds of them, where spread out each cost it a wake-up of its
  own (bench/test_bench_crowd.py: a loop answering 500 heartbeats a second
  spends ~3x the CPU spread out as in bursts of 50; docs/architecture.md);
* when anything that calls for an answer (LOGIN, SAY, PULL, PING, WHO) has gone
  unanswered for ``probe_after``, PINGs probe the path (backing off to
  ``probe_max``); after ``lost_after`` the user is told the connection is lost;
  the first valid frame from the server ends that.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Final

#: Heartbeats go on whole half seconds of the wall clock (see above). Half a
#: second, not a tenth: at 10,000 idle sessions a server answering them in
#: bursts of ~250 twice a second spent 0.84-0.87% CPU against 1.32-1.37% for
#: bursts of ~50 ten times a second (each wake-up starts with cold caches:
#: 16 µs a heartbeat against 25 µs; docs/architecture.md, "Large rooms").
HEARTBEAT_GRID: Final = 0.5


def heartbeat_grid(idle_timeout: float) -> float:
    """The grid for a server's ``idle_timeout``: ``HEARTBEAT_GRID``, or a
    hundredth of the timeout if that is shorter, so that rounding a heartbeat
    up to the grid never eats into a short timeout's margin (a test's 1 s)."""
    return min(HEARTBEAT_GRID, idle_timeout / 100)


def on_grid(at: float, wall_offset: float, grid: float = HEARTBEAT_GRID) -> float:
    """The first monotonic time >= ``at`` that falls on the heartbeat grid of
    the wall clock (``wall_offset``: wall time minus monotonic time, now)."""
    wall = at + wall_offset
    return math.ceil(wall / grid - 1e-9) * grid - wall_offset


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
    #: ``next_ping`` is on the grid (or no wall clock was ever given).
    aligned: bool = False
    #: The grid's step (``heartbeat_grid`` of the server's idle timeout).
    grid: float = HEARTBEAT_GRID

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

    def schedule_ping(
        self, now: float, idle_timeout: float, rng: random.Random, wall: float | None = None
    ) -> None:
        """The next heartbeat; on the wall clock's grid when ``wall`` (the wall
        time at ``now``) is given."""
        fraction = 0.25 + rng.random() * (1 / 3 - 0.25)
        self.next_ping = now + idle_timeout * fraction
        self.aligned = False
        self.grid = heartbeat_grid(idle_timeout)
        if wall is not None:
            self.align(now, wall)

    def align(self, now: float, wall: float) -> None:
        """Put the next heartbeat on the grid, once: a heartbeat scheduled where
        no wall time was at hand (a WELCOME) moves at the next tick. Never
        again after that: the two clocks, read a few microseconds apart, would
        otherwise push an aligned time to the next grid point at every tick."""
        if not self.aligned:
            self.next_ping = on_grid(self.next_ping, wall - now, self.grid)
            self.aligned = True

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
