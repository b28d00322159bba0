"""Client sessions against the real room state machine over a simulated network.

Pure tier: no sockets, no sleeps. ``SimNet`` carries datagrams between
``ClientSession``s and a ``Room`` with a seeded random network (loss,
duplication, reordering through jitter, blackouts) on an explicit clock, and
checks what each client shows: every event exactly once, in id order, nothing
lost, every message stored once. A second server node (``other``, at
``SERVER_B``, on the same stored events) lets clients given both move over.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import defaultdict
from dataclasses import dataclass, field

import pytest

from chatroom import protocol as p
from chatroom.client.effects import Finished, Notice, Output, ShowEvent, Transmit, UseServer
from chatroom.client.session import ClientSession, SessionConfig, State
from chatroom.events import Event
from chatroom.registry import Address, make_registry
from chatroom.server import Hub, Send, ServerConfig, Store

pytestmark = pytest.mark.pure

SERVER: Address = ("127.0.0.1", 8888)
#: A second node of the same chat (``SimNet.other``).
SERVER_B: Address = ("127.0.0.1", 8889)
WALL0 = 1_700_000_000.0


def make_room(
    config: ServerConfig, seed: int, last_id: int = 0, recent: list[Event] | None = None
) -> Hub:
    rng = random.Random(seed)
    return Hub(
        lambda: make_registry("dict"),
        lambda: f"{rng.getrandbits(128):032x}",
        config,
        last_id=last_id,
        recent=recent or [],
    )


@dataclass
class SimNet:
    room: Hub
    seed: int = 1
    loss: float = 0.0
    dup: float = 0.0
    jitter: float = 0.0
    delay: float = 0.002
    now: float = 0.0
    blackout: tuple[float, float] | None = None
    #: Ticks skipped for these clients (a SIGSTOPped process).
    frozen: dict[Address, float] = field(default_factory=dict)
    clients: dict[Address, ClientSession] = field(default_factory=dict)
    shown: dict[Address, list[ShowEvent]] = field(default_factory=lambda: defaultdict(list))
    notices: dict[Address, list[str]] = field(default_factory=lambda: defaultdict(list))
    finished: set[Address] = field(default_factory=set)
    stored: list[Event] = field(default_factory=list)
    server_up: bool = True
    #: The node at SERVER_B (None: nothing listens there); it stores into
    #: ``stored`` too, like a node on the same database.
    other: Hub | None = None
    #: Each client's servers (``servers`` of its session), and the one it sends
    #: to now (``UseServer``); it hears only that one, as chatroom/client/link.py.
    server_lists: dict[Address, tuple[Address, ...]] = field(default_factory=dict)
    dest: dict[Address, Address] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._heap: list[tuple[float, int, Address, Address, bytes]] = []
        self._order = itertools.count()
        self._next_room_timer = 0.0

    # -------------------------------------------------------------- wiring

    def join(
        self,
        name: str,
        port: int,
        *,
        room: str = p.LOBBY,
        servers: tuple[Address, ...] = (),
        **config: float,
    ) -> ClientSession:
        addr = ("127.0.0.1", port)
        cfg = SessionConfig(**config)  # type: ignore[arg-type]
        labels = tuple(f"{host}:{port}" for host, port in servers)
        session = ClientSession(name, random.Random(port), cfg, start_room=room, servers=labels)
        self.server_lists[addr] = servers
        self.clients[addr] = session
        self._apply(addr, session.login(name, self.now))
        return session

    def type(self, addr: Address, line: str) -> None:
        self._apply(addr, self.clients[addr].typed(line, self.now))

    def _apply(self, addr: Address, outs: list[Output]) -> None:
        for o in outs:
            match o:
                case Transmit(payload=data):
                    self._send(addr, self.dest.get(addr, SERVER), data)
                case UseServer(index=index):
                    self.dest[addr] = self.server_lists[addr][index]
                case ShowEvent():
                    self.shown[addr].append(o)
                case Notice(key=key):
                    self.notices[addr].append(key)
                case Finished():
                    self.finished.add(addr)

    def _room_effects(self, effects: list[Send | Store], server: Address = SERVER) -> None:
        for e in effects:
            if isinstance(e, Store):
                self.stored.append(e.event)
            else:
                for a in e.addrs:
                    self._send(server, a, e.payload)

    def _send(self, src: Address, dst: Address, data: bytes) -> None:
        if self.blackout and self.blackout[0] <= self.now < self.blackout[1]:
            return
        if self.rng.random() < self.loss:
            return
        copies = 2 if self.rng.random() < self.dup else 1
        for _ in range(copies):
            at = self.now + self.delay + self.rng.random() * self.jitter
            heapq.heappush(self._heap, (at, next(self._order), src, dst, data))

    # -------------------------------------------------------------- time

    def run(self, until: float) -> None:
        stuck = 0
        while True:
            before = self.now
            times = [until, self._next_room_timer]
            if self._heap:
                times.append(self._heap[0][0])
            for addr, s in self.clients.items():
                d = s.deadline()
                if d is not None and addr not in self.finished:
                    times.append(max(d, self.frozen.get(addr, d)))
            self.now = max(self.now, min(times))
            if self.now >= until and (not self._heap or self._heap[0][0] > until):
                self.now = until
                return
            while self._heap and self._heap[0][0] <= self.now:
                _, _, src, dst, data = heapq.heappop(self._heap)
                if dst == SERVER:
                    if self.server_up:
                        self._room_effects(self.room.handle(data, src, self.now, WALL0 + self.now))
                elif dst == SERVER_B:
                    if self.other is not None:
                        effects = self.other.handle(data, src, self.now, WALL0 + self.now)
                        self._room_effects(effects, SERVER_B)
                elif (
                    dst in self.clients
                    and self.now >= self.frozen.get(dst, 0.0)
                    and src == self.dest.get(dst, SERVER)
                ):
                    self._apply(dst, self.clients[dst].receive(data, self.now))
            for addr, s in self.clients.items():
                if self.now < self.frozen.get(addr, 0.0) or addr in self.finished:
                    continue
                d = s.deadline()
                if d is not None and d <= self.now:
                    self._apply(addr, s.tick(self.now))
            stuck = stuck + 1 if self.now == before else 0
            assert stuck < 10_000, f"time does not advance at t={self.now}: a busy deadline"
            if self.now >= self._next_room_timer:
                self._next_room_timer = self.now + 0.05
                if self.server_up:
                    self._room_effects(self.room.on_timer(self.now, WALL0 + self.now))
                if self.other is not None:
                    effects = self.other.on_timer(self.now, WALL0 + self.now)
                    self._room_effects(effects, SERVER_B)

    def run_until(self, cond: object, limit: float, step: float = 0.5) -> None:
        assert callable(cond)
        end = self.now + limit
        while not cond() and self.now < end:
            self.run(min(end, self.now + step))
        assert cond(), f"not reached within {limit} s (t={self.now})"

    # -------------------------------------------------------------- checks

    def ids(
        self, addr: Address, *, history: bool | None = None, room: str | None = None
    ) -> list[int]:
        """The ids shown, of one conversation (``room``; None: every one)."""
        return [
            s.event.id
            for s in self.shown[addr]
            if (history is None or s.history == history) and room in (None, s.event.room)
        ]

    def rooms_seen(self, addr: Address) -> set[str]:
        return {s.event.room for s in self.shown[addr]}

    def messages_seen(self, addr: Address) -> list[tuple[str, str]]:
        return [(s.event.name, s.event.text) for s in self.shown[addr] if s.event.kind == "message"]


def assert_exactly_once_in_order(net: SimNet, addr: Address) -> None:
    """Each conversation's events (its own ids) are shown once each, in order."""
    for room in net.rooms_seen(addr):
        ids = net.ids(addr, history=False, room=room)
        if not ids:
            continue
        assert ids == list(range(ids[0], ids[0] + len(ids))), f"{room}: not contiguous / in order"
        assert len(set(ids)) == len(ids)


