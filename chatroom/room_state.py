"""The room's state and the machinery both dialects share.

What lives here: the configuration and the values the room hands the server
(``Send``, ``Store``), the registry and v2 sessions, the ring of recent events,
the abuse guard, event numbering and fan-out (``_publish``), name admission and
departures. chatroom/room.py adds the dialects on top: what each datagram means.
"""

from __future__ import annotations

import functools
import ipaddress
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final, Literal

from chatroom import protocol as p
from chatroom.confusables import skeletons
from chatroom.delivery import Outbox
from chatroom.events import Event, EventKind
from chatroom.guard import Guard
from chatroom.ratelimit import Bucket, Rate
from chatroom.registry import Address, Registry, User
from chatroom.ring import Ring

ClassicPolicy = Literal["loopback", "any", "off"]

#: A chat pace: five lines at once, one a second after that.
DEFAULT_RATE: Final = Rate(5, 1)
#: Validated logins per source IP: room for a family behind one NAT.
DEFAULT_LOGIN_RATE: Final = Rate(10, 1)

#: How many (seq -> id) answers a session remembers for idempotent retries.
SEQ_MEMORY: Final = 1024
#: Most events answered to one PULL (the client pages for more).
MAX_PULL: Final = 32


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``payload`` to each address (encoded once, sent many times)."""

    payload: bytes
    addrs: tuple[Address, ...]


@dataclass(frozen=True, slots=True)
class Store:
    """Persist ``event`` before any Send of the same batch goes out."""

    event: Event


Effect = Send | Store


@dataclass(slots=True)
class Session:
    """What the room keeps for a v2 client beyond its registry entry."""

    sid: str
    nonce: str
    last_seen: float
    #: What the latest WELCOME said: the newest event id before the session's
    #: join, or, after a move to a new address, before that move (the client
    #: pulls anything newer; an older id would make it start over).
    base_id: int
    outbox: Outbox
    bucket: Bucket | None
    seqs: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RoomConfig:
    lang: p.Lang = "en"
    classic: ClassicPolicy = "loopback"
    idle_timeout: float = 60.0
    ring_size: int = 10_000
    #: Require the stateless cookie round trip before a v2 login (anti-spoofing).
    validate_addresses: bool = True
    #: Per-session message rate (None: off).
    rate: Rate | None = DEFAULT_RATE
    #: Most v2 sessions from one IP address (0: unlimited).
    max_sessions_per_ip: int = 16
    #: Validated logins per source IP (None: off).
    login_rate: Rate | None = DEFAULT_LOGIN_RATE


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


class RoomState:
    """Shared state and helpers of ``Room`` (see chatroom/room.py)."""

    def __init__(
        self,
        registry: Registry,
        token: Callable[[], str],
        config: RoomConfig | None = None,
        *,
        last_id: int = 0,
        recent: Iterable[Event] = (),
    ) -> None:
        self.registry = registry
        self.config = config or RoomConfig()
        self.stats: Counter[str] = Counter()
        self._token = token
        self._last_id = last_id
        self._ring = Ring(self.config.ring_size, recent, encode=lambda e: p.encode(p.EventFrame(e)))
        self._sessions: dict[str, User] = {}
        self._next_idle_check = 0.0
        self._guard = Guard(
            lambda: bytes.fromhex(token() + token()),
            rate=self.config.rate,
            login_rate=self.config.login_rate,
            max_sessions_per_ip=self.config.max_sessions_per_ip,
        )
        #: Look-alike keys of the names online (chatroom/confusables.py).
        self._skeletons: dict[str, str] = {}
        # The time of the input being handled; set at every public entry point so
        # that helpers need not thread it through.
        self._now = 0.0
        self._wall = 0.0

    # ------------------------------------------------------------------ queries

    @property
    def last_id(self) -> int:
        return self._last_id

    def users(self) -> list[str]:
        return [u.name for u in self.registry]

    def _classic_allowed(self, addr: Address) -> bool:
        policy = self.config.classic
        return policy == "any" or (policy == "loopback" and is_loopback(addr))

    def _users_frame(self) -> bytes:
        names: list[str] = []
        size = 40
        total = 0
        for u in self.registry:
            total += 1
            size += len(u.name.encode()) + 1
            if size < p.MAX_DATAGRAM:
                names.append(u.name)
        return p.encode(p.Users(total, tuple(names)))

    # ------------------------------------------------------------------ shared

    def _publish(
        self,
        kind: EventKind,
        name: str,
        text: str,
        *,
        exclude: Address | None,
        session: str | None = None,
        seq: int | None = None,
        sender: User | None = None,
    ) -> list[Effect]:
        """Store a new event and fan it out: classic users other than ``exclude``
        get the course's line; every v2 session gets the EV frame, except the
        v2 ``sender`` of a message: its ACKED (with the event's time) is its copy,
        so the event counts as pushed to it (retransmitted as an EV if unacked)
        without a datagram of its own."""
        self._last_id += 1
        event_id = self._last_id
        event = Event(event_id, kind, name, text, self._wall, session, seq)
        self._ring.append(event)
        classic: list[Address] = []
        classic_nl: list[Address] = []
        v2: list[Address] = []
        now = self._now
        for u in self.registry:
            if u.session is not None:
                outbox: Outbox = u.session.outbox
                if outbox.can_push(event_id):  # else held: it catches up on its acks
                    outbox.pushed(event_id, now)
                    if u is not sender:
                        v2.append(u.address)
            elif u.address != exclude:
                (classic_nl if u.newline else classic).append(u.address)
        effects: list[Effect] = [Store(event)]
        if classic or classic_nl:
            plain = p.classic_event(self.config.lang, event)
            if classic:
                effects.append(Send(plain, tuple(classic)))
            if classic_nl:
                effects.append(Send(plain + b"\n", tuple(classic_nl)))
        if v2:
            # The ring's copy (encoded once for every later resend), unless the
            # ring keeps nothing (a ring size of 0).
            frame = self._ring.frame(event_id) or p.encode(p.EventFrame(event))
            effects.append(Send(frame, tuple(v2)))
        return effects

    def _check_new_name(self, raw: str) -> tuple[str, str | None]:
        """Normalise a requested name; the reason code if it cannot be had now."""
        name, why = p.check_name(raw)
        if why is not None:
            return name, why
        if self.registry.get(p.name_key(name)) is not None:
            return name, "taken"
        if any(sk in self._skeletons for sk in skeletons(name)):
            return name, "confusable"
        return name, None

    def _add(self, user: User) -> None:
        self.registry.add(user)
        for sk in skeletons(user.name):
            self._skeletons[sk] = user.key

    def _drop_user(self, user: User) -> None:
        for sk in skeletons(user.name):
            if self._skeletons.get(sk) == user.key:
                del self._skeletons[sk]
        self.registry.remove(user.key)
        if user.session is not None:
            self._sessions.pop(user.session.sid, None)
            self._guard.session_closed(user.address[0])
        else:
            self._guard.classic_closed(user.address)

    def _reply_error(self, addr: Address, now: float, payload: bytes) -> list[Effect]:
        if not self._guard.may_reply_error(addr, now):
            self.stats["errors.suppressed"] += 1
            return []
        return [Send(payload, (addr,))]
