"""The room's defences against abuse, as pure state: cookies, rate limits, caps.

Everything a stranger can make the server do is decided here (docs/security.md):
whether an address is validated (stateless cookies), how often anyone gets an
error reply, how fast a user may talk, how often an IP may log in and how many
sessions it may hold. Time comes in as ``now``; nothing here does I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable
from typing import Final, TypeVar

from chatroom.ratelimit import Bucket, Rate
from chatroom.registry import Address
from chatroom.server.cookies import CookieJar

#: At most one error reply per address per this many seconds: an off-path
#: attacker spoofing a victim's address gets at most this trickle sent there.
ERROR_INTERVAL: Final = 1.0
#: Tables keyed by peers are pruned once they grow past this many entries.
PRUNE_ABOVE: Final = 4096
#: A user who sends this many messages over their rate limit within one second is
#: a flood, not a fast typist: their address is muted for MUTE seconds, during
#: which its datagrams are dropped before they are even parsed. That is what keeps
#: one flooder from filling the socket buffer the other users share (see the flood
#: benchmark in docs/benchmarks.md). Only over-limit *messages* count — they need
#: a valid session (or, for classic peers, a loopback address) — never garbage,
#: whose source address an attacker could forge to get a victim muted.
STRIKES: Final = 50
MUTE: Final = 2.0


class Guard:
    def __init__(
        self,
        secret: Callable[[], bytes],
        *,
        rate: Rate | None,
        login_rate: Rate | None,
        max_sessions_per_ip: int,
    ) -> None:
        self.rate = rate
        self.login_rate = login_rate
        self.max_sessions_per_ip = max_sessions_per_ip
        self.cookies = CookieJar(secret)
        self._last_error: dict[Address, float] = {}
        self._classic_buckets: dict[Address, Bucket] = {}
        self._login_buckets: dict[str, Bucket] = {}
        self._per_ip: Counter[str] = Counter()
        self._strikes: dict[Address, tuple[float, int]] = {}
        self._muted: dict[Address, float] = {}

    # ------------------------------------------------------------------ errors

    def may_reply_error(self, addr: Address, now: float) -> bool:
        last = self._last_error.get(addr)
        if last is not None and now - last < ERROR_INTERVAL:
            return False
        self._last_error[addr] = now
        return True

    # ------------------------------------------------------------------ floods

    def muted(self, addr: Address, now: float) -> bool:
        """Whether datagrams from ``addr`` are being dropped unread (cheap: called
        for every datagram)."""
        if not self._muted:
            return False
        until = self._muted.get(addr)
        if until is None:
            return False
        if now < until:
            return True
        del self._muted[addr]
        return False

    def over_limit(self, addr: Address, now: float) -> bool:
        """Count one message refused by the rate limit; True when it mutes ``addr``."""
        start, count = self._strikes.get(addr, (now, 0))
        if now - start >= 1.0:
            start, count = now, 0
        if count + 1 >= STRIKES:
            self._strikes.pop(addr, None)
            self._muted[addr] = now + MUTE
            return True
        self._strikes[addr] = (start, count + 1)
        return False

    # ------------------------------------------------------------------ rates

    def session_bucket(self, now: float) -> Bucket | None:
        return Bucket.full(self.rate, now) if self.rate is not None else None

    def classic_message_allowed(self, addr: Address, now: float) -> bool:
        return _take(self._classic_buckets, addr, self.rate, now)

    def login_refusal(self, ip: str, replacing_session: bool, now: float) -> str | None:
        """Why a validated v2 login from ``ip`` is refused, if it is."""
        if not _take(self._login_buckets, ip, self.login_rate, now):
            return "ratelimited"
        in_use = self._per_ip[ip] - replacing_session
        if self.max_sessions_per_ip and in_use >= self.max_sessions_per_ip:
            return "full"
        return None

    # ------------------------------------------------------------------ bookkeeping

    def session_opened(self, ip: str) -> None:
        self._per_ip[ip] += 1

    def session_closed(self, ip: str) -> None:
        self._per_ip[ip] -= 1
        if self._per_ip[ip] <= 0:
            del self._per_ip[ip]

    def classic_closed(self, addr: Address) -> None:
        self._classic_buckets.pop(addr, None)

    def prune(self, now: float) -> None:
        """Forget stale per-peer entries (called about once a second)."""
        if len(self._last_error) > PRUNE_ABOVE:
            self._last_error = {
                a: t for a, t in self._last_error.items() if now - t < 2 * ERROR_INTERVAL
            }
        if len(self._strikes) > PRUNE_ABOVE:
            self._strikes = {a: s for a, s in self._strikes.items() if now - s[0] < 1.0}
        if len(self._login_buckets) > PRUNE_ABOVE:
            self._login_buckets = {
                ip: b for ip, b in self._login_buckets.items() if now - b.at < 60
            }


K = TypeVar("K", bound=Hashable)


def _take(buckets: dict[K, Bucket], key: K, rate: Rate | None, now: float) -> bool:
    if rate is None:
        return True
    bucket = buckets.get(key)
    if bucket is None:
        bucket = buckets[key] = Bucket.full(rate, now)
    return bucket.take(now)