def no_rate_limit(**kw: object) -> ServerConfig:
    return ServerConfig(rate=None, **kw)  # type: ignore[arg-type]


def chat(
    net: SimNet, names: list[str], count: int, servers: tuple[Address, ...] = ()
) -> dict[str, list[str]]:
    """Everyone logs in, then each types ``count`` messages, interleaved."""
    for i, name in enumerate(names):
        net.join(name, 40000 + i, history=0, servers=servers)
    net.run_until(lambda: all(s.state is State.LIVE for s in net.clients.values()), 30)
    sent: dict[str, list[str]] = {n: [] for n in names}
    for k in range(count):
        for i, name in enumerate(names):
            text = f"{name} says {k}"
            sent[name].append(text)
            net.type(("127.0.0.1", 40000 + i), text)
        net.run(net.now + 0.05)
    return sent


def settle(net: SimNet, sent: dict[str, list[str]], limit: float = 60.0) -> None:
    total = sum(len(v) for v in sent.values())

    def done() -> bool:
        return all(
            len(net.messages_seen(a)) >= total and not s.outbox for a, s in net.clients.items()
        )

    net.run_until(done, limit)


def check_delivery(net: SimNet, sent: dict[str, list[str]]) -> None:
    expected = sorted((n, t) for n, texts in sent.items() for t in texts)
    stored = [e for e in net.stored if e.kind == "message"]
    assert sorted((e.name, e.text) for e in stored) == expected, "stored once each"
    for addr in net.clients:
        assert_exactly_once_in_order(net, addr)
        assert sorted(net.messages_seen(addr)) == expected
        # each sender's own messages arrive in the order they were typed
        for name, texts in sent.items():
            assert [t for n, t in net.messages_seen(addr) if n == name] == texts


