"""The server's database writer process (storage/writer.py), on a real SQLite
file: batches stored in order, a clash reported as the store's own error, a
killed writer replaced at the next batch with nothing lost, the lock wait
passed on, and no process left behind.

The end-to-end guarantees (kill -9 of the server finds everything shown stored,
a full disk refused then recovered) are in test_reliability.py and
test_storage_faults.py, which run the server with its writer process (the
default ``--commit process``)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatroom.events import Event
from storage.errors import StorageError
from storage.store import EventStore
from storage.writer import SMALL_BATCH, SplitWriter, WriterProcess

pytestmark = pytest.mark.storage


def _event(i: int, room: str = "#lobby") -> Event:
    return Event(i, "message", "alice", f"line {i}", 1_764_000_000.0 + i, None, None, room, i)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'chat.db'}"
    EventStore.open(url, create=True).close()  # migrated, as the server does first
    yield url


@pytest.fixture
def writer(db: str) -> Iterator[WriterProcess]:
    w = WriterProcess(db)
    w.start()
    yield w
    w.close()


def _stored(url: str) -> list[tuple[int, str]]:
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        return [
            (int(i), str(t)) for i, t in conn.execute("SELECT id, text FROM events ORDER BY id")
        ]


def _searchable(url: str, word: str) -> list[int]:
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        q = "SELECT rowid FROM events_fts WHERE events_fts MATCH ? ORDER BY rowid"
        return [int(r) for (r,) in conn.execute(q, (word,))]


def _pid(w: WriterProcess) -> int:
    proc = w._proc
    assert proc is not None
    return proc.pid


def test_batches_are_stored_in_order_and_searchable(writer: WriterProcess, db: str) -> None:
    writer.write_batch([_event(i) for i in range(1, 301)])  # more than one INSERT's chunk
    writer.write_batch([_event(301)])
    stored = _stored(db)
    assert stored == [(i, f"line {i}") for i in range(1, 302)]
    assert _searchable(db, "300") == [300]


def test_a_clash_is_the_stores_error_and_nothing_of_the_batch_is_kept(
    writer: WriterProcess, db: str
) -> None:
    writer.write_batch([_event(1), _event(2)])
    # Id 2 again (with a later one): the whole batch rolls back, as in the loop.
    with pytest.raises(StorageError, match="could not store 2 events"):
        writer.write_batch([_event(3), _event(2, "#other")])
    writer.write_batch([_event(3)])  # the writer is still there
    assert [i for i, _ in _stored(db)] == [1, 2, 3]


def _hold_the_lock(db: str) -> subprocess.Popen[str]:
    """Another process in a write transaction on the file, until its stdin closes."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys\n"
            f"c = sqlite3.connect({db.removeprefix('sqlite:///')!r}, isolation_level=None)\n"
            "c.execute('BEGIN IMMEDIATE')\n"
            "print('locked', flush=True)\n"
            "sys.stdin.readline()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    return holder


def _release(holder: subprocess.Popen[str]) -> None:
    assert holder.stdin is not None and holder.stdout is not None
    holder.stdin.close()
    holder.wait(10)
    holder.stdout.close()


def test_a_writer_killed_between_batches_is_replaced(writer: WriterProcess, db: str) -> None:
    writer.write_batch([_event(1)])
    first = _pid(writer)
    os.kill(first, signal.SIGKILL)
    os.waitid(os.P_PID, first, os.WEXITED | os.WNOWAIT)  # dead (not reaped: ours to do)
    writer.write_batch([_event(2)])
    assert _pid(writer) != first
    assert [i for i, _ in _stored(db)] == [1, 2]


def test_a_writer_killed_mid_batch_fails_it_and_the_retry_stores_it(
    writer: WriterProcess, db: str
) -> None:
    writer.write_batch([_event(1)])
    first = _pid(writer)
    holder = _hold_the_lock(db)  # the batch below waits for the lock (up to 5 s)
    try:
        failed: list[BaseException] = []

        def write() -> None:
            try:
                writer.write_batch([_event(2)])
            except StorageError as exc:
                failed.append(exc)

        thread = threading.Thread(target=write)
        thread.start()
        time.sleep(0.5)
        os.kill(first, signal.SIGKILL)
        thread.join(10)
    finally:
        _release(holder)
    assert [str(e) for e in failed] == ["the database writer stopped (exit status -9)"]
    writer.write_batch([_event(2)])  # what the Committer's retry does
    assert _pid(writer) != first
    assert [i for i, _ in _stored(db)] == [1, 2]


