"""Announcements typed at the server's own terminal: the README's first way to
announce. ``chatroom serve`` runs in a real pseudo-terminal (pexpect; the server
reads its console only when stdin is a terminal) with a classic peer on real
loopback UDP. Every expect and receive has a timeout; the server is reaped."""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from testkit.processes import chatroom_cmd
from tests.support.pty import InPty
from tests.support.server import RUNTIME_DIR, UdpPeer

pytestmark = pytest.mark.integration

TIMEOUT = 15.0  # generous: the machine may be busy; passing tests never wait for it


class Console(InPty):
    """``chatroom serve`` in a pty: what the operator sees and types."""

    def __init__(self, db: Path) -> None:
        cmd = chatroom_cmd("serve", "--host", "127.0.0.1", "--port", "0", "--db", str(db))
        env = {**os.environ, "XDG_RUNTIME_DIR": RUNTIME_DIR, "LANG": "C.UTF-8"}
        super().__init__(cmd, env, columns=200, timeout=TIMEOUT)
        self.proc.expect(r"listening on udp://127\.0\.0\.1:(\d+) ")
        self.port = int(self.proc.match.group(1))
        self.expect("Type a line and press Enter to broadcast an announcement; Ctrl-C stops.")

    def expect(self, text: str) -> str:
        """Wait for a literal text; returns what came before it."""
        self.wait_for(text)
        return str(self.proc.before)

    def type(self, line: str) -> None:
        self.proc.send(line + "\r")  # Enter, as a terminal sends it

    def close(self) -> None:
        if self.proc.isalive():
            self.proc.terminate(force=True)
        self.proc.close(force=True)


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    c = Console(tmp_path / "chat.db")
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def carol(console: Console) -> Iterator[UdpPeer]:
    """A classic (netcat-style) peer in the room."""
    peer = UdpPeer(("127.0.0.1", console.port))
    try:
        peer.send("L carol")
        assert peer.recv() == b"OK"
        yield peer
    finally:
        peer.close()


ANSWER = re.compile(r"chatroom: (announced to \d+ user\(s\)|not announced: [^\r\n]*)")


def answers(text: str) -> list[str]:
    """The console's answers to typed lines, in order."""
    return [m.group(1) for m in ANSWER.finditer(text)]


def test_a_typed_line_is_announced_to_everyone_and_stored(
    console: Console, carol: UdpPeer, tmp_path: Path
) -> None:
    console.type("maintenance at   five")
    console.expect("chatroom: announced to 1 user(s)")
    assert carol.recv() == b"[announcement] maintenance at five"  # spaces folded
    # Ctrl-C at the console stops the server; the room is told first.
    console.proc.sendintr()
    console.expect("chatroom: stopped")
    console.proc.expect(pexpect.EOF)
    console.proc.close()
    assert console.proc.exitstatus == 0, console.output[-1500:]
    assert carol.recv() == b"[announcement] server shutting down"
    assert "Traceback" not in console.output
    with sqlite3.connect(tmp_path / "chat.db") as db:
        rows = db.execute("SELECT kind, text FROM events WHERE kind = 'announce'").fetchall()
    assert rows == [("announce", "maintenance at five"), ("announce", "server shutting down")]


def test_empty_and_refused_lines_announce_nothing(console: Console, carol: UdpPeer) -> None:
    console.type("")  # an empty line is ignored, without a word
    console.type("   ")  # and so is a blank one
    console.type("ring the \x07 bell")  # a control character is refused
    console.expect("chatroom: not announced: control characters are not allowed")
    console.type("x" * 1001)  # one byte over the text limit
    console.expect("chatroom: not announced: too long: the limit is 1000 bytes of UTF-8")
    console.type("this one goes out")
    before = console.expect("chatroom: announced to 1 user(s)")
    # The console answered the two refused lines and the last one, nothing else.
    assert answers(console.output) == [
        "not announced: control characters are not allowed",
        "not announced: too long: the limit is 1000 bytes of UTF-8",
        "announced to 1 user(s)",
    ], before
    assert carol.recv() == b"[announcement] this one goes out"
    carol.recv_none()


def test_the_count_is_of_users_online(console: Console) -> None:
    console.type("nobody here yet")
    console.expect("chatroom: announced to 0 user(s)")
    peers = [UdpPeer(("127.0.0.1", console.port)) for _ in range(2)]
    try:
        for i, peer in enumerate(peers):
            peer.send(f"L user{i}\n")
            assert peer.recv() == b"OK\n"
        console.type("two now")
        console.expect("chatroom: announced to 2 user(s)")
        for peer in peers:
            got = []
            with contextlib.suppress(TimeoutError):
                while True:
                    got.append(peer.recv(0.5))
            assert got[-1] == b"[announcement] two now\n", got  # netcat gets whole lines
            assert b"[announcement] nobody here yet\n" not in got
    finally:
        for peer in peers:
            peer.close()