# ------------------------------------------------------------------ scenarios


def test_clean_network_three_clients() -> None:
    net = SimNet(make_room(no_rate_limit(), 1))
    sent = chat(net, ["alice", "bob", "carol"], 20)
    settle(net, sent)
    check_delivery(net, sent)
    assert not any(net.notices.values())


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_twenty_percent_loss_each_way(seed: int) -> None:
    net = SimNet(make_room(no_rate_limit(), seed), seed=seed, loss=0.2)
    sent = chat(net, ["alice", "bob", "carol"], 60)
    settle(net, sent)
    check_delivery(net, sent)


@pytest.mark.parametrize("seed", [4, 5])
def test_duplication_reordering_and_jitter(seed: int) -> None:
    net = SimNet(make_room(no_rate_limit(), seed), seed=seed, dup=0.1, jitter=0.05)
    sent = chat(net, ["alice", "bob", "carol"], 60)
    settle(net, sent)
    check_delivery(net, sent)


def test_rate_limited_server_is_paced_not_refused() -> None:
    room = make_room(ServerConfig(), 6)  # the default 5/1 limit
    net = SimNet(room)
    net.join("alice", 41000, history=0)
    net.run(1.0)
    for k in range(12):
        net.type(("127.0.0.1", 41000), f"burst {k}")
    net.run_until(lambda: len(net.messages_seen(("127.0.0.1", 41000))) == 12, 30)
    assert room.stats["drop.ratelimited"] == 0
    assert [t for _, t in net.messages_seen(("127.0.0.1", 41000))] == [
        f"burst {k}" for k in range(12)
    ]


def test_blackout_ten_seconds_nobody_evicted_all_delivered_after() -> None:
    room = make_room(no_rate_limit(), 7)
    net = SimNet(room)
    sent = chat(net, ["alice", "bob"], 5)
    settle(net, sent)
    net.blackout = (net.now, net.now + 10.0)
    for k in range(5):
        for i, name in enumerate(["alice", "bob"]):
            text = f"{name} in the dark {k}"
            sent[name].append(text)
            net.type(("127.0.0.1", 40000 + i), text)
        net.run(net.now + 1.0)
    net.run(net.blackout[1])
    assert all("connection_lost" in net.notices[a] for a in net.clients)
    settle(net, sent, limit=15.0)
    check_delivery(net, sent)
    assert not [e for e in net.stored if e.kind == "timeout"]
    assert all("reconnected" in net.notices[a] for a in net.clients)


