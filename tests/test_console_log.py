"""The server's terminal: a line per join, leave and timeout, a summary a minute.

Pure tests of chatroom/server/console_log.py (and of the Committer handing it
only what is committed), then a real ``chatroom serve`` whose stdout is read.
"""

from __future__ import annotations

import io
import os
import re
import selectors
import time
from collections.abc import Callable, Iterable

import pytest

from chatroom.events import Event, EventKind, dm_key
from chatroom.server.commits import Committer, StorageFailure
from chatroom.server.console_log import ConsoleLog
from chatroom.server.effects import Store
from chatroom.server.storage_state import StorageState
from tests.support.headless import Headless
from tests.support.server import ServerProcess, UdpPeer

WALL = time.mktime((2025, 1, 31, 14, 2, 11, 0, 0, -1))


def event(id_: int, kind: EventKind, name: str, room: str = "#lobby") -> Event:
    return Event(id_, kind, name, "hi" if kind == "message" else "", WALL, room=room)


class Online:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> int:
        return self.count


def console(every: float = 60.0) -> tuple[ConsoleLog, io.StringIO, Online]:
    out, online = io.StringIO(), Online()
    return ConsoleLog(out, online, 0.0, every=every), out, online


def lines(out: io.StringIO) -> list[str]:
    return out.getvalue().splitlines()


@pytest.mark.pure
def test_sessions_back_after_a_restart_are_said_once_per_tick_that_saw_them() -> None:
    """From a tryout: after a restart the clients came back quietly (no join is
    stored for them) and the terminal said nothing while status said 2 online."""
    out, online = io.StringIO(), Online()
    back = [0]
    log = ConsoleLog(out, online, 0.0, every=60.0, resumed=lambda: back[0])
    log.tick(0.1, WALL)
    assert lines(out) == []
    back[0], online.count = 2, 2
    log.tick(0.2, WALL)
    log.tick(0.3, WALL)  # nothing new: nothing said
    back[0], online.count = 3, 3
    log.tick(0.4, WALL)
    assert lines(out) == [
        "14:02:11 2 user(s) back after the restart (2 online)",
        "14:02:11 1 user(s) back after the restart (3 online)",
    ]


@pytest.mark.pure
def test_a_line_per_join_leave_and_timeout_with_the_count_online() -> None:
    log, out, online = console()
    online.count = 3
    log.committed([event(1, "join", "alice"), event(2, "message", "alice")])
    online.count = 2
    log.committed([event(3, "quit", "bob", "#dev")])
    online.count = 1
    log.committed([event(4, "timeout", "carol"), event(5, "announce", "")])
    assert lines(out) == [
        "14:02:11 alice joined #lobby (3 online)",
        "14:02:11 bob left #dev (2 online)",
        "14:02:11 carol timed out #lobby (1 online)",
    ]


@pytest.mark.pure
def test_leaving_several_rooms_at_once_is_one_line() -> None:
    log, out, online = console()
    online.count = 1
    log.committed(
        [
            event(1, "quit", "bob", "#lobby"),
            event(2, "quit", "bob", "#dev"),
            event(3, "timeout", "carol", "#dev"),
            event(4, "message", "alice", dm_key("alice", "bob")),
        ]
    )
    assert lines(out) == [
        "14:02:11 bob left #lobby, #dev (1 online)",
        "14:02:11 carol timed out #dev (1 online)",
    ]


@pytest.mark.pure
def test_names_cannot_drive_the_operator_s_terminal() -> None:
    log, out, _ = console()
    log.committed([event(1, "join", "a\x1b[2Jb")])
    assert "\x1b" not in out.getvalue()


@pytest.mark.pure
def test_a_summary_a_minute_with_messages_per_second_and_users_online() -> None:
    log, out, online = console()
    online.count = 2
    log.committed([event(i, "message", "alice") for i in range(1, 31)])
    log.tick(59.9, WALL)
    assert lines(out) == []
    log.tick(60.0, WALL)
    assert lines(out) == ["14:02:11 last minute: 30 message(s) (0.50/s), 2 online"]
    log.tick(100.0, WALL)
    log.tick(120.0, WALL)  # the next minute counts from the last summary
    assert lines(out)[-1] == "14:02:11 last minute: 0 message(s) (0.00/s), 2 online"


@pytest.mark.pure
def test_an_idle_empty_server_prints_no_summary() -> None:
    log, out, online = console()
    log.tick(60.0, WALL)
    log.tick(600.0, WALL)  # late (a suspended laptop): one line, not ten
    assert lines(out) == []
    online.count = 1
    log.committed([event(1, "join", "alice")])
    online.count = 0
    log.committed([event(2, "quit", "alice")])
    log.tick(660.0, WALL)  # somebody came and went: worth a line
    assert lines(out)[-1] == "14:02:11 last minute: 0 message(s) (0.00/s), 0 online"
    log.tick(720.0, WALL)
    assert len(lines(out)) == 3


