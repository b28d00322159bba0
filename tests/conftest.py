"""Shared fixtures: a real `chatroom serve` process on loopback, port 0.

Every receive has a timeout and every process started here is reaped at teardown.
"""

from __future__ import annotations

import atexit
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# Databases on SQLite and PostgreSQL, one per test (tests/pg.py).
from tests.pg import database, migrated_database, module_database, postgres  # noqa: F401

#: The banner's address: IPv4, or IPv6 such as ``::1`` (the port is after the last colon).
LISTEN_RE = re.compile(rb"listening on udp://([0-9A-Fa-f.:]+):(\d+) ")
RECV_TIMEOUT = 3.0
#: Servers started by the tests put their control sockets here, not in the user's
#: runtime directory; removed when the test session ends (servers killed with
#: SIGKILL on purpose cannot remove their own).
RUNTIME_DIR = tempfile.mkdtemp(prefix="cr-run-")
atexit.register(shutil.rmtree, RUNTIME_DIR, True)
# Every command a test runs (serve, announce, join) then agrees on where it is.
os.environ["XDG_RUNTIME_DIR"] = RUNTIME_DIR


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    host: str
    port: int
    db: Path
    banner: bytes
    output: list[bytes] = field(default_factory=list)

    @property
    def addr(self) -> tuple[str, int]:
        return (self.host, self.port)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Signal the server and reap it; returns its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(5)
        if self.proc.stdout is not None and not self.proc.stdout.closed:
            self.output.append(self.proc.stdout.read() or b"")
            self.proc.stdout.close()
        return rc


def make_plan(checkout: Path, target: str) -> list[str]:
    """The commands ``make -n TARGET`` would run in ``checkout``. Not with the
    outer make's settings (the suite runs inside ``make test``): they would make
    this make print "Entering/Leaving directory" lines around its plan."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    result = subprocess.run(
        ["make", "-n", target],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def chatroom_cmd(*args: str) -> list[str]:
    """The chatroom command line as a user would run it, from this venv."""
    return [sys.executable, "-m", "chatroom", *args]


def start_server(
    db: Path,
    *args: str,
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> ServerProcess:
    proc = subprocess.Popen(
        chatroom_cmd("serve", "--port", "0", "--db", str(db), *args),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "XDG_RUNTIME_DIR": RUNTIME_DIR, **(env or {})},
        preexec_fn=preexec_fn,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not sel.select(max(0.0, deadline - time.monotonic())):
                break
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
            m = LISTEN_RE.search(buf)
            if m:
                return ServerProcess(proc, m.group(1).decode(), int(m.group(2)), db, buf)
    proc.kill()
    proc.wait(5)
    raise AssertionError(f"server did not start: {buf!r}")


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def factory(
        *args: str,
        db: Path | None = None,
        env: dict[str, str] | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> ServerProcess:
        srv = start_server(db or tmp_path / "chat.db", *args, env=env, preexec_fn=preexec_fn)
        started.append(srv)
        return srv

    yield factory
    for srv in started:
        srv.stop()


@pytest.fixture
def server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory()


class UdpPeer:
    """A raw UDP client on loopback, with a timeout on every receive."""

    def __init__(self, server: tuple[str, int]) -> None:
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(RECV_TIMEOUT)

    def send(self, data: bytes | str) -> None:
        self.sock.sendto(data.encode() if isinstance(data, str) else data, self.server)

    def recv(self, timeout: float = RECV_TIMEOUT) -> bytes:
        self.sock.settimeout(timeout)
        data, _ = self.sock.recvfrom(65536)
        return data

    def recv_none(self, timeout: float = 0.3) -> None:
        """Assert nothing arrives within ``timeout``."""
        self.sock.settimeout(timeout)
        try:
            data, _ = self.sock.recvfrom(65536)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected datagram {data!r}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def peers() -> Iterator[Callable[[tuple[str, int]], UdpPeer]]:
    made: list[UdpPeer] = []

    def make(addr: tuple[str, int]) -> UdpPeer:
        peer = UdpPeer(addr)
        made.append(peer)
        return peer

    yield make
    for peer in made:
        peer.close()
