"""A real ``chatroom serve`` process on loopback, port 0, and raw UDP peers.

Every receive has a timeout; every process started here is reaped by whoever
started it (the fixtures in tests/conftest.py do it for the tests).
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from testkit.processes import await_banner, chatroom_cmd, stop_process

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
        rc, rest = stop_process(self.proc, sig, timeout)
        if rest:
            self.output.append(rest)
        return rc


def make_plan(checkout: Path, target: str, *variables: str) -> list[str]:
    """The commands ``make -n TARGET [VAR=value...]`` would run in ``checkout``. Not
    with the outer make's settings (the suite runs inside ``make test``): they would
    make this make print "Entering/Leaving directory" lines around its plan."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    result = subprocess.run(
        ["make", "-n", target, *variables],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


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
    addr, buf = await_banner(proc, timeout=20)
    if addr is None:
        proc.kill()
        proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()  # left open, it fails a later test (ResourceWarning)
        raise AssertionError(f"server did not start: {buf!r}")
    return ServerProcess(proc, addr[0], addr[1], db, buf)


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