def test_the_lock_wait_reaches_the_writer(writer: WriterProcess, db: str, tmp_path: Path) -> None:
    """Another process holds SQLite's write lock: with a 0.1 s wait the batch
    fails fast with the store's message instead of waiting the default 5 s."""
    holder = _hold_the_lock(db)
    try:
        writer.set_lock_wait(0.1)
        started = time.monotonic()
        with pytest.raises(StorageError, match="locked"):
            writer.write_batch([_event(1)])
        assert time.monotonic() - started < 3.0
    finally:
        _release(holder)
    writer.set_lock_wait(None)
    writer.write_batch([_event(1)])
    assert [i for i, _ in _stored(db)] == [1]


def test_close_stops_the_writer(db: str) -> None:
    w = WriterProcess(db)
    w.start()
    pid = _pid(w)
    w.write_batch([_event(1)])
    w.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped, not a zombie
    assert _stored(db) == [(1, "line 1")]


def test_the_writer_ends_when_its_server_goes_away(db: str) -> None:
    """A server killed with SIGKILL cannot close the pipe politely; the writer
    sees its stdin end and exits by itself (no orphan)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "storage.writer", db],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.close()  # what the kernel does for a server that died
    assert proc.wait(10) == 0
    proc.stdout.close()


def test_a_launched_writer_opens_nothing_until_started(tmp_path: Path) -> None:
    """The server launches its writer before it has created and migrated the
    database (so that their starts overlap): until ``start`` the writer must not
    touch the file, which SQLite would create empty."""
    path = tmp_path / "chat.db"
    w = WriterProcess(f"sqlite:///{path}")
    w.launch()
    pid = _pid(w)
    time.sleep(1.0)  # time enough to import everything and open a file
    assert not path.exists()
    EventStore.open(f"sqlite:///{path}", create=True).close()
    w.start()
    assert _pid(w) == pid  # the launched writer, now ready: not a second one
    w.write_batch([_event(1)])
    assert _stored(f"sqlite:///{path}") == [(1, "line 1")]
    w.close()


def test_a_writer_launched_and_closed_unstarted_exits(tmp_path: Path) -> None:
    w = WriterProcess(f"sqlite:///{tmp_path / 'chat.db'}")
    w.launch()
    pid = _pid(w)
    w.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not (tmp_path / "chat.db").exists()


def test_a_writer_that_cannot_open_the_database_fails_at_start(tmp_path: Path) -> None:
    w = WriterProcess(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'chat.db'}")
    with pytest.raises(StorageError, match="the database writer did not start: cannot open"):
        w.start()
    w.close()  # nothing left running


class Counting:
    """The store, counting the batches it writes itself."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.batches: list[int] = []

    def write_batch(self, events: list[Event]) -> None:
        self.batches.append(len(events))
        self.store.write_batch(events)

    def set_lock_wait(self, seconds: float | None) -> None:
        self.store.set_lock_wait(seconds)

    def open_writer(self) -> None:
        self.store.open_writer()


def test_small_batches_on_the_thread_large_ones_in_the_writer_all_in_order(
    writer: WriterProcess, db: str
) -> None:
    store = EventStore.open(db, create=True)
    try:
        mine = Counting(store)
        split = SplitWriter(mine, writer)
        ids = iter(range(1, 1_000))
        sizes = [1, SMALL_BATCH, 3, SMALL_BATCH - 1, 200, 1]
        for size in sizes:
            split.write_batch([_event(next(ids)) for _ in range(size)])
        assert mine.batches == [1, 3, SMALL_BATCH - 1, 1]  # the rest went to the writer
        assert [i for i, _ in _stored(db)] == list(range(1, sum(sizes) + 1))
        split.set_lock_wait(0.1)  # reaches both (the writer's: with its next batch)
        split.write_batch([_event(next(ids)) for _ in range(SMALL_BATCH)])
        assert len(_stored(db)) == sum(sizes) + SMALL_BATCH
    finally:
        store.close()


def test_run_by_hand_without_a_url_says_how() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "storage.writer"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert "usage: python -m storage.writer URL" in done.stderr
