"""A large room over real UDP: a real server, 104 raw v2 sessions that only
log in, and two real client sessions (tests/support/headless.py)."""

from __future__ import annotations

import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatroom import protocol as p
from chatroom.server.crowd import LARGE, PRESENCE_DELAY, TAIL_DELAY
from tests.support.headless import Headless
from tests.support.server import ServerProcess, start_server

pytestmark = pytest.mark.integration

RAW = LARGE + 4


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = start_server(tmp_path / "crowd.db", "--rate-limit", "off", "--max-sessions-per-ip", "0")
    yield srv
    srv.stop()


def frames(sock: socket.socket, wait: float) -> list[p.ServerFrame | p.BadFrame]:
    """Everything that arrives within ``wait`` seconds."""
    got = []
    deadline = time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            got.append(p.parse_server(sock.recv(2048)))
        except TimeoutError:
            break
    return got


SIDS: dict[int, bytes] = {}


def sid_of(sock: socket.socket) -> bytes:
    return SIDS[sock.fileno()]


def raw_login(server: tuple[str, int], i: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5.0)
    sock.sendto(p.encode_client(p.Login(f"n{i}", f"raw{i}", None)), server)
    cookie = p.parse_server(sock.recv(2048))
    assert isinstance(cookie, p.Cookie), cookie
    sock.sendto(p.encode_client(p.Login(f"n{i}", f"raw{i}", None, cookie.cookie)), server)
    while not isinstance(welcome := p.parse_server(sock.recv(2048)), p.Welcome):
        pass
    SIDS[sock.fileno()] = welcome.sid.encode()
    sock.connect(server)
    return sock


def test_a_large_room_tells_joins_together_and_sends_each_line_once(
    server: ServerProcess,
) -> None:
    raws = [raw_login(server.addr, i) for i in range(RAW)]
    alice = bob = None
    try:
        alice = Headless(server.addr, "alice")
        assert alice.logged_in.wait(30)
        bob = Headless(server.addr, "bob")
        assert bob.logged_in.wait(30)
        # bob's join reaches alice in a summary, not as an event of its own.
        assert alice.wait_until(lambda: sum(s.joined for s in alice.presence) >= 1, 5.0)
        assert not any(e.kind == "join" for e in alice.shown + bob.shown)
        quiet, lossy = raws[5], raws[6]
        frames(quiet, PRESENCE_DELAY + TAIL_DELAY)  # what came before
        # One that had to pull a hole is sent the room's HEAD after each lull.
        lossy.send(b"v2 PULL " + sid_of(lossy) + b" 0 1")
        frames(lossy, PRESENCE_DELAY)
        alice.say("hello, crowd")
        assert bob.wait_until(lambda: ("alice", "hello, crowd") in bob.texts(), 5.0)
        # A session that never acknowledges gets the line once, and nothing
        # resent: the room keeps no per-member stream.
        got = frames(quiet, 3.0)
        lines = [f for f in got if isinstance(f, p.EventFrame) and f.event.kind == "message"]
        assert [f.event.text for f in lines] == ["hello, crowd"]
        assert not [f for f in got if isinstance(f, p.Head)]
        heads = [f for f in frames(lossy, 1.0) if isinstance(f, p.Head)]
        assert heads  # after the lull (and repeated, backing off)
        assert {(h.mode, h.last_id) for h in heads} == {("nack", lines[0].event.room_seq)}
    finally:
        for client in (alice, bob):
            if client is not None:
                client.close()
        for sock in raws:
            sock.close()
    server.stop()
    with sqlite3.connect(server.db) as db:
        joins = db.execute("SELECT count(*) FROM events WHERE kind = 'join'").fetchone()[0]
    assert joins == RAW + 2  # every join is in the history
