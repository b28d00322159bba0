"""History end to end: what was said is stored, replayed and queryable, with the
server and `chatroom history` on SQLite and on PostgreSQL (tests/pg.py)."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pexpect
import pytest

from chatroom.events import LOBBY, Event, EventKind, dm_key
from storage.store import EventStore
from testkit.processes import chatroom_cmd
from tests.pg import Database
from tests.support.headless import Headless
from tests.support.server import ServerProcess, UdpPeer

pytestmark = pytest.mark.integration

FAST = ("--rate-limit", "off")


@pytest.fixture
def cleanup() -> Iterator[list[Headless | UdpPeer]]:
    things: list[Headless | UdpPeer] = []
    yield things
    for thing in things:
        thing.close()


def _serve(factory: Callable[..., ServerProcess], db: Database, *args: str) -> ServerProcess:
    """A real server on ``db``: start_server gives it ``--db str(db)``, the file or the URL."""
    return factory(*args, db=db.arg)


def _history(db: object, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "chatroom", "history", "--db", str(db), *args],
        capture_output=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


def test_history_shows_exactly_what_was_said_and_replay_works(
    migrated_database: Database,  # first: dropped after the server has stopped
    server_factory: Callable[..., ServerProcess],
    cleanup: list[Headless | UdpPeer],
) -> None:
    srv = _serve(server_factory, migrated_database, *FAST)
    alice, bob = UdpPeer(srv.addr), UdpPeer(srv.addr)
    cleanup += [alice, bob]
    alice.send("L alice")
    assert alice.recv() == b"OK"
    bob.send("L bob")
    assert bob.recv() == b"OK"
    assert alice.recv() == b"bob joined"
    said = [("alice", "hi bob"), ("bob", "hi alice"), ("alice", "lunch?"), ("bob", "sure, 12:30")]
    for name, text in said:
        sender, receiver = (alice, bob) if name == "alice" else (bob, alice)
        sender.send(f"C {name} {text}")
        assert receiver.recv() == f"{name} : {text}".encode()

    result = _history(srv.db, "-n", "0", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(r["kind"], r["name"], r["text"]) for r in rows] == [
        ("join", "alice", ""),
        ("join", "bob", ""),
        *[("message", n, t) for n, t in said],
    ]
    text = _history(srv.db, "-n", "2").stdout.decode()
    assert "alice : lunch?" in text and "bob : sure, 12:30" in text and "hi bob" not in text

    # A third user replays the last three events, then sees live traffic.
    carol = Headless(srv.addr, "carol", history=3)
    cleanup.append(carol)
    assert carol.logged_in.wait(10)
    assert carol.wait_until(lambda: len(carol.history) == 3, 5)
    assert [(e.name, e.text) for e in carol.history] == said[-3:]
    alice.send("C alice welcome carol")
    assert carol.wait_until(lambda: ("alice", "welcome carol") in carol.texts(), 5)
    assert [e.kind for e in carol.shown] == ["join", "message"]  # no replayed event twice


def test_replay_boundary_with_traffic_during_login(
    migrated_database: Database,  # first: dropped after the server has stopped
    server_factory: Callable[..., ServerProcess],
    cleanup: list[Headless | UdpPeer],
) -> None:
    """Messages that arrive while a client logs in are neither lost nor doubled."""
    srv = _serve(server_factory, migrated_database, *FAST)
    alice = UdpPeer(srv.addr)
    cleanup.append(alice)
    alice.send("L alice")
    assert alice.recv() == b"OK"
    stop = threading.Event()

    def chatter() -> None:
        i = 0
        while not stop.is_set():
            alice.send(f"C alice m{i}")
            i += 1
            time.sleep(0.002)

    thread = threading.Thread(target=chatter)
    thread.start()
    try:
        time.sleep(0.2)
        dave = Headless(srv.addr, "dave", history=20)
        cleanup.append(dave)
        assert dave.logged_in.wait(10)
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join()
    assert dave.wait_until(lambda: len(dave.history) == 20, 5)
    time.sleep(0.5)
    seen = [e.id for e in dave.history] + [e.id for e in dave.shown]
    assert seen == list(range(seen[0], seen[0] + len(seen)))  # contiguous: no gap, no repeat


def test_kill_9_during_a_burst_loses_nothing_anyone_saw(
    migrated_database: Database,  # first: dropped after the server has stopped
    server_factory: Callable[..., ServerProcess],
    cleanup: list[Headless | UdpPeer],
) -> None:
    srv = _serve(server_factory, migrated_database, *FAST)
    alice, bob = UdpPeer(srv.addr), UdpPeer(srv.addr)
    cleanup += [alice, bob]
    alice.send("L alice")
    assert alice.recv() == b"OK"
    bob.send("L bob")
    assert bob.recv() == b"OK"
    assert alice.recv() == b"bob joined"
    shown: list[str] = []
    for i in range(1500):
        alice.send(f"C alice burst {i}")
    # The server is mid-burst (it has shown something) when it is killed: on a busy
    # machine it may not have been scheduled at all within the first 1500 sends.
    shown.append(bob.recv(10.0).decode())
    for i in range(1500, 3000):
        alice.send(f"C alice burst {i}")
        if i == 2000:
            srv.proc.send_signal(signal.SIGKILL)
    srv.stop()
    while True:
        try:
            shown.append(bob.recv(0.5).decode())
        except TimeoutError:
            break
    assert shown, "bob saw nothing: the burst never reached the server"
    if migrated_database.path is not None:  # PostgreSQL checks its own pages
        with sqlite3.connect(migrated_database.path) as conn:
            assert conn.execute("pragma integrity_check").fetchone() == ("ok",)
    rows = migrated_database.sql("select text from events where kind = 'message'")
    stored = {text for (text,) in rows}
    missing = [line for line in shown if line.removeprefix("alice : ") not in stored]
    assert missing == []


def test_history_by_room_and_direct_message_end_to_end(migrated_database: Database) -> None:
    """Events in several rooms and direct conversations, stored the way the server
    stores them (EventStore.write_batch, ids global, room_seq per room), read back by
    the real `chatroom history` command."""
    db = migrated_database.arg
    t0 = time.time() - 600
    alice_bob, alice_carol = dm_key("alice", "bob"), dm_key("alice", "carol")
    heads: dict[str, int] = {}
    said: list[Event] = []

    def event(kind: EventKind, name: str, text: str, room: str, to: str | None = None) -> Event:
        heads[room] = heads.get(room, 0) + 1
        e = Event(
            len(said) + 1, kind, name, text, t0 + len(said), room=room, room_seq=heads[room], to=to
        )
        said.append(e)
        return e

    with EventStore.open(migrated_database.url) as store:
        store.write_batch(
            [
                event("join", "alice", "", LOBBY),
                event("join", "bob", "", LOBBY),
                event("join", "alice", "", "#dev"),
                event("message", "alice", "the build is green", "#dev"),
                event("message", "bob", "hello everyone", LOBBY),
            ]
        )
        store.write_batch(
            [
                event("message", "alice", "are you free for lunch", alice_bob, to="bob"),
                event("message", "bob", "yes, at noon", alice_bob, to="alice"),
                event("message", "carol", "lunch too?", alice_carol, to="alice"),
                event("message", "bob", "deploying the build", "#ops"),
                event("announce", "", "restart at six", LOBBY),
                event("announce", "", "restart at six", "#dev"),
                event("announce", "", "restart at six", "#ops"),
            ]
        )
        assert store.room_heads() == {LOBBY: 4, "#dev": 3, "#ops": 2, alice_bob: 2, alice_carol: 1}

    def rows(*args: str) -> list[dict[str, object]]:
        result = _history(db, "-n", "0", "--json", *args)
        assert result.returncode == 0, result.stderr
        return list(json.loads(result.stdout))

    everything = rows()
    assert [r["id"] for r in everything] == list(range(1, 13))
    assert [(r["room"], r["room_seq"], r["recipient"]) for r in everything[5:8]] == [
        ("@alice bob", 1, "bob"),
        ("@alice bob", 2, "alice"),
        ("@alice carol", 1, "alice"),
    ]
    assert [r["text"] for r in rows("--room", "#DEV")] == [
        "",
        "the build is green",
        "restart at six",
    ]
    assert [r["id"] for r in rows("--room", "#dev", "--room", "#ops")] == [3, 4, 9, 11, 12]
    assert [r["text"] for r in rows("--dm", "alice")] == [
        "are you free for lunch",
        "yes, at noon",
        "lunch too?",
    ]
    assert [r["text"] for r in rows("--dm", "bob", "-u", "bob")] == ["yes, at noon"]
    assert [r["id"] for r in rows("-q", "lunch")] == [6, 8]
    assert [r["id"] for r in rows("-q", "lunch", "--dm", "carol")] == [8]
    assert [r["id"] for r in rows("-q", "build", "--room", "#ops")] == [9]

    text = _history(db, "-n", "4")
    assert text.returncode == 0, text.stderr
    lines = [line.split("  ", 1)[1] for line in text.stdout.decode().splitlines()]
    assert lines == [
        "#ops  bob : deploying the build",
        "#lobby  [announcement] restart at six",
        "#dev  [announcement] restart at six",
        "#ops  [announcement] restart at six",
    ]
    dms = _history(db, "--dm", "alice").stdout.decode().splitlines()
    assert [line.split("  ", 1)[1] for line in dms] == [
        "@alice→bob  alice : are you free for lunch",
        "@bob→alice  bob : yes, at noon",
        "@carol→alice  carol : lunch too?",
    ]
    one_room = _history(db, "--room", "#dev").stdout.decode().splitlines()
    assert [line.split("  ", 1)[1] for line in one_room] == [
        "alice joined",
        "alice : the build is green",
        "[announcement] restart at six",
    ]
    csv_out = _history(db, "--format", "csv", "--dm", "carol").stdout.decode().splitlines()
    assert csv_out[0].endswith(",room,room_seq,recipient")
    assert csv_out[1].endswith(",@alice carol,1,alice")
    assert _history(db, "--count", "--room", "#ops").stdout == b"2\n"

    bad = _history(db, "--room", "#no room")
    assert bad.returncode == 2
    assert b"is not a room name" in bad.stderr


def test_at_a_terminal_history_says_when_it_showed_only_the_newest_or_nothing(
    tmp_path: Path,
) -> None:
    """From a tryout: plain `history` stopped at 20 events and `-u nobody` printed
    nothing, both without a word. At a terminal it now says so (on stderr); a
    pipe gets the events alone."""
    db = str(tmp_path / "chat.db")
    with EventStore.open(f"sqlite:///{db}") as store:
        store.write_batch(
            [Event(i, "message", "alice", f"line {i}", 1_764_000_000.0 + i) for i in range(1, 26)]
        )

    def at_terminal(*args: str) -> str:
        cmd = chatroom_cmd("history", "--db", db, *args)
        child = pexpect.spawn(cmd[0], cmd[1:], encoding="utf-8", timeout=20)
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0, child.before
        return str(child.before)

    out = at_terminal()
    assert "line 25" in out and "line 5" not in out
    assert "(the newest 20: -n N for more, -n 0 for all)" in out
    assert "newest" not in at_terminal("-n", "0")  # all 25: nothing more to say
    assert "no events match" in at_terminal("-u", "nobody")
    piped = subprocess.run(
        chatroom_cmd("history", "--db", db, "-u", "nobody"), capture_output=True, timeout=20
    )
    assert piped.returncode == 0 and piped.stdout == b"" and piped.stderr == b""
