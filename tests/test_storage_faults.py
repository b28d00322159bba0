"""Storage faults never take the server down (issue 17), with real faults.

A real ``chatroom serve`` process whose database stops accepting writes: a file
size limit (RLIMIT_FSIZE, with SIGXFSZ ignored, as a full disk looks to SQLite)
lifted later with prlimit(2), or another process holding the write lock
(SQLite's, or a ``LOCK TABLE`` on PostgreSQL). Each test checks what users
notice: a clear answer while the fault lasts, nothing shown that is not stored,
everything served again once the fault clears, and lines typed in the v2 client
delivered in order, each stored once.

The full disk is SQLite's only: the server's processes (the loop and its writer
process) write the file themselves, so their file size limit is the database's
disk; PostgreSQL's files are its server's (tests/pg.py), which a test cannot fill
without filling the machine's disk.
"""

from __future__ import annotations

import json
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from storage.config import describe
from storage.writer_lock import DatabaseInUse, WriterLock
from testkit.processes import chatroom_cmd
from tests.pg import Database
from tests.support.headless import Headless
from tests.support.server import ServerProcess, UdpPeer

pytestmark = pytest.mark.integration

FAST = ("--rate-limit", "off", "--max-sessions-per-ip", "0")
STORAGE_ERR = b"ERR the server cannot store messages right now; try again shortly"
LIMIT = 400_000  # bytes any file of the server may grow to while "the disk is full"


