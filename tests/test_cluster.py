"""Several nodes as one chat: real `chatroom serve --cluster` processes sharing
one PostgreSQL database and Redis, with real clients on each node.

What users of one node must see of the others: the same rooms, in the same
order everywhere; direct messages across nodes; names unique across the
cluster; who is where; announcements everywhere; a dead node's users timed
out everywhere; a broker that restarts costs nothing.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import create_engine, text

from testkit.lossy_proxy import Impairment, LossyProxy
from testkit.processes import chatroom_cmd
from tests.cluster_support import Cluster, PrivateRedis
from tests.pg import PostgresServer
from tests.support.headless import Headless
from tests.support.pty import ClusterClient
from tests.support.server import UdpPeer

pytestmark = pytest.mark.integration

WAIT = 10.0


@pytest.fixture
def cluster(postgres: PostgresServer) -> Iterator[Cluster]:
    url = postgres.create(migrated=True)
    c = Cluster(url)
    try:
        yield c
    finally:
        c.stop()
        postgres.drop(url)


@pytest.fixture
def clients() -> Iterator[Callable[..., Headless]]:
    made: list[Headless] = []

    def make(addr: tuple[str, int], name: str, **kw: object) -> Headless:
        client = Headless(addr, name, **kw)  # type: ignore[arg-type]
        made.append(client)
        assert client.logged_in.wait(WAIT), f"{name} could not log in ({client.refused})"
        return client

    yield make
    # All quit at once, then wait up to 2 s in all: a client whose node or proxy
    # the test has already stopped waits out the whole 2 s, and one after the
    # other they added seconds to every such test.
    for client in made:
        client.quit(0.0)
    deadline = time.monotonic() + 2.0
    for client in made:
        client.finished.wait(max(0.0, deadline - time.monotonic()))
        client.close()


def stored(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql)).all()]
    finally:
        engine.dispose()


def positions(client: Headless, room: str) -> list[tuple[int, int, str, str]]:
    """What ``client`` was shown of ``room``: (position, id, kind, name)."""
    with client._lock:
        return [(e.room_seq, e.id, e.kind, e.name) for e in client.shown if e.room == room]


def test_three_nodes_chat_as_one_in_rooms_and_direct_messages(
    cluster: Cluster, clients: Callable[..., Headless]
) -> None:
    n1, n2, n3 = cluster.node(), cluster.node(), cluster.node()
    alice = clients(n1.addr, "alice")
    bob = clients(n2.addr, "bob")
    carol = clients(n3.addr, "carol")
    assert alice.wait_until(lambda: ("carol", "") in alice.texts("join"), WAIT)

    alice.say("hello from one")
    bob.say("hello from two")
    for c in (alice, bob, carol):
        assert c.wait_until(
            lambda c=c: {("alice", "hello from one"), ("bob", "hello from two")} <= set(c.texts()),
            WAIT,
        ), c.shown

    bob.say("/join #dev")
    carol.say("/join #dev")
    assert bob.wait_until(
        lambda: any(e.room == "#dev" and e.name == "carol" for e in bob.shown), WAIT
    )
    carol.say("/msg bob only for you")  # a direct message, node 3 -> node 2
    carol.say("in dev")  # carol's current room is #dev now
    assert bob.wait_until(lambda: ("carol", "in dev") in bob.texts(), WAIT)
    assert bob.wait_until(lambda: ("carol", "only for you") in bob.texts(), WAIT)
    alice.say("last")
    for c in (bob, carol):
        assert c.wait_until(lambda c=c: ("alice", "last") in c.texts(), WAIT)
    assert ("carol", "in dev") not in alice.texts()  # not in #dev
    assert ("carol", "only for you") not in alice.texts()

    # One order per room, the same on every node: what each was shown of the
    # lobby from the first event they all saw.
    lobby = [positions(c, "#lobby") for c in (alice, bob, carol)]
    common = max(p[0][0] for p in lobby)
    trimmed = [[x for x in p if x[0] >= common] for p in lobby]
    shortest = min(len(t) for t in trimmed)
    assert trimmed[0][:shortest] == trimmed[1][:shortest] == trimmed[2][:shortest]
    for p in lobby:  # contiguous: nothing lost, nothing twice
        seqs = [x[0] for x in p]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert positions(bob, "#dev")[-1][:2] == positions(carol, "#dev")[-1][:2]

    # The record: every event once, each room's positions contiguous.
    rows = stored(cluster.db_url, "SELECT room, room_seq, id, kind, name, text FROM events")
    texts = [r[5] for r in rows if r[3] == "message"]
    assert sorted(texts) == sorted(
        ["hello from one", "hello from two", "only for you", "in dev", "last"]
    )
    for room in {r[0] for r in rows}:
        seqs = sorted(r[1] for r in rows if r[0] == room)
        assert seqs == list(range(1, len(seqs) + 1)), room
    assert len({r[2] for r in rows}) == len(rows)  # no id twice


def test_a_name_is_unique_across_nodes_and_free_again_after_it_left(
    cluster: Cluster, clients: Callable[..., Headless]
) -> None:
    n1, n2 = cluster.node(), cluster.node()
    a = UdpPeer(n1.addr)
    b = UdpPeer(n2.addr)
    try:
        a.send("L alice")
        assert a.recv() == b"OK"
        b.send("L Alice")
        assert b.recv() == b"name already taken"
        v2 = Headless(n2.addr, "alice")
        try:
            assert v2.finished.wait(WAIT) and v2.refused == "taken"
        finally:
            v2.close()
        a.send("Q alice")
        assert a.recv() == b"EXIT"
        b.send("L alice")
        assert b.recv() == b"OK"
    finally:
        a.close()
        b.close()


def test_who_status_and_announce_see_the_whole_cluster(
    cluster: Cluster, clients: Callable[..., Headless]
) -> None:
    n1, n2 = cluster.node(), cluster.node()
    alice = clients(n1.addr, "alice")
    bob = clients(n2.addr, "bob")
    assert alice.wait_until(lambda: ("bob", "") in alice.texts("join"), WAIT)
    who = subprocess.run(
        chatroom_cmd("who", "--port", str(n1.port)), capture_output=True, text=True, timeout=20
    )
    assert who.returncode == 0, who.stderr
    assert "2 online" in who.stdout and "alice" in who.stdout and "bob" in who.stdout
    status = subprocess.run(
        chatroom_cmd("status", "--port", str(n2.port)), capture_output=True, text=True, timeout=20
    )
    assert status.returncode == 0, status.stderr
    assert "online: 2 in 1 room(s)" in status.stdout
    assert f"cluster: {cluster.name}, node 127.0.0.1:{n2.port}/" in status.stdout
    assert "broker up" in status.stdout
    announce = subprocess.run(
        chatroom_cmd("announce", "--port", str(n2.port), "maintenance at noon"),
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert announce.returncode == 0, announce.stderr
    for c in (alice, bob):
        assert c.wait_until(lambda c=c: ("", "maintenance at noon") in c.texts("announce"), WAIT)


def test_a_killed_node_s_users_time_out_everywhere_and_their_names_come_free(
    cluster: Cluster, clients: Callable[..., Headless]
) -> None:
    n1, n2 = cluster.node(), cluster.node()
    bob = clients(n2.addr, "bob")
    carol = UdpPeer(n1.addr)
    try:
        carol.send("L carol")
        assert carol.recv() == b"OK"
        assert bob.wait_until(lambda: ("carol", "") in bob.texts("join"), WAIT)
        killed_at = time.monotonic()
        n1.stop(sig=9)
        assert bob.wait_until(
            lambda: ("carol", "") in bob.texts("timeout"), cluster.idle_timeout + WAIT
        )
        # Within the idle timeout (plus the one-second look for dead nodes).
        assert time.monotonic() - killed_at < cluster.idle_timeout + 0.5
        again = UdpPeer(n2.addr)
        try:
            again.send("L carol")
            assert again.recv() == b"OK"
        finally:
            again.close()
    finally:
        carol.close()
    # A cluster node answers OK before the join is stored (every send may go at
    # once: chatroom/cluster/node.py), so the record may lag it a moment on a busy
    # machine: read it until the third event is in, then check all of it.
    query = "SELECT kind FROM events WHERE name = 'carol' ORDER BY id"
    deadline = time.monotonic() + WAIT
    while len(rows := stored(cluster.db_url, query)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [r[0] for r in rows] == ["join", "timeout", "join"]


def test_a_broker_restart_loses_and_repeats_nothing(
    postgres: PostgresServer, clients: Callable[..., Headless]
) -> None:
    broker = PrivateRedis()
    broker.start()
    url = postgres.create(migrated=True)
    cluster = Cluster(url, broker_url=broker.url)
    try:
        n1, n2 = cluster.node(), cluster.node()
        alice = clients(n1.addr, "alice")
        bob = clients(n2.addr, "bob")
        assert alice.wait_until(lambda: ("bob", "") in alice.texts("join"), WAIT)
        alice.say("before")
        assert bob.wait_until(lambda: ("alice", "before") in bob.texts(), WAIT)
        broker.stop()
        alice.say("during one")
        bob.say("during two")
        time.sleep(0.5)
        broker.start()
        alice.say("after")
        want = {
            ("alice", "before"),
            ("alice", "during one"),
            ("bob", "during two"),
            ("alice", "after"),
        }
        for c in (alice, bob):
            assert c.wait_until(lambda c=c: want <= set(c.texts()), WAIT), c.texts()
            assert len(c.texts()) == len(set(c.texts())), "something shown twice"
        time.sleep(1.5)  # the nodes' claims renewed after the restart (a third of 3 s)
        for c in (alice, bob):
            # Their nodes claimed their names again: they were never dropped
            # (which their clients would have had to log in again for).
            assert "reconnected" not in c.notices, c.notices
        # Logins work again once the broker is back (names are claimed there).
        carol = clients(n2.addr, "carol")
        assert carol.logged_in.is_set()
        rows = stored(url, "SELECT text FROM events WHERE kind = 'message'")
        assert sorted(r[0] for r in rows) == sorted(t for _, t in want)
    finally:
        cluster.stop()
        broker.stop()
        postgres.drop(url)


def test_a_lossy_network_between_clients_and_nodes_loses_and_repeats_nothing(
    cluster: Cluster, clients: Callable[..., Headless]
) -> None:
    """10% loss, duplicates and reordering both ways between each client and its
    node; three clients on two nodes chat: everyone sees every line once, in
    one order per room."""
    n1, n2 = cluster.node(), cluster.node()
    bad = Impairment(drop=0.1, duplicate=0.05, delay=0.005, jitter=0.01)
    proxies = [
        LossyProxy(n1.addr, up=bad, down=bad, seed=1),
        LossyProxy(n2.addr, up=bad, down=bad, seed=2),
        LossyProxy(n2.addr, up=bad, down=bad, seed=3),
    ]
    try:
        people = [
            clients(proxy.address, name, history=0)
            for proxy, name in zip(proxies, ("ann", "ben", "cat"), strict=True)
        ]
        assert people[0].wait_until(lambda: ("cat", "") in people[0].texts("join"), WAIT * 2)
        for i in range(10):
            for c in people:
                c.say(f"{c.name}-{i}")
        want = {(c.name, f"{c.name}-{i}") for c in people for i in range(10)}
        for c in people:
            assert c.wait_until(lambda c=c: want <= set(c.texts()), WAIT * 3), c.name
        orders = [[t for t in c.texts() if t in want] for c in people]
        assert orders[0] == orders[1] == orders[2]  # one order, whatever node
        assert all(len(o) == len(want) for o in orders)  # nothing twice
    finally:
        for proxy in proxies:
            proxy.close()
    rows = stored(cluster.db_url, "SELECT text FROM events WHERE kind = 'message'")
    assert sorted(r[0] for r in rows) == sorted(t for _, t in want)


def test_nodes_started_together_on_a_new_database_all_come_up(postgres: PostgresServer) -> None:
    """The first start migrates while the others wait for it (an advisory lock)."""
    url = postgres.create(migrated=False)
    cluster = Cluster(url)
    try:
        with ThreadPoolExecutor(3) as pool:
            nodes = list(pool.map(lambda _: cluster.node(), range(3)))
        assert len({n.port for n in nodes}) == 3
        peer = UdpPeer(nodes[2].addr)
        try:
            peer.send("L zoe")
            assert peer.recv() == b"OK"
        finally:
            peer.close()
    finally:
        cluster.stop()
        postgres.drop(url)


@pytest.mark.slow
def test_the_real_client_moves_off_a_killed_node_nothing_lost_or_repeated(
    postgres: PostgresServer,
) -> None:
    """`chatroom join --server A --server B` in a pty: A is killed with SIGKILL
    mid-chat; the client moves to B and takes its session along (no timeout, no
    join announced: it never left), the line typed meanwhile is delivered once,
    and the chat goes on."""
    url = postgres.create(migrated=True)
    cluster = Cluster(url, idle_timeout=20.0)  # a lease longer than the move takes
    alice: ClusterClient | None = None
    bob: Headless | None = None
    try:
        a, b = cluster.node(), cluster.node()
        alice = ClusterClient(
            "alice", "--server", f"127.0.0.1:{a.port}", "--server", f"127.0.0.1:{b.port}"
        )
        alice.ready().expect("#lobby> ")
        bob = Headless(b.addr, "bob")
        assert bob.logged_in.wait(WAIT)
        alice.sendline("before the kill")
        assert bob.wait_until(lambda: ("alice", "before the kill") in bob.texts(), WAIT)
        a.stop(signal.SIGKILL)
        alice.sendline("during the move")
        alice.expect(f"connected to 127.0.0.1:{b.port}", timeout=20)
        alice.expect("✓ delivered", timeout=10)
        assert bob.wait_until(lambda: ("alice", "during the move") in bob.texts(), WAIT)
        bob.say("welcome over")
        alice.said("welcome over")
        alice.sendline("/quit")
        assert alice.wait_exit() == 0
        assert bob.wait_until(lambda: ("alice", "") in bob.texts("quit"), WAIT)
        assert bob.texts().count(("alice", "during the move")) == 1
        assert ("alice", "") not in bob.texts("timeout")
        # Her one join (bob may have been shown it: his node may have applied
        # it just after he came); no second one for the move.
        assert bob.texts("join").count(("alice", "")) <= 1
    finally:
        if alice is not None:
            alice.close()
        if bob is not None:
            bob.quit(2.0)
            bob.close()
        cluster.stop()
    rows = stored(url, "SELECT name, kind, text FROM events ORDER BY id")
    postgres.drop(url)
    assert [r for r in rows if r[0] == "alice"] == [
        ("alice", "join", ""),
        ("alice", "message", "before the kill"),
        ("alice", "message", "during the move"),
        ("alice", "quit", ""),
    ]


def test_a_node_stopped_cleanly_has_its_users_timed_out_at_once(
    postgres: PostgresServer, clients: Callable[..., Headless]
) -> None:
    """Ctrl-C on a node: its users are told, and those who do not move to
    another node are timed out within a second or two, not after the lease
    (here ten seconds)."""
    url = postgres.create(migrated=True)
    cluster = Cluster(url, idle_timeout=20.0)
    try:
        n1, n2 = cluster.node(), cluster.node()
        bob = clients(n2.addr, "bob")
        carol = UdpPeer(n1.addr)
        try:
            carol.send("L carol")
            assert carol.recv() == b"OK"
            assert bob.wait_until(lambda: ("carol", "") in bob.texts("join"), WAIT)
            stopped_at = time.monotonic()
            assert n1.stop() == 0
            heard = [carol.recv(), carol.recv()]  # (bob's join came before)
            assert heard[-1].endswith(b"server shutting down")  # told, not stored
            assert bob.wait_until(lambda: ("carol", "") in bob.texts("timeout"), WAIT)
            assert time.monotonic() - stopped_at < 5.0
            assert ("", "server shutting down") not in bob.texts("announce")
        finally:
            carol.close()
    finally:
        cluster.stop()
        postgres.drop(url)
