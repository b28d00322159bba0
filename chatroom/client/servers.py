"""The servers a client may talk to, and when to move from one to the next. Pure.

Several server nodes can act as one chat (a cluster sharing its database):
``chatroom join --server A --server B`` lists them. The session talks to one at
a time; when it decides the current one stopped answering (the same judgement
that says "connection lost" with a single server: chatroom/client/liveness.py),
it moves to the next in the list, round robin, and logs in there with
``resume`` as it does after a server restart, so that node takes the session
back. ``Failover`` keeps the list position and the clock of that decision; the
network process only changes the address it sends to (``effects.UseServer``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Server:
    """One server's address as the user gave it (resolved by the shell)."""

    host: str
    port: int

    @property
    def label(self) -> str:
        """``HOST:PORT`` as the user writes it: an IPv6 address in brackets."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, value: str) -> Server:
        """``HOST:PORT`` or ``[IPV6]:PORT``. ValueError says what is wrong, in
        words a usage error can show as they are."""
        text = value.strip()
        if text.startswith("["):
            host, sep, port = text[1:].partition("]:")
            if not sep or not host:
                raise ValueError("an IPv6 address goes in brackets, then the port: [::1]:8888")
            try:
                address = ipaddress.ip_address(host.split("%", 1)[0])
            except ValueError:
                raise ValueError(f"{host!r} is not an IPv6 address") from None
            if address.version != 6:
                raise ValueError(f"only an IPv6 address goes in brackets ({host!r} is not one)")
        else:
            host, sep, port = text.rpartition(":")
            if not sep:
                raise ValueError("HOST:PORT expected, the port included: 127.0.0.1:8888")
            if ":" in host:
                raise ValueError("an IPv6 address goes in brackets, then the port: [::1]:8888")
            if not host or any(ch.isspace() for ch in host):
                raise ValueError("HOST:PORT expected: the host is missing")
        if not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"the port must be a number from 1 to 65535, not {port!r}")
        return cls(host, int(port))


@dataclass(slots=True)
class Failover:
    """Which server of the list the session talks to, and when to try the next.

    ``labels`` names the servers for the user (``Server.label``), in the order
    given; with fewer than two there is nowhere to move, and the session keeps
    its single-server behaviour (retrying the same server). After a move,
    ``switch_at`` is when to move on again if the new server stays silent; any
    frame from it pushes that back (it answers: stay), its WELCOME ends the move.
    """

    labels: tuple[str, ...] = ()
    index: int = 0
    #: The next move is due at this time unless the server is heard (None: not
    #: moving; then only the liveness check starts a move).
    switch_at: float | None = None
    #: The server of the last WELCOME: moving back to it is "reconnected", not
    #: "connected to".
    welcomed: int = 0
    #: Servers tried by the first login (it gives up after trying each once).
    first_tries: int = 1

    @property
    def several(self) -> bool:
        """Is there another server to move to?"""
        return len(self.labels) > 1

    @property
    def current(self) -> str:
        return self.labels[self.index] if self.labels else ""

    def advance(self, now: float, wait: float) -> int:
        """Move to the next server (round robin); it has ``wait`` seconds to
        answer. Returns its index."""
        self.index = (self.index + 1) % len(self.labels)
        self.switch_at = now + wait
        return self.index

    def heard(self, now: float, wait: float) -> None:
        """A frame from the server we moved to: it is there, give it time."""
        if self.switch_at is not None:
            self.switch_at = now + wait

    def due(self, now: float) -> bool:
        """The server we moved to has been silent too long."""
        return self.switch_at is not None and now >= self.switch_at

    def settled(self) -> bool:
        """A WELCOME from the current server: the move (if any) is over. True if
        it is another server than the one of the last WELCOME."""
        self.switch_at = None
        moved, self.welcomed = self.index != self.welcomed, self.index
        return moved
