"""``chatroom serve --host ::1``, end to end: a classic peer over AF_INET6 and a
real ``chatroom join --host ::1`` in a pty. Skipped, saying why, where the
machine has no IPv6 loopback."""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Callable

import pytest

from tests.support.pty import Client
from tests.support.server import RECV_TIMEOUT, ServerProcess, UdpPeer


def _ipv6_loopback() -> str | None:
    """Why ::1 cannot be used here, or None when it can."""
    if not socket.has_ipv6:
        return "this Python was built without IPv6"
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError as exc:
        return f"cannot bind ::1 on this machine ({exc})"
    return None


_WHY_NOT = _ipv6_loopback()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(_WHY_NOT is not None, reason=str(_WHY_NOT)),
]


class Udp6Peer(UdpPeer):
    """The classic peer of tests/support/server.py, over IPv6."""

    def __init__(self, server: tuple[str, int]) -> None:
        self.server = server
        self.sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        self.sock.bind(("::1", 0))
        self.sock.settimeout(RECV_TIMEOUT)


def test_serve_on_ipv6_loopback(server_factory: Callable[..., ServerProcess]) -> None:
    srv = server_factory("--host", "::1")
    assert (srv.host, srv.proc.poll()) == ("::1", None)
    assert b"listening on udp://::1:" in srv.banner
    carol = Udp6Peer(("::1", srv.port))
    alice = Client("alice", srv.port, "--host", "::1", "--no-color", "--history", "0")
    try:
        carol.send("L carol")
        assert carol.recv() == b"OK"  # ::1 is loopback: the classic dialect is served
        alice.ready()
        assert carol.recv() == b"alice joined"
        carol.send("C carol hello over ipv6")
        alice.said("hello over ipv6")
        alice.sendline("hi carol")
        alice.said("hi carol")  # stored and acknowledged
        assert carol.recv() == b"alice : hi carol"
        alice.sendline("/who")
        alice.expect("in #lobby (2): ")
        alice.sendline("/quit")
        assert alice.wait_exit() == 0
        assert carol.recv() == b"alice left"
    finally:
        alice.close()
        carol.close()
    assert srv.stop() == 0
    with sqlite3.connect(srv.db) as db:
        said = db.execute("SELECT name, text FROM events WHERE kind = 'message'").fetchall()
    assert said == [("carol", "hello over ipv6"), ("alice", "hi carol")]
