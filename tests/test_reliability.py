"""The v2 dialect over real, impaired UDP: nothing lost, nothing shown twice.

Real server process, real client session state machines (tests/support/headless.py),
a seeded lossy proxy (testkit/lossy_proxy.py) between them. Short timeouts come
from configuration (--idle-timeout), never from weaker defaults.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chatroom import protocol as p
from testkit.lossy_proxy import Impairment, LossyProxy
from tests.support.headless import Headless
from tests.support.server import ServerProcess, UdpPeer, start_server

pytestmark = pytest.mark.integration

FAST = ("--rate-limit", "off", "--max-sessions-per-ip", "0")


@pytest.fixture
def clients() -> Iterator[Callable[..., Headless]]:
    made: list[Headless] = []

    def make(server: tuple[str, int], name: str, **kw: object) -> Headless:
        client = Headless(server, name, **kw)  # type: ignore[arg-type]
        made.append(client)
        assert client.logged_in.wait(30), f"{name} could not log in"
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def proxies() -> Iterator[Callable[..., LossyProxy]]:
    made: list[LossyProxy] = []

    def make(server: tuple[str, int], **kw: object) -> LossyProxy:
        proxy = LossyProxy(server, **kw)  # type: ignore[arg-type]
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.close()


def _message_rows(db: Path) -> list[tuple[int, str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "select id, name, text from events where kind = 'message' order by id"
        ).fetchall()


def _chat(clients: list[Headless], per_client: int, timeout: float) -> None:
    """Each client says ``per_client`` lines; wait until everyone has seen all."""
    for i in range(per_client):
        for c in clients:
            c.say(f"{c.name}-{i}")
    total = per_client * len(clients)
    for c in clients:
        assert c.wait_until(lambda c=c: len(c.texts()) >= total, timeout), (
            c.name,
            len(c.texts()),
            total,
            c.notices[-5:],
        )


def _check_exactly_once(clients: list[Headless], per_client: int) -> None:
    names = [c.name for c in clients]
    for c in clients:
        ids = [e.id for e in c.shown]
        assert ids == sorted(ids) and len(ids) == len(set(ids)), "order / duplicates"
        said = c.texts()
        for other in names:
            assert [t for n, t in said if n == other] == [f"{other}-{i}" for i in range(per_client)]


def _three_chat_300_each(
    server_factory: Callable[..., ServerProcess],
    clients: Callable[..., Headless],
    proxies: Callable[..., LossyProxy],
    impairment: Impairment,
    seed: int,
) -> LossyProxy:
    """Three clients behind a proxy impairing both ways say 300 lines each: every
    client shows every line once, in order, and exactly 900 rows are stored."""
    srv = server_factory(*FAST)
    proxy = proxies(srv.addr, up=impairment, down=impairment, seed=seed)
    group = [clients(proxy.address, n, seed=i) for i, n in enumerate(("alice", "bob", "carol"))]
    _chat(group, 300, 240)
    _check_exactly_once(group, 300)
    assert len(_message_rows(srv.db)) == 900
    return proxy


def test_lossless_baseline(
    server_factory: Callable[..., ServerProcess], clients: Callable[..., Headless]
) -> None:
    srv = server_factory(*FAST)
    group = [clients(srv.addr, n) for n in ("alice", "bob", "carol")]
    _chat(group, 20, 20)
    _check_exactly_once(group, 20)
    assert len(_message_rows(srv.db)) == 60


@pytest.mark.slow
def test_twenty_percent_loss_each_way(
    server_factory: Callable[..., ServerProcess],
    clients: Callable[..., Headless],
    proxies: Callable[..., LossyProxy],
) -> None:
    proxy = _three_chat_300_each(server_factory, clients, proxies, Impairment(drop=0.2), seed=20)
    assert proxy.counts["dropped"] > 100


@pytest.mark.slow
def test_duplication_reordering_and_jitter(
    server_factory: Callable[..., ServerProcess],
    clients: Callable[..., Headless],
    proxies: Callable[..., LossyProxy],
) -> None:
    imp = Impairment(duplicate=0.1, delay=0.005, jitter=0.03)
    proxy = _three_chat_300_each(server_factory, clients, proxies, imp, seed=10)
    assert proxy.counts["duplicated"] > 50


def test_lost_acks_store_once_and_retries_get_the_same_id(
    server_factory: Callable[..., ServerProcess],
    clients: Callable[..., Headless],
    proxies: Callable[..., LossyProxy],
) -> None:
    srv = server_factory(*FAST)

    def proof_of_storage(data: bytes) -> object:
        """The client learns its message is stored from ACKED or from its own EV:
        drop the first three of each, per message."""
        frame = p.parse_server(data)
        if isinstance(frame, p.Acked):
            return ("acked", frame.seq)
        if isinstance(frame, p.EventFrame) and frame.event.name == "alice":
            return ("ev", frame.event.text)
        return None

    proxy = proxies(srv.addr, down=Impairment(drop_first_key=proof_of_storage, drop_first_count=3))
    alice = clients(proxy.address, "alice")
    bob = clients(srv.addr, "bob")
    for i in range(10):
        alice.say(f"m{i}")
    assert bob.wait_until(lambda: len(bob.texts()) >= 10, 60)
    assert alice.wait_until(lambda: len(alice.session.outbox) == 0, 60)
    rows = _message_rows(srv.db)
    assert [t for _, _, t in rows] == [f"m{i}" for i in range(10)]
    seen_acks: dict[int, list[int]] = {}
    for data in list(proxy.downstream):
        frame = p.parse_server(data)
        if isinstance(frame, p.Acked):
            seen_acks.setdefault(frame.seq, []).append(frame.id)
    assert len(seen_acks) == 10
    # Retries happened (which proof reaches the client first, a retried ACKED or a
    # retransmitted EV, is a race; both are fine), and were answered consistently.
    assert sum(len(ids) for ids in seen_acks.values()) >= 20, seen_acks
    assert all(len(set(ids)) == 1 for ids in seen_acks.values())  # every retry: same id
    assert sorted(ids[0] for ids in seen_acks.values()) == [r[0] for r in rows]
    assert proxy.counts["dropped"] >= 10


@pytest.mark.slow
def test_blackout_recovers_without_evictions(
    server_factory: Callable[..., ServerProcess],
    clients: Callable[..., Headless],
    proxies: Callable[..., LossyProxy],
) -> None:
    srv = server_factory(*FAST, "--idle-timeout", "60")
    proxy = proxies(srv.addr)
    alice = clients(proxy.address, "alice")
    bob = clients(srv.addr, "bob")
    proxy.blackout(10)
    for i in range(5):
        alice.say(f"a{i}")
        bob.say(f"b{i}")
    time.sleep(10)
    ended = time.monotonic()
    for c in (alice, bob):
        assert c.wait_until(lambda c=c: len(c.texts()) >= 10, 15)
    assert time.monotonic() - ended < 15
    with sqlite3.connect(srv.db) as conn:
        assert conn.execute("select count(*) from events where kind = 'timeout'").fetchone() == (0,)


def _spawn(server: tuple[str, int], name: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.headless", server[0], str(server[1]), name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "LOGGEDIN"
    return proc


def test_killed_client_is_evicted_and_name_reusable(
    server_factory: Callable[..., ServerProcess],
    clients: Callable[..., Headless],
) -> None:
    srv = server_factory(*FAST, "--idle-timeout", "2")
    watcher = clients(srv.addr, "watcher")
    proc = _spawn(srv.addr, "alice")
    try:
        proc.kill()
        proc.wait(5)
        assert watcher.wait_until(lambda: ("alice", "") in watcher.texts("timeout"), 2 + 3)
        again = clients(srv.addr, "alice")
        assert again.logged_in.is_set()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)
        for stream in (proc.stdin, proc.stdout):
            if stream:
                stream.close()


def test_stopped_client_comes_back(
    server_factory: Callable[..., ServerProcess],
    clients: Callable[..., Headless],
) -> None:
    srv = server_factory(*FAST, "--idle-timeout", "2")
    watcher = clients(srv.addr, "watcher")
    proc = _spawn(srv.addr, "alice")
    assert proc.stdin and proc.stdout
    try:
        proc.send_signal(signal.SIGSTOP)
        assert watcher.wait_until(lambda: ("alice", "") in watcher.texts("timeout"), 5)
        watcher.say("while you were away")
        time.sleep(0.3)
        proc.send_signal(signal.SIGCONT)
        proc.stdin.write("back again\n")
        proc.stdin.flush()
        assert watcher.wait_until(lambda: ("alice", "back again") in watcher.texts(), 10)
        lines = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any("while you were away" in x for x in lines):
            lines.append(proc.stdout.readline())
        assert any("while you were away" in x for x in lines)  # resumed from its last id
        assert sum("while you were away" in x for x in lines) == 1
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.wait(5)
        proc.stdin.close()
        proc.stdout.close()


def test_server_killed_and_restarted_loses_nothing(
    tmp_path: Path, clients: Callable[..., Headless]
) -> None:
    db = tmp_path / "chat.db"
    first = start_server(db, *FAST)
    port = first.port
    alice = clients(first.addr, "alice")
    bob = clients(first.addr, "bob")
    second: ServerProcess | None = None
    try:
        for i in range(30):
            alice.say(f"alice-{i}")
            bob.say(f"bob-{i}")
            if i == 15:
                first.stop(signal.SIGKILL)
                second = _restart(db, port)
        for c in (alice, bob):
            assert c.wait_until(lambda c=c: len(c.texts()) >= 60, 60), (c.name, c.notices)
        _check_exactly_once([alice, bob], 30)
        assert len(_message_rows(db)) == 60
        with sqlite3.connect(db) as conn:
            assert conn.execute("pragma integrity_check").fetchone() == ("ok",)
    finally:
        first.stop()
        if second is not None:
            second.stop()


def _restart(db: Path, port: int) -> ServerProcess:
    deadline = time.monotonic() + 10
    while True:
        try:
            return start_server(db, *FAST, "--port", str(port))
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_classic_peer_unaffected_by_v2(
    server_factory: Callable[..., ServerProcess], clients: Callable[..., Headless]
) -> None:
    srv = server_factory(*FAST)
    classic = UdpPeer(srv.addr)
    try:
        classic.send("L carol")
        assert classic.recv() == b"OK"
        alice = clients(srv.addr, "alice")
        assert classic.recv() == b"alice joined"
        alice.say("hi carol")
        assert classic.recv() == b"alice : hi carol"
        classic.send("C carol hi alice")
        assert alice.wait_until(lambda: ("carol", "hi alice") in alice.texts(), 5)
    finally:
        classic.close()


def _room_chat_under(
    server_factory: Callable[..., ServerProcess],
    clients: Callable[..., Headless],
    proxies: Callable[..., LossyProxy],
    impairment: Impairment,
    seed: int,
) -> LossyProxy:
    """alice and bob talk in #dev, carol in #lobby, alice writes to bob and bob
    to carol, all behind a proxy impairing both ways: every conversation
    arrives complete, in order, once, and nowhere it should not."""
    n, dms = 100, 30
    srv = server_factory(*FAST)
    proxy = proxies(srv.addr, up=impairment, down=impairment, seed=seed)
    alice, bob, carol = (clients(proxy.address, m, seed=i) for i, m in enumerate(NAMES))
    for c in (alice, bob):
        c.say("/join #dev")
    for c in (alice, bob):  # both in #dev before anyone talks (else it is history)
        joined = lambda c=c: any(e.room == "#dev" and e.name == c.name for e in c.shown)  # noqa: E731
        assert c.wait_until(joined, 60), (c.name, c.notices[-5:])
    for i in range(n):
        alice.say(f"alice-{i}")
        bob.say(f"bob-{i}")
        carol.say(f"carol-{i}")
        if i < dms:
            alice.say(f"/msg bob alice-dm-{i}")
            bob.say(f"/msg carol bob-dm-{i}")
    expect = {
        "alice": {"#dev": ["alice", "bob"], "#lobby": ["carol"]},
        "bob": {"#dev": ["alice", "bob"], "#lobby": ["carol"], "@alice": ["alice-dm"]},
        "carol": {"#lobby": ["carol"], "@bob": ["bob-dm"]},
    }

    def lines(c: Headless, where: str) -> list[str]:
        return [e.text for e in c.shown if e.kind == "message" and e.room == where]

    def wanted(who: str, where: str) -> list[str]:
        prefixes = expect[who][where]
        count = dms if where.startswith("@") else n
        return sorted(f"{pre}-{i}" for pre in prefixes for i in range(count))

    def complete(c: Headless) -> bool:
        return all(sorted(lines(c, w)) == wanted(c.name, w) for w in expect[c.name])

    def missing(c: Headless) -> dict[str, list[str]]:
        return {w: sorted(set(wanted(c.name, w)) - set(lines(c, w))) for w in expect[c.name]}

    for c in (alice, bob, carol):
        assert c.wait_until(lambda c=c: complete(c), 240), (c.name, missing(c), c.notices[-5:])
    for c in (alice, bob, carol):
        # Nothing from a conversation it is not in (its own DMs show under the peer).
        extra = {e.room for e in c.shown if e.kind == "message"} - set(expect[c.name])
        assert extra <= {"@bob", "@carol"} - {f"@{c.name}"}, (c.name, extra)
        for where in {e.room for e in c.shown}:
            ids = [e.id for e in c.shown if e.room == where]
            assert ids == sorted(set(ids)), f"{c.name} {where}: order or duplicates"
            for pre in expect[c.name].get(where, []):
                mine = [t for t in lines(c, where) if t.rsplit("-", 1)[0] == pre]
                count = dms if where.startswith("@") else n
                assert mine == [f"{pre}-{i}" for i in range(count)], (c.name, where, pre)
    rows = _message_rows(srv.db)
    assert len(rows) == 3 * n + 2 * dms  # each line stored once
    return proxy


NAMES = ("alice", "bob", "carol")


@pytest.mark.slow
def test_rooms_and_direct_messages_at_twenty_percent_loss(
    server_factory: Callable[..., ServerProcess],
    clients: Callable[..., Headless],
    proxies: Callable[..., LossyProxy],
) -> None:
    proxy = _room_chat_under(server_factory, clients, proxies, Impairment(drop=0.2), seed=7)
    assert proxy.counts["dropped"] > 100


@pytest.mark.slow
def test_rooms_and_direct_messages_with_duplication_and_jitter(
    server_factory: Callable[..., ServerProcess],
    clients: Callable[..., Headless],
    proxies: Callable[..., LossyProxy],
) -> None:
    imp = Impairment(duplicate=0.1, delay=0.005, jitter=0.03)
    proxy = _room_chat_under(server_factory, clients, proxies, imp, seed=3)
    assert proxy.counts["duplicated"] > 50