def test_server_restart_resumes_without_loss_or_repeat() -> None:
    config = no_rate_limit()
    net = SimNet(make_room(config, 8), seed=8, loss=0.1)
    sent = chat(net, ["alice", "bob"], 10)
    settle(net, sent)
    # The server dies; messages typed meanwhile wait in the outboxes.
    net.server_up = False
    for k in range(3):
        for i, name in enumerate(["alice", "bob"]):
            text = f"{name} while down {k}"
            sent[name].append(text)
            net.type(("127.0.0.1", 40000 + i), text)
        net.run(net.now + 1.0)
    # ...and comes back from its database, with a fresh registry and keys.
    old = net.room
    net.room = make_room(config, 9, last_id=old.last_id, recent=list(net.stored))
    net.server_up = True
    settle(net, sent, limit=30.0)
    check_delivery(net, sent)
    assert all("reconnected" in net.notices[a] for a in net.clients)


# ------------------------------------------------------------------ several servers

BOTH = (SERVER, SERVER_B)


def start_other(net: SimNet, config: ServerConfig, seed: int) -> None:
    """Start the node at SERVER_B on what is stored (the shared database)."""
    net.other = make_room(config, seed, last_id=net.room.last_id, recent=list(net.stored))


@pytest.mark.parametrize("seed", [30, 31])
def test_a_dead_server_is_left_for_the_next_nothing_lost_or_repeated(seed: int) -> None:
    config = no_rate_limit()
    net = SimNet(make_room(config, seed), seed=seed, loss=0.1)
    sent = chat(net, ["alice", "bob"], 10, servers=BOTH)
    settle(net, sent)
    net.server_up = False  # A dies; what is typed meanwhile waits in the outboxes
    for k in range(3):
        for i, name in enumerate(["alice", "bob"]):
            text = f"{name} while A is down {k}"
            sent[name].append(text)
            net.type(("127.0.0.1", 40000 + i), text)
        net.run(net.now + 1.0)
    start_other(net, config, seed + 100)
    settle(net, sent, limit=30.0)
    check_delivery(net, sent)  # shown once each, in order; stored once each
    for addr in net.clients:
        assert net.dest[addr] == SERVER_B
        keys = net.notices[addr]
        assert "failover" in keys and keys.count("connected_to") == 1
        assert not {"connection_lost", "server_reset", "reconnected"} & set(keys)


def test_moving_on_comes_round_to_the_first_server_when_it_is_back() -> None:
    config = no_rate_limit()
    net = SimNet(make_room(config, 32), seed=32)
    sent = chat(net, ["alice"], 3, servers=BOTH)
    settle(net, sent)
    alice = ("127.0.0.1", 40000)
    net.server_up = False  # A down, and nothing listens at B
    sent["alice"].append("anyone?")
    net.type(alice, "anyone?")
    net.run(net.now + 10.0)  # to B at ~4 s, back to A at ~8 s, B again at ~12 s
    assert net.notices[alice].count("failover") >= 2
    net.room = make_room(config, 33, last_id=net.room.last_id, recent=list(net.stored))
    net.server_up = True  # A restarts
    settle(net, sent, limit=30.0)
    check_delivery(net, sent)
    assert net.dest[alice] == SERVER
    assert net.notices[alice][-1] == "reconnected"  # where the last WELCOME came from
    assert "connected_to" not in net.notices[alice]


