"""Two cores in cluster mode, pure tier: drafts numbered by a stand-in for the
database, stored events applied on each node in any arrival order. What a
user on either node must see: each conversation in position order with
nothing twice, its own messages acknowledged once stored, the other node's
members in WHO, direct messages across nodes, a dead node's users timed out."""

from __future__ import annotations

import itertools

import pytest

from chatroom import protocol as p
from chatroom.events import Event
from chatroom.registry import Address, make_registry
from chatroom.server import Hub, ServerConfig
from chatroom.server.effects import Effect, Send, Store

pytestmark = pytest.mark.pure

A: Address = ("127.0.0.1", 5001)
B: Address = ("127.0.0.1", 5002)


class Names:
    """The broker's claims, in memory: key -> (node, sid)."""

    def __init__(self) -> None:
        self.held: dict[str, tuple[str, str | None]] = {}

    def for_node(self, node: str) -> NodeClaims:
        return NodeClaims(self, node)


class NodeClaims:
    def __init__(self, names: Names, node: str) -> None:
        self.names, self.node = names, node

    def claim(self, key: str, name: str, sid: str | None) -> bool | None:
        held = self.names.held.get(key)
        if held is not None and held[1] != sid and held != (self.node, sid):
            return False
        self.names.held[key] = (self.node, sid)
        return True

    def release(self, key: str, sid: str | None) -> None:
        if self.names.held.get(key) == (self.node, sid):
            del self.names.held[key]


class Database:
    """What storage/sequencer.py does: positions per room, ids in order."""

    def __init__(self) -> None:
        self.heads: dict[str, int] = {}
        self.ids = itertools.count(1)
        self.rows: list[Event] = []

    def commit(self, drafts: list[Event]) -> list[Event]:
        out = []
        for d in drafts:
            pos = self.heads.get(d.room, 0) + 1
            self.heads[d.room] = pos
            e = Event(
                next(self.ids),
                d.kind,
                d.name,
                d.text,
                d.created_at,
                d.session,
                d.seq,
                d.room,
                pos,
                d.to,
            )
            out.append(e)
        self.rows += out
        return out


class Node:
    def __init__(self, name: str, names: Names, db: Database) -> None:
        tokens = (f"{name}{i:031x}" for i in itertools.count(1))
        config = ServerConfig(validate_addresses=False)
        self.hub = Hub(
            lambda: make_registry("indexed"),
            lambda: next(tokens),
            config,
            claims=names.for_node(name),
        )
        self.db = db
        self.inbox: dict[Address, list[bytes]] = {}
        self.drafts: list[Event] = []
        self.now = 100.0

    def feed(self, addr: Address, data: bytes) -> None:
        self._take(self.hub.handle(data, addr, self.now, 1.0))

    def _take(self, effects: list[Effect]) -> None:
        for e in effects:
            if isinstance(e, Store):
                assert e.event.id == 0  # a draft: only the database numbers
                self.drafts.append(e.event)
            else:
                self._sent(e)

    def _sent(self, send: Send) -> None:
        for addr in send.addrs:
            self.inbox.setdefault(addr, []).append(send.payload)

    def commit(self) -> list[Event]:
        stored, self.drafts = self.db.commit(self.drafts), []
        return stored

    def apply(self, events: list[Event]) -> None:
        self._take(self.hub.replica.apply(events, self.now))

    def frames(self, addr: Address) -> list[p.ServerFrame | p.BadFrame]:
        return [p.parse_server(d) for d in self.inbox.pop(addr, [])]


def login(node: Node, addr: Address, name: str) -> str:
    node.feed(addr, p.encode_client(p.Login("n" + name, name, None, None)))
    welcome = next(f for f in node.frames(addr) if isinstance(f, p.Welcome))
    return welcome.sid


def everywhere(nodes: list[Node], events: list[Event]) -> None:
    for n in nodes:
        n.apply(events)


def evs(frames: list[p.ServerFrame | p.BadFrame]) -> list[tuple[str, int, str, str]]:
    return [
        (f.event.room, f.event.room_seq, f.event.kind, f.event.name)
        for f in frames
        if isinstance(f, p.EventFrame)
    ]


def two() -> tuple[Node, Node]:
    """Two nodes sharing the claims and the database."""
    names, db = Names(), Database()
    return Node("a", names, db), Node("b", names, db)


