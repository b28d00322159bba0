"""The Committer: nothing is sent before what it shows is committed, inline and
pipelined (a real second thread), through failures and retries."""

from __future__ import annotations

import select
import threading
from collections.abc import Iterable, Iterator

import pytest

from chatroom.events import Event
from chatroom.server.commits import Committer, CommitThread, StorageFailure
from chatroom.server.effects import Effect, Send, Store
from chatroom.server.storage_state import StorageState

pytestmark = pytest.mark.pure


class Disk:
    """A sink that stores, or fails while ``full`` is set; it can be paused."""

    def __init__(self) -> None:
        self.rows: list[int] = []
        self.full = False
        self.gate = threading.Event()
        self.gate.set()

    def write_batch(self, events: Iterable[Event]) -> None:
        self.gate.wait(5)
        if self.full:
            raise StorageFailure("database or disk is full")
        self.rows += [e.id for e in events]


def _event(i: int) -> Event:
    return Event(i, "message", "alice", f"line {i}", 1.0)


def _batch(*ids: int) -> list[Effect]:
    out: list[Effect] = []
    for i in ids:
        out += [Store(_event(i)), Send(b"line %d" % i, (("127.0.0.1", 9),), i)]
    return [*out, Send(b"pong", (("127.0.0.1", 9),))]


@pytest.fixture(params=["inline", "pipelined"])
def setup(request: pytest.FixtureRequest) -> Iterator[tuple[Committer, Disk]]:
    disk = Disk()
    worker = CommitThread(disk) if request.param == "pipelined" else None
    yield Committer(disk, StorageState(), worker=worker), disk
    if worker is not None:
        worker.close()


def _settle(c: Committer, now: float) -> list[bytes]:
    """What the loop does when the worker's pipe is readable (pipelined mode)."""
    out: list[bytes] = []
    if c.worker is not None:
        while c.pending:
            select.select([c.worker], [], [], 2.0)
            out += [s.payload for s in c.poll(now)]
    return out


def test_sends_wait_for_their_commit(setup: tuple[Committer, Disk]) -> None:
    c, disk = setup
    sent = [s.payload for s in c.apply(_batch(1, 2), 0.0)]
    sent += _settle(c, 0.0)
    assert disk.rows == [1, 2]
    assert sent.count(b"pong") == 1 and [p for p in sent if p != b"pong"] == [b"line 1", b"line 2"]


def test_a_failed_commit_holds_its_sends_then_retries(setup: tuple[Committer, Disk]) -> None:
    c, disk = setup
    disk.full = True
    sent = [s.payload for s in c.apply(_batch(1), 0.0)]
    if c.worker is not None:
        select.select([c.worker], [], [], 2.0)
        sent += [s.payload for s in c.poll(0.0)]
    assert sent == [b"pong"]  # shows nothing: still answers what shows nothing
    assert not c.state.writable and c.retry_at is not None
    sent = [s.payload for s in c.apply(_batch(2), 0.05)]  # waits behind the fault
    assert sent == [b"pong"] and disk.rows == []
    disk.full = False
    released = [s.payload for s in c.retry(10.0)] + _settle(c, 10.0)
    assert disk.rows == [1, 2]  # in order, each once
    assert released == [b"line 1", b"line 2"]
    assert c.state.writable and c.state.committed == 2


def test_pipelined_commits_overlap_the_next_batch() -> None:
    disk = Disk()
    worker = CommitThread(disk)
    c = Committer(disk, StorageState(), worker=worker)
    try:
        disk.gate.clear()  # the first write is slow
        assert [s.payload for s in c.apply(_batch(1), 0.0)] == [b"pong"]
        # Batch 2 is handled while batch 1 is being written, and waits for it.
        assert [s.payload for s in c.apply(_batch(2), 0.0)] == [b"pong"]
        disk.gate.set()
        assert _settle(c, 0.0) == [b"line 1", b"line 2"]
        assert disk.rows == [1, 2]
    finally:
        worker.close()


def test_stopping_waits_for_the_last_commit() -> None:
    disk = Disk()
    worker = CommitThread(disk)
    c = Committer(disk, StorageState(), worker=worker)
    try:
        disk.gate.clear()
        c.apply(_batch(1, 2, 3), 0.0)
        threading.Timer(0.2, disk.gate.set).start()
        assert [s.payload for s in c.retry_now(0.0)] == [b"line 1", b"line 2", b"line 3"]
        assert disk.rows == [1, 2, 3] and c.pending == 0
    finally:
        worker.close()
