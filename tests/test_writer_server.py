"""The server and its writer process (storage/writer.py) together: a server
killed with SIGKILL leaves no writer behind, and its database stays taken until
the writer has finished, so a restarted server can never number events under a
batch the old one was still committing."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.server import ServerProcess, UdpPeer

pytestmark = pytest.mark.integration

FAST = ("--rate-limit", "off")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie is its new parent's to reap)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def _writer_of(srv: ServerProcess) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for pid in _children(srv.proc.pid):
            if b"storage.writer" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        time.sleep(0.05)
    raise AssertionError("the server started no writer process")


def test_sigkill_of_the_server_leaves_no_writer(
    server_factory: Callable[..., ServerProcess],
) -> None:
    srv = server_factory(*FAST)
    alice = UdpPeer(srv.addr)
    try:
        alice.send("L alice")
        assert alice.recv() == b"OK"  # its join is committed: the writer is at work
        writer = _writer_of(srv)
        srv.stop(signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _running(writer) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _running(writer), "the writer outlived its server"
    finally:
        alice.close()


def test_a_clean_stop_stops_the_writer_too(server_factory: Callable[..., ServerProcess]) -> None:
    srv = server_factory(*FAST)
    writer = _writer_of(srv)
    assert srv.stop() == 0
    assert not _running(writer)


def test_inline_and_thread_commits_start_no_writer(
    server_factory: Callable[..., ServerProcess],
) -> None:
    for mode in ("thread", "inline"):
        srv = server_factory(*FAST, "--commit", mode)
        peer = UdpPeer(srv.addr)
        try:
            peer.send("L bob")
            assert peer.recv() == b"OK"
            assert _children(srv.proc.pid) == []
        finally:
            peer.close()
            srv.stop()