def test_rooms_and_direct_messages_move_to_the_next_server() -> None:
    config = no_rate_limit()
    net = SimNet(make_room(config, 34), seed=34, loss=0.1)
    said = rooms_chat(net, 5, servers=BOTH)
    settle_rooms(net, said)
    net.server_up = False
    for k in range(3):
        for addr, chan, name, line in (
            (ALICE, "#dev", "alice", f"alice while A is down {k}"),
            (BOB, "@alice", "bob", f"/msg alice bob while A is down {k}"),
            (DAVE, "#dev", "dave", f"dave while A is down {k}"),
        ):
            net.type(addr, line)
            said.append((chan, name, line.split(" ", 2)[2] if line.startswith("/") else line))
        net.run(net.now + 1.0)
    start_other(net, config, 35)
    net.run_until(lambda: not any(s.outbox for s in net.clients.values()), 30)
    # As after a restart: a direct message to someone whose client has not
    # logged in on B yet is refused (not online), and bob is told so.
    stored = {e.text for e in net.stored}
    refused = [t for c, _, t in said if c == "@alice" and t not in stored]
    assert net.notices[BOB].count("dm_offline") == len(refused)
    said = [x for x in said if x[2] not in refused]
    settle_rooms(net, said, limit=30.0)
    check_rooms_delivery(net, said)
    assert all(net.dest[a] == SERVER_B for a in (ALICE, BOB, DAVE))  # they wrote
    assert all("server_reset" not in net.notices[a] for a in WHO_IS_WHERE)


def test_address_change_shows_nothing_twice() -> None:
    """Found in review: the WELCOME after a move carried the session's first id,
    which the client read as a reset server, and it showed its history again."""
    net = SimNet(make_room(no_rate_limit(), 1), seed=1)
    sent = chat(net, ["alice", "bob"], 5)
    settle(net, sent)
    old, new = ("127.0.0.1", 40000), ("127.0.0.1", 40100)
    net.clients[new] = net.clients.pop(old)  # the NAT gives alice a new port
    net.shown[new] = net.shown.pop(old)
    for k in range(3):
        for addr, name in ((new, "alice"), (("127.0.0.1", 40001), "bob")):
            text = f"{name} after the move {k}"
            sent[name].append(text)
            net.type(addr, text)
        net.run(net.now + 1.5)
    settle(net, sent)
    check_delivery(net, sent)
    assert "server_reset" not in net.notices[new]
    assert net.room.stats["migrations"] == 1


def test_acked_then_server_restart_never_stores_twice() -> None:
    """The server stored a message and died before the ACKED got out."""
    config = no_rate_limit()
    net = SimNet(make_room(config, 10))
    net.join("alice", 42000, history=0)
    net.run(1.0)
    net.type(("127.0.0.1", 42000), "exactly once")
    # Let the SAY reach the server, then lose everything the server sends back.
    net.run(net.now + 0.001 + net.delay)
    net.blackout = (net.now, net.now + 0.5)
    net.run(net.now + 0.4)
    net.room = make_room(config, 11, last_id=net.room.last_id, recent=list(net.stored))
    net.blackout = None
    net.run_until(lambda: not net.clients[("127.0.0.1", 42000)].outbox, 20)
    net.run(net.now + 2)
    assert [e.text for e in net.stored if e.kind == "message"] == ["exactly once"]
    assert net.messages_seen(("127.0.0.1", 42000)) == [("alice", "exactly once")]


def test_stopped_client_evicted_then_resumes() -> None:
    config = no_rate_limit(idle_timeout=6.0)
    net = SimNet(make_room(config, 12))
    sent = chat(net, ["alice", "bob"], 3)
    settle(net, sent)
    alice = ("127.0.0.1", 40000)
    net.frozen[alice] = net.now + 10.0  # SIGSTOP for longer than the timeout
    for k in range(3):
        text = f"bob alone {k}"
        sent["bob"].append(text)
        net.type(("127.0.0.1", 40001), text)
        net.run(net.now + 1.0)
    net.run(net.frozen[alice])
    assert [e.name for e in net.stored if e.kind == "timeout"] == ["alice"]
    settle(net, sent, limit=20.0)
    check_delivery(net, sent)


