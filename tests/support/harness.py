"""The server core driven in-process: bytes and an explicit clock in, effects out.

`Harness` wraps a `Hub` and records what each address received and what was
stored; A, B, C are loopback peers and FAR a remote one (classic is loopback-only
by default).
"""

from __future__ import annotations

import itertools
from collections import defaultdict

from chatroom import protocol as p
from chatroom.registry import Address, make_registry
from chatroom.server import Effect, Hub, ServerConfig, Store

A: Address = ("127.0.0.1", 5001)
B: Address = ("127.0.0.1", 5002)
C: Address = ("127.0.0.1", 5003)
FAR: Address = ("203.0.113.9", 5004)


class Harness:
    """Drives a Room and records what each address received."""

    def __init__(self, kind: str, lang: p.Lang = "en", **config: object) -> None:
        counter = itertools.count(1)
        self.room = Hub(
            lambda: make_registry(kind),
            lambda: f"{next(counter):032x}",
            ServerConfig(lang=lang, **config),  # type: ignore[arg-type]
        )
        self.now = 100.0
        self.inbox: dict[Address, list[bytes]] = defaultdict(list)
        self.stored: list[Store] = []

    def send(self, addr: Address, data: bytes | str) -> list[Effect]:
        raw = data.encode() if isinstance(data, str) else data
        effects = self.room.handle(raw, addr, self.now, 1_700_000_000.0 + self.now)
        self._apply(effects)
        return effects

    def _apply(self, effects: list[Effect]) -> None:
        for e in effects:
            if isinstance(e, Store):
                self.stored.append(e)
            else:
                for a in e.addrs:
                    self.inbox[a].append(e.payload)

    def tick(self, seconds: float) -> list[Effect]:
        self.now += seconds
        effects = self.room.on_timer(self.now, 1_700_000_000.0 + self.now)
        self._apply(effects)
        return effects

    def take(self, addr: Address) -> list[bytes]:
        got, self.inbox[addr] = self.inbox[addr], []
        return got

    def login_frames(
        self, addr: Address, name: str, nonce: str = "n1", resume: str | None = None
    ) -> list[p.ServerFrame | p.BadFrame]:
        """The v2 handshake: padded LOGIN, COOKIE, LOGIN with the cookie."""
        self.send(addr, p.encode_client(p.Login(nonce, name, resume)))
        cookie = p.parse_server(self.take(addr)[-1])
        assert isinstance(cookie, p.Cookie), cookie
        self.send(addr, p.encode_client(p.Login(nonce, name, resume, cookie.cookie)))
        return [p.parse_server(d) for d in self.take(addr)]

    def v2_login(self, addr: Address, name: str, nonce: str = "n1") -> str:
        frames = self.login_frames(addr, name, nonce)
        welcome = next(f for f in frames if isinstance(f, p.Welcome))
        return welcome.sid

    def restart(self, keep: int | None = None, first_token: int = 500, **config: object) -> None:
        """Replace the hub by a new one loaded from what was stored, as after a
        restart: the newest ``keep`` events (all by default) in memory, every
        conversation's newest position as its head, session ids from ``first_token``."""
        events = [s.event for s in self.stored]
        heads: dict[str, int] = {}
        for e in events:
            heads[e.room] = max(heads.get(e.room, 0), e.room_seq)
        counter = itertools.count(first_token)
        self.room = Hub(
            lambda: make_registry("indexed"),
            lambda: f"{next(counter):032x}",
            ServerConfig(**config),  # type: ignore[arg-type]
            last_id=events[-1].id,
            recent=events if keep is None else events[-keep:],
            heads=heads,
        )