def _limited() -> None:
    """In the server's process before exec: a file size limit it may lift."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # stays ignored across exec
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, resource.RLIM_INFINITY))


def _free_space(srv: ServerProcess) -> None:
    """Lift the limit of the server and of its database writer (its child,
    storage/writer.py, which inherited it): the disk has room again for both."""
    inf = resource.RLIM_INFINITY
    for pid in [srv.proc.pid, *_children(srv.proc.pid)]:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (inf, inf))


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _drain(peer: UdpPeer, quiet: float = 0.3) -> list[bytes]:
    got: list[bytes] = []
    while True:
        try:
            got.append(peer.recv(quiet))
        except TimeoutError:
            return got


def _stored_texts(db: Path | Database) -> list[str]:
    if isinstance(db, Database):
        return [t for (t,) in db.sql("select text from events where kind = 'message' order by id")]
    with sqlite3.connect(db) as conn:
        rows = conn.execute("select text from events where kind = 'message' order by id")
        return [r[0] for r in rows]


def _locker_code(db: Database) -> str:
    """A Python program that takes the database's write lock, says ``locked``, and
    holds it until a line arrives on its stdin."""
    if db.path is not None:
        return (
            "import sqlite3, sys\n"
            f"c = sqlite3.connect({str(db.path)!r}, isolation_level=None)\n"
            "c.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "sys.stdin.readline()\n"
            "c.execute('ROLLBACK')\n"
        )
    # EXCLUSIVE: reads go on, every INSERT waits (for lock_timeout, storage.engine).
    libpq = make_url(db.url).set(drivername="postgresql").render_as_string(hide_password=False)
    return (
        "import psycopg, sys\n"
        f"c = psycopg.connect({libpq!r})\n"
        "c.execute('LOCK TABLE events IN EXCLUSIVE MODE')\n"
        "print('locked', flush=True)\n"
        "sys.stdin.readline()\n"
        "c.rollback()\n"
    )


@pytest.fixture
def cleanup() -> Iterator[list[UdpPeer | Headless]]:
    made: list[UdpPeer | Headless] = []
    yield made
    for thing in made:
        thing.close()


def _alice_and_bob(
    srv: ServerProcess, cleanup: list[UdpPeer | Headless]
) -> tuple[UdpPeer, UdpPeer]:
    """Two classic users logged in (alice has been told bob joined)."""
    alice, bob = UdpPeer(srv.addr), UdpPeer(srv.addr)
    cleanup += [alice, bob]
    alice.send("L alice")
    assert alice.recv() == b"OK"
    bob.send("L bob")
    assert bob.recv() == b"OK"
    assert alice.recv() == b"bob joined"
    return alice, bob


def _fill_until_refused(alice: UdpPeer) -> int:
    """Send long lines until the server says it cannot store them."""
    for i in range(20_000):
        alice.send(f"C alice {'x' * 900} {i}")
        if i % 20 == 19:
            for reply in _drain(alice, 0.05):
                if reply == STORAGE_ERR:
                    return i
    raise AssertionError("the file size limit was never reached")


def test_disk_full_refuses_then_recovers_and_loses_nothing_shown(
    server_factory: Callable[..., ServerProcess], cleanup: list[UdpPeer | Headless]
) -> None:
    srv = server_factory(*FAST, preexec_fn=_limited)
    alice, bob = _alice_and_bob(srv, cleanup)
    late = UdpPeer(srv.addr)
    cleanup.append(late)
    carol = Headless(srv.addr, "carol")
    cleanup.append(carol)
    assert carol.logged_in.wait(10)
    _fill_until_refused(alice)
    shown = [d.decode() for d in _drain(bob, 1.0)]
    # While the disk is full: a short answer, and the server still serves.
    late.send("L dave")
    assert late.recv() == b"the server cannot store messages right now; try again shortly"
    for i in range(3):
        carol.say(f"typed during the fault {i}")
    time.sleep(1.5)
    assert srv.proc.poll() is None, "the server died of a full disk"
    status = subprocess.run(
        chatroom_cmd("status", "--port", str(srv.port), "--json"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    storage = json.loads(status.stdout)["storage"]
    assert storage["writable"] is False and storage["error"]  # the operator can see why
    assert [t for _, t in carol.texts() if t.startswith("typed during")] == []
    _free_space(srv)
    # Space is back: the queued lines go through, in order, each stored once.
    typed = [f"typed during the fault {i}" for i in range(3)]
    assert carol.wait_until(lambda: [t for _, t in carol.texts()][-3:] == typed, 30), carol.notices
    alice.send("C alice back to normal")
    after = [d.decode() for d in _drain(bob, 3.0)]
    assert "alice : back to normal" in after
    shown += after
    stored = _stored_texts(srv.db)
    assert [t for t in stored if t.startswith("typed during")] == typed
    missing = [s for s in shown if s.startswith("alice : ") and s[8:] not in stored]
    assert missing == []
    assert srv.stop() == 0
    log = b"".join([srv.banner, *srv.output]).decode()
    assert log.count("cannot store messages right now:") == 1  # the cause, once
    assert "storage works again" in log


def test_sigterm_during_a_fault_stops_cleanly_and_tells_the_users(
    server_factory: Callable[..., ServerProcess], cleanup: list[UdpPeer | Headless]
) -> None:
    srv = server_factory(*FAST, preexec_fn=_limited)
    alice, bob = _alice_and_bob(srv, cleanup)
    _fill_until_refused(alice)
    _drain(bob, 0.5)
    assert srv.stop(signal.SIGTERM) == 0
    assert b"[announcement] server shutting down" in _drain(bob, 1.0)


def test_a_database_locked_by_another_process_is_waited_out(
    migrated_database: Database,  # first: dropped after the server has stopped
    server_factory: Callable[..., ServerProcess],
    cleanup: list[UdpPeer | Headless],
) -> None:
    srv = server_factory(*FAST, db=migrated_database.arg)
    alice, bob = _alice_and_bob(srv, cleanup)
    locker = subprocess.Popen(
        [sys.executable, "-c", _locker_code(migrated_database)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert locker.stdout is not None and locker.stdout.readline() == b"locked\n"
        alice.send("C alice while locked")
        # The first commit waits out the lock timeout (SQLite's busy_timeout,
        # PostgreSQL's lock_timeout), then fails: the line waits for the lock to go
        # (not shown: not stored), later ones are refused.
        assert b"alice : while locked" not in _drain(bob, 7.0)
        alice.send("C alice refused while locked")
        assert alice.recv(3.0) == STORAGE_ERR
        assert srv.proc.poll() is None
    finally:
        assert locker.stdin is not None
        locker.stdin.write(b"\n")
        locker.stdin.close()
        locker.wait(10)
        if locker.stdout is not None:
            locker.stdout.close()
    # Released: the waiting line is stored and shown; the server serves again.
    assert bob.recv(10.0) == b"alice : while locked"
    alice.send("C alice after the lock")
    assert bob.recv(5.0) == b"alice : after the lock"
    assert _stored_texts(migrated_database) == ["while locked", "after the lock"]


def test_a_second_server_on_the_same_database_is_refused_naming_the_first(
    migrated_database: Database,  # first: dropped after the servers have stopped
    server_factory: Callable[..., ServerProcess],
) -> None:
    first = server_factory(db=migrated_database.arg)
    second = subprocess.run(
        chatroom_cmd("serve", "--port", "0", "--db", migrated_database.arg),
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert second.returncode == 1
    assert f"{describe(migrated_database.url)} is in use by another chatroom serve" in (
        second.stderr
    )
    if migrated_database.path is not None:
        # The lock file names its holder; PostgreSQL's advisory lock names nobody.
        assert f"pid {first.proc.pid}, udp://127.0.0.1:{first.port}" in second.stderr
    assert "Traceback" not in second.stderr
    # Once the first is gone (even by SIGKILL), the database is free again: the
    # kernel drops the file lock, PostgreSQL the lock of the connection that died.
    first.stop(signal.SIGKILL)
    again = server_factory(db=migrated_database.arg)
    assert again.proc.poll() is None


def test_a_released_lock_frees_the_database_at_once(migrated_database: Database) -> None:
    """In one process, as a server stopped in-process (or refused at start)
    does: after release, another server may take the database straight away.
    On PostgreSQL that needs the lock's database session closed, not only
    its connection returned to a pool, where the session would keep it."""
    first = WriterLock.claim(migrated_database.url, "first")
    with pytest.raises(DatabaseInUse):
        WriterLock.claim(migrated_database.url, "second")
    first.release()
    second = WriterLock.claim(migrated_database.url, "second")
    second.release()