def test_history_replayed_dimmed_on_login() -> None:
    net = SimNet(make_room(no_rate_limit(), 13))
    sent = chat(net, ["alice"], 30)
    settle(net, sent)
    net.join("bob", 43000, history=25)
    bob = ("127.0.0.1", 43000)
    net.run_until(lambda: any(not s.history for s in net.shown[bob]), 10)
    history = net.ids(bob, history=True)
    assert len(history) == 25 and history == sorted(history)
    assert net.shown[bob][-1].event.kind == "join" and net.shown[bob][-1].event.name == "bob"


def test_quit_leaves_and_others_see_it() -> None:
    net = SimNet(make_room(no_rate_limit(), 14), seed=14, loss=0.2)
    chat(net, ["alice", "bob"], 1)
    alice = ("127.0.0.1", 40000)
    net.type(alice, "/quit")
    net.run_until(lambda: alice in net.finished, 5)
    bob = ("127.0.0.1", 40001)
    net.run_until(lambda: any(s.event.kind == "quit" for s in net.shown[bob]), 10)


# ------------------------------------------------------------------ rooms and direct messages

ALICE, BOB, CAROL, DAVE = (("127.0.0.1", 44000 + i) for i in range(4))


def in_rooms(net: SimNet, addr: Address, *rooms: str) -> bool:
    s = net.clients[addr]
    return s.state is State.LIVE and not s.requests.items and all(r in s.convs for r in rooms)


def rooms_chat(
    net: SimNet, rounds: int, servers: tuple[Address, ...] = ()
) -> list[tuple[str, str, str]]:
    """alice and bob are in #lobby and #dev, carol in #lobby only, dave in #dev
    only; every round each says something in a room and alice and bob write to
    each other. Returns (conversation, name, text) of every message, the
    conversation of a direct message as its sender names it."""
    for name, addr in (("alice", ALICE), ("bob", BOB), ("carol", CAROL)):
        net.join(name, addr[1], history=0, first_login_timeout=30.0, servers=servers)
    net.join("dave", DAVE[1], room="#dev", history=0, first_login_timeout=30.0, servers=servers)
    net.run_until(lambda: all(s.state is State.LIVE for s in net.clients.values()), 30)
    net.type(ALICE, "/join #dev")
    net.type(BOB, "/join #dev")
    net.run_until(lambda: in_rooms(net, ALICE, "#dev") and in_rooms(net, BOB, "#dev"), 30)
    net.type(BOB, "/join #lobby")  # back to the lobby: a switch, no JOIN
    said: list[tuple[str, str, str]] = []
    for k in range(rounds):
        for addr, chan, name, line in (
            (ALICE, "#dev", "alice", f"alice in dev {k}"),
            (ALICE, "@bob", "alice", f"/msg bob alice to bob {k}"),
            (BOB, p.LOBBY, "bob", f"bob in lobby {k}"),
            (BOB, "@alice", "bob", f"/msg alice bob to alice {k}"),
            (CAROL, p.LOBBY, "carol", f"carol in lobby {k}"),
            (DAVE, "#dev", "dave", f"dave in dev {k}"),
        ):
            net.type(addr, line)
            said.append((chan, name, line.split(" ", 2)[2] if line.startswith("/") else line))
        net.run(net.now + 0.05)
    return said


def seen(net: SimNet, addr: Address) -> list[tuple[str, str, str]]:
    return [
        (s.event.room, s.event.name, s.event.text)
        for s in net.shown[addr]
        if s.event.kind == "message"
    ]


def expected_for(
    said: list[tuple[str, str, str]], me: str, rooms: set[str]
) -> list[tuple[str, str, str]]:
    """What ``me`` (in ``rooms``) should see of ``said``, in the typed order: its
    rooms' messages, and the direct messages to or from it (the conversation
    named by the other party)."""
    out = []
    for chan, name, text in said:
        if chan in rooms:
            out.append((chan, name, text))
        elif chan == "@" + me:
            out.append(("@" + name, name, text))  # to us: the sender names it
        elif name == me and chan.startswith("@"):
            out.append((chan, name, text))  # ours
    return out


