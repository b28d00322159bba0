"""The client's socket and the servers it may send to.

One UDP socket for the client's whole life. It sends to the current server
and keeps only what that server sends (as a connected socket would: anyone can
send a datagram to our port). Moving to another server
(``effects.UseServer``, decided by the session) changes just that address: the
local port stays, and what the previous server sent, still queued or arriving
late, is dropped like anyone else's. Every address is resolved once, at start,
so a typo in a backup server's name is reported at once rather than when it is
needed.

The socket is not connected, because a connected socket keeps the source
address the kernel chose for its first peer: IPv4 and IPv6 servers could not
share it. With an IPv6 server in the list it is an IPv6 socket and IPv4 servers
are reached at their IPv4-mapped addresses (``::ffff:a.b.c.d``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, cast

from chatroom import protocol as p
from chatroom.client.servers import Server

#: How many datagrams ``recv`` looks through for one from the server.
_SKIP_MAX: Final = 256

SockAddr = tuple[str, int] | tuple[str, int, int, int]


class ResolveError(Exception):
    """A server's name did not resolve: the message says which and why."""


@dataclass
class Link:
    sock: socket.socket
    #: Each server's address, in the family of ``sock``.
    addrs: list[SockAddr]
    index: int = 0

    @classmethod
    def open(cls, servers: Sequence[Server]) -> Link:
        """A socket for ``servers``, sending to the first (ResolveError if a
        name does not resolve)."""
        resolved: list[tuple[int, SockAddr]] = []
        for server in servers:
            try:
                infos = socket.getaddrinfo(server.host, server.port, type=socket.SOCK_DGRAM)
            except socket.gaierror as exc:
                raise ResolveError(f"cannot resolve {server.host}: {exc.strerror}") from exc
            family, _, _, _, addr = infos[0]
            resolved.append((family, cast(SockAddr, addr)))  # an IP family: (host, port, ...)
        families = {family for family, _ in resolved}
        family = socket.AF_INET6 if socket.AF_INET6 in families else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        if family == socket.AF_INET6 and len(families) > 1:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        return cls(sock, [_in_family(addr, family) for _, addr in resolved])

    def use(self, index: int) -> None:
        """Send to (and hear from) server ``index`` from now on."""
        self.index = index

    def send(self, data: bytes) -> None:
        """Send a datagram; a server that is not there is the retry timers' business."""
        with contextlib.suppress(OSError):
            self.sock.sendto(data, self.addrs[self.index])

    def recv(self) -> bytes | None:
        """The next datagram from the current server; None once nothing more is
        ready (BlockingIOError on a non-blocking socket, as ``socket.recv``)."""
        for _ in range(_SKIP_MAX):
            try:
                data, source = self.sock.recvfrom(p.MAX_DATAGRAM + 1)
            except (BlockingIOError, InterruptedError):
                return None
            if _same(source, self.addrs[self.index]):
                return data
        return None

    def close(self) -> None:
        self.sock.close()


def _in_family(addr: SockAddr, family: int) -> SockAddr:
    """``addr`` as ``family`` (AF_INET6 socket: an IPv4 address mapped)."""
    if family == socket.AF_INET6 and len(addr) == 2:
        return ("::ffff:" + addr[0], addr[1], 0, 0)
    return addr


def _same(source: object, addr: SockAddr) -> bool:
    """Is ``source`` (from recvfrom) the address ``addr``? The same text in the
    usual case; otherwise compared as addresses (a zone, another spelling)."""
    if not isinstance(source, tuple) or len(source) < 2 or source[1] != addr[1]:
        return False
    if source[0] == addr[0]:
        return True
    try:
        return _ip(str(source[0])) == _ip(addr[0])
    except ValueError:
        return False


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(host.split("%", 1)[0])
