"""Retransmission timeout: the RFC 6298 estimator, with clamps suited to a chat.

Shared by both ends: the client times its SAY retries with it, the server
(chatroom/delivery.py) its EV retransmissions.

RFC 6298 sets a 1 s minimum RTO for TCP; over UDP on today's networks Linux's
200 ms floor is the usual choice and keeps a lost message from stalling a
conversation for a second. The server keeps that floor (its samples include our
client's 200 ms ack delay). The client uses 20 ms: what it times (SAY -> ACKED,
PULL -> EV) is answered without delay, and QUIC (RFC 9002) likewise has no floor
beyond its timer granularity; on a real path srtt + 4 rttvar is above 20 ms
anyway, so the floor only matters on a LAN, where 200 ms was most of the
latency under loss (docs/benchmarks.md). A spurious SAY retry is harmless: the
server answers it from its (session, seq) map. The maximum is clamped to 8 s (RFC 6298 allows 60 s),
because the client also probes the path on its own (see session.py) and a user
waiting longer than that wants to know. Samples follow Karn's rule: only from
frames that were sent once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

ALPHA: Final = 1 / 8
BETA: Final = 1 / 4
K: Final = 4
#: Clock granularity G of RFC 6298: our clock is monotonic in seconds (float).
GRANULARITY: Final = 0.001


@dataclass(slots=True)
class RttEstimator:
    initial: float = 1.0
    minimum: float = 0.2
    maximum: float = 8.0
    srtt: float | None = None
    rttvar: float = 0.0

    @property
    def rto(self) -> float:
        if self.srtt is None:
            return self.clamp(self.initial)
        return self.clamp(self.srtt + max(GRANULARITY, K * self.rttvar))

    def clamp(self, value: float) -> float:
        return min(self.maximum, max(self.minimum, value))

    def sample(self, rtt: float) -> None:
        """Feed one round-trip time measured on a frame that was not retransmitted."""
        rtt = max(0.0, rtt)
        if self.srtt is None:
            self.srtt = rtt
            self.rttvar = rtt / 2
        else:
            self.rttvar = (1 - BETA) * self.rttvar + BETA * abs(self.srtt - rtt)
            self.srtt = (1 - ALPHA) * self.srtt + ALPHA * rtt

    def backoff(self, rto: float) -> float:
        """The next timeout after ``rto`` expired (exponential, clamped)."""
        return self.clamp(rto * 2)