WHO_IS_WHERE = {
    ALICE: ("alice", {p.LOBBY, "#dev"}),
    BOB: ("bob", {p.LOBBY, "#dev"}),
    CAROL: ("carol", {p.LOBBY}),
    DAVE: ("dave", {"#dev"}),
}


def check_rooms_delivery(net: SimNet, said: list[tuple[str, str, str]]) -> None:
    stored = sorted(e.text for e in net.stored if e.kind == "message")
    assert stored == sorted(text for _, _, text in said), "stored once each"
    for addr, (me, rooms) in WHO_IS_WHERE.items():
        assert_exactly_once_in_order(net, addr)
        got, want = seen(net, addr), expected_for(said, me, rooms)
        assert sorted(got) == sorted(want), me  # all of it, and nothing else
        # Each sender's messages arrive in each conversation in the typed order.
        for chan, name in {(c, n) for c, n, _ in want}:
            assert [t for c, n, t in got if (c, n) == (chan, name)] == [
                t for c, n, t in want if (c, n) == (chan, name)
            ], (me, chan, name)


def settle_rooms(net: SimNet, said: list[tuple[str, str, str]], limit: float = 60.0) -> None:
    def done() -> bool:
        return all(
            len(seen(net, addr)) >= len(expected_for(said, me, rooms))
            and not net.clients[addr].outbox
            for addr, (me, rooms) in WHO_IS_WHERE.items()
        )

    net.run_until(done, limit)


def test_rooms_and_direct_messages_on_a_clean_network() -> None:
    net = SimNet(make_room(no_rate_limit(), 21))
    said = rooms_chat(net, 10)
    settle_rooms(net, said)
    check_rooms_delivery(net, said)
    assert net.rooms_seen(CAROL) == {p.LOBBY}  # nothing of #dev or of the DMs
    assert net.rooms_seen(DAVE) == {"#dev"}
    assert not [k for k in net.notices[ALICE] if k not in ("now_in",)]


@pytest.mark.parametrize("seed", [22, 23])
def test_rooms_and_direct_messages_at_twenty_percent_loss(seed: int) -> None:
    net = SimNet(make_room(no_rate_limit(), seed), seed=seed, loss=0.2, dup=0.05, jitter=0.02)
    said = rooms_chat(net, 30)
    settle_rooms(net, said)
    check_rooms_delivery(net, said)
    assert net.rooms_seen(CAROL) == {p.LOBBY}


def test_rooms_and_direct_messages_survive_a_server_restart() -> None:
    config = no_rate_limit()
    net = SimNet(make_room(config, 24), seed=24, loss=0.1)
    said = rooms_chat(net, 5)
    settle_rooms(net, said)
    net.server_up = False
    for k in range(3):
        for addr, chan, name, line in (
            (ALICE, "#dev", "alice", f"alice while down {k}"),
            (BOB, "@alice", "bob", f"/msg alice bob while down {k}"),
            (DAVE, "#dev", "dave", f"dave while down {k}"),
        ):
            net.type(addr, line)
            said.append((chan, name, line.split(" ", 2)[2] if line.startswith("/") else line))
        net.run(net.now + 1.0)
    old = net.room
    net.room = make_room(config, 25, last_id=old.last_id, recent=list(net.stored))
    net.server_up = True
    net.run_until(lambda: not any(s.outbox for s in net.clients.values()), 30)
    # A direct message to someone whose client has not logged in again yet is
    # refused (not online), and bob is told so; everything else gets through.
    stored = {e.text for e in net.stored}
    refused = [t for c, _, t in said if c == "@alice" and t not in stored]
    assert net.notices[BOB].count("dm_offline") == len(refused)
    said = [x for x in said if x[2] not in refused]
    settle_rooms(net, said, limit=30.0)
    check_rooms_delivery(net, said)
    assert all("reconnected" in net.notices[a] for a in (ALICE, BOB, DAVE))  # they wrote
    assert all("server_reset" not in net.notices[a] for a in WHO_IS_WHERE)
