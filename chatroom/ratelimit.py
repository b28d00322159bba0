"""Token buckets: the room's rate limits, with time passed in.

``--rate-limit BURST/PER_SECOND``: a session may send BURST messages at once and
PER_SECOND on average after that. Our client learns the limit from WELCOME and
paces itself; a message over the limit is not acknowledged, so a client that
does not pace simply retries later and nothing is lost.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rate:
    burst: float
    per_second: float

    @classmethod
    def parse(cls, text: str) -> Rate | None:
        """``"5/1"`` -> Rate(5, 1); ``"off"`` -> None. Raises ValueError."""
        if text.strip().lower() == "off":
            return None
        burst_s, sep, rate_s = text.partition("/")
        if not sep:
            raise ValueError("expected BURST/PER_SECOND, e.g. 5/1, or off")
        burst, rate = float(burst_s), float(rate_s)
        if not (burst >= 1 and rate > 0):
            raise ValueError("BURST must be >= 1 and PER_SECOND > 0")
        return cls(burst, rate)

    def __str__(self) -> str:
        return f"{self.burst:g}/{self.per_second:g}"


@dataclass(slots=True)
class Bucket:
    """A token bucket: the server's per-session and per-address limits, and the
    client's pacing of itself by the limit the server announced."""

    rate: Rate
    tokens: float
    at: float

    @classmethod
    def full(cls, rate: Rate, now: float) -> Bucket:
        return cls(rate, rate.burst, now)

    def tokens_at(self, now: float) -> float:
        """The tokens there are at ``now`` (none spent since ``at``)."""
        return min(self.rate.burst, self.tokens + max(0.0, now - self.at) * self.rate.per_second)

    def take(self, now: float) -> bool:
        """Spend one token if there is one."""
        self.tokens = self.tokens_at(now)
        self.at = max(self.at, now)
        if self.tokens >= 1.0 - 1e-9:  # ready_at() must never be a time take() refuses
            self.tokens -= 1.0
            return True
        return False

    def ready_at(self) -> float:
        """When the next token is there (tokens were last counted at ``at``)."""
        return self.at + max(0.0, 1.0 - self.tokens) / self.rate.per_second + 1e-9
