"""The server's settings and their defaults: the one place ``chatroom serve``
reads them from."""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from typing import Final, Literal

from chatroom import protocol as p
from chatroom.ratelimit import Rate
from chatroom.registry import Address

ClassicPolicy = Literal["loopback", "any", "off"]

#: A chat pace: five lines at once, one a second after that.
DEFAULT_RATE: Final = Rate(5, 1)
#: Validated logins per source IP: room for a family behind one NAT.
DEFAULT_LOGIN_RATE: Final = Rate(10, 1)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    lang: p.Lang = "en"
    classic: ClassicPolicy = "loopback"
    idle_timeout: float = 60.0
    #: Recent events kept in memory per conversation (PULL and retransmissions
    #: are answered from there, never from the database).
    ring_size: int = 10_000
    #: Require the stateless cookie round trip before a v2 login (anti-spoofing).
    validate_addresses: bool = True
    #: Per-session message rate (None: off).
    rate: Rate | None = DEFAULT_RATE
    #: Most v2 sessions from one IP address (0: unlimited).
    max_sessions_per_ip: int = 16
    #: Validated logins per source IP (None: off).
    login_rate: Rate | None = DEFAULT_LOGIN_RATE
    #: Most conversations (rooms and direct) one session may be in at once.
    max_conversations: int = 64

    def classic_allowed(self, addr: Address) -> bool:
        """Whether the classic dialect is served to ``addr`` (``--classic``)."""
        policy = self.classic
        return policy == "any" or (policy == "loopback" and is_loopback(addr))


def is_loopback(addr: Address) -> bool:
    return _is_loopback_host(addr[0])


@functools.lru_cache(maxsize=4096)
def _is_loopback_host(host: str) -> bool:
    # Cached: parsing the address cost ~1.6 us on every classic datagram, a fifth of
    # the room's time per message (docs/benchmarks.md, Profile). Bounded, so a flood
    # of source addresses only evicts entries (each miss costs what it did before).
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