def test_a_message_is_shown_only_once_stored_and_the_sender_acked_then() -> None:
    na, nb = two()
    sa = login(na, A, "alice")
    login(nb, B, "bob")
    everywhere([na, nb], na.commit() + nb.commit())
    na.frames(A), nb.frames(B)
    na.feed(A, p.encode_client(p.Say(sa, 1, "hi")))
    assert not [f for f in na.frames(A) if isinstance(f, p.Acked)]  # not stored yet
    na.feed(A, p.encode_client(p.Say(sa, 1, "hi")))  # a retry meanwhile: nothing new
    stored = na.commit()
    assert [e.text for e in stored] == ["hi"]
    everywhere([na, nb], stored)
    acked = [f for f in na.frames(A) if isinstance(f, p.Acked)]
    assert [(f.seq, f.id) for f in acked] == [(1, 3)]
    assert evs(nb.frames(B)) == [("#lobby", 3, "message", "alice")]


def test_events_arriving_early_wait_for_the_hole_and_duplicates_are_dropped() -> None:
    na, nb = two()
    login(na, A, "alice")
    login(nb, B, "bob")
    first, second = na.commit(), nb.commit()
    nb.apply(second)  # bob's own join first: position 2, before alice's 1
    assert evs(nb.frames(B)) == []
    assert nb.hub.replica.behind(nb.now + 0.05, grace=0.1) == {}  # it may be on its way
    assert nb.hub.replica.behind(nb.now + 0.2, grace=0.1) == {"#lobby": 0}
    nb.apply(first + second)  # the hole filled (and 2 again: dropped)
    assert [x[1] for x in evs(nb.frames(B))] == [1, 2]
    assert nb.hub.replica.behind(nb.now + 5) == {}


def test_members_of_the_other_node_are_in_who_and_counts() -> None:
    na, nb = two()
    login(na, A, "alice")
    sb = login(nb, B, "bob")
    everywhere([na, nb], na.commit() + nb.commit())
    nb.feed(B, p.encode_client(p.Who(sb, p.LOBBY)))
    users = next(f for f in nb.frames(B) if isinstance(f, p.Users))
    assert users.total == 2 and set(users.names) == {"alice", "bob"}
    assert na.hub.online() == nb.hub.online() == 2


def test_a_direct_message_reaches_the_other_node() -> None:
    na, nb = two()
    sa = login(na, A, "alice")
    login(nb, B, "bob")
    everywhere([na, nb], na.commit() + nb.commit())
    nb.frames(B)
    na.feed(A, p.encode_client(p.Say(sa, 1, "psst", "@bob")))
    stored = na.commit()
    assert stored[0].to == "bob" and stored[0].room == "@alice bob"
    everywhere([na, nb], stored)
    got = [f for f in nb.frames(B) if isinstance(f, p.EventFrame)]
    assert [(f.event.text, f.event.room) for f in got] == [("psst", "@alice")]


def test_a_name_is_claimed_once_across_nodes() -> None:
    na, nb = two()
    login(na, A, "alice")
    nb.feed(B, p.encode_client(p.Login("x", "Alice", None, None)))
    refused = [f for f in nb.frames(B) if isinstance(f, p.Refused)]
    assert [f.code for f in refused] == ["taken"]


def test_a_dead_node_s_users_are_timed_out_in_their_rooms() -> None:
    na, nb = two()
    login(na, A, "alice")
    login(nb, B, "bob")
    everywhere([na, nb], na.commit() + nb.commit())
    nb.frames(B)
    drafts = nb.hub.replica.reap(["alice"], 2.0)
    assert [(d.kind, d.name, d.room) for d in drafts_of(drafts)] == [("timeout", "alice", "#lobby")]
    nb._take(drafts)
    nb.apply(nb.commit())
    assert evs(nb.frames(B)) == [("#lobby", 3, "timeout", "alice")]
    assert nb.hub.online() == 1


def drafts_of(effects: list[Effect]) -> list[Event]:
    return [e.event for e in effects if isinstance(e, Store)]


def test_a_batch_on_the_broker_round_trips_and_names_its_node() -> None:
    from chatroom.cluster import wire

    events = [
        Event(7, "message", "ann", 'hé "quoted"', 1.25, "s" * 32, 3, "#dev", 2, None),
        Event(8, "message", "ann", "psst", 1.5, "s" * 32, 4, "@ann bob", 1, "bob"),
    ]
    payload = wire.encode("127.0.0.1:9001/ab12", events)
    assert wire.decode(payload) == ("127.0.0.1:9001/ab12", events)
    assert wire.sent_by(payload, "127.0.0.1:9001/ab12")
    assert not wire.sent_by(payload, "127.0.0.1:9001/ab1")
    for bad in (b"", b"{", b'{"n": 3, "e": []}', b'{"n": "x", "e": [[1]]}', b"\xff"):
        with pytest.raises(wire.BadPayload):
            wire.decode(bad)