class Sink:
    def __init__(self) -> None:
        self.fail = False
        self.stored: list[Event] = []

    def write_batch(self, events: Iterable[Event]) -> None:
        if self.fail:
            raise StorageFailure("disk full")
        self.stored += events


@pytest.mark.pure
def test_only_committed_events_are_reported() -> None:
    log, out, online = console()
    online.count = 1
    sink = Sink()
    commits = Committer(sink, StorageState(), on_commit=log.committed)
    sink.fail = True
    commits.apply([Store(event(1, "join", "alice"))], 0.0)
    assert lines(out) == []  # not stored: not reported
    sink.fail = False
    commits.retry(10.0)
    assert lines(out) == ["14:02:11 alice joined #lobby (1 online)"]
    commits.apply([Store(event(2, "quit", "alice"))], 11.0)
    assert len(lines(out)) == 2


@pytest.mark.pure
def test_an_output_nobody_reads_never_blocks_the_server() -> None:
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    try:
        while True:  # fill the pipe, as a terminal stopped with Ctrl-S would be
            os.write(write_fd, b"x" * 4096)
    except BlockingIOError:
        pass
    with os.fdopen(write_fd, "w") as out, os.fdopen(read_fd, "rb") as reader:
        log = ConsoleLog(out, lambda: 1, 0.0)
        started = time.monotonic()
        for i in range(100):
            log.committed([event(i, "join", f"user{i}")])
        assert time.monotonic() - started < 1.0
        assert log.dropped == 100
        os.set_blocking(read_fd, False)
        while True:  # the terminal reads again
            try:
                if not reader.read(65536):
                    break
            except BlockingIOError:
                break
        log.committed([event(101, "join", "late")])
        out.flush()
        tail = reader.read(65536) or b""
    assert b"late joined #lobby (1 online) (100 earlier line(s) not shown" in tail


# ------------------------------------------------------------------ a real server


def read_until(srv: ServerProcess, pattern: str, timeout: float = 10.0) -> str:
    """The server's stdout from where the last read stopped until ``pattern``
    (a regular expression) has appeared."""
    assert srv.proc.stdout is not None
    fd = srv.proc.stdout.fileno()
    seen = b"".join(srv.output)
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while not re.search(pattern, seen.decode("utf-8", "replace")):
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                raise AssertionError(f"no {pattern!r} in {seen.decode(errors='replace')!r}")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(f"server ended; no {pattern!r} in {seen!r}")
            srv.output.append(chunk)
            seen += chunk
    return seen.decode("utf-8", "replace")


STAMP = r"\d\d:\d\d:\d\d"


@pytest.mark.integration
def test_the_server_prints_joins_leaves_timeouts_and_a_summary(
    server_factory: Callable[..., ServerProcess], peers: Callable[[tuple[str, int]], UdpPeer]
) -> None:
    srv = server_factory("--idle-timeout", "1", "--summary-every", "1")
    alice = peers(srv.addr)
    alice.send("L alice")
    assert alice.recv() == b"OK"
    read_until(srv, rf"{STAMP} alice joined #lobby \(1 online\)")
    bob = Headless(srv.addr, "bob")
    try:
        assert bob.logged_in.wait(10)
        read_until(srv, rf"{STAMP} bob joined #lobby \(2 online\)")
        alice.send("C alice hello")
        summary = rf"{STAMP} last 1 s: [1-9]\d* message\(s\) \(\d+\.\d\d/s\), 2 online"
        read_until(srv, summary)
    finally:
        bob.close()  # silent from now on, no BYE: the server times it out
    read_until(srv, rf"{STAMP} bob timed out #lobby \(1 online\)")
    alice.send("Q alice")
    out = read_until(srv, rf"{STAMP} alice left #lobby \(0 online\)")
    assert "hello" not in out, "messages are counted, not printed"


@pytest.mark.integration
def test_quiet_prints_none_of_it(
    server_factory: Callable[..., ServerProcess], peers: Callable[[tuple[str, int]], UdpPeer]
) -> None:
    srv = server_factory("-q", "--summary-every", "0.2")
    alice = peers(srv.addr)
    alice.send("L alice")
    assert alice.recv() == b"OK"
    alice.send("C alice hello")
    time.sleep(0.8)  # several summaries would be due
    alice.send("Q alice")
    assert alice.recv() == b"EXIT"
    assert srv.stop() == 0
    out = b"".join([srv.banner, *srv.output]).decode()
    assert "joined" not in out and "left" not in out and "last" not in out, out
    assert "listening on udp://" in out and "stopped" in out
