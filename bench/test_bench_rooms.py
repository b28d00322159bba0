"""Room membership through the real server core, per registry kind (issue 11).

A room's members are a registry of the ``--registry`` kind, so the
data-structure comparison also covers "members of one room". Groups:

- ``rooms.join_part.<size>``: one more v2 session joins a room of ``size``
  members and leaves it again (JOIN then PART through ``Hub.handle``: the
  member registry's add, with its duplicate check, and remove, plus the join
  and leave events fanned out to the room);
- ``rooms.say.<size>``: one member's message to a room of ``size`` members,
  followed by every member's ACK of it (the fan-out loop over the room's
  registry, and the per-recipient acknowledgement a busy room costs);
- ``rooms.who.<size>``: ``WHO #room`` (walk the members, fill one datagram).

From 100 members a room is *large* (chatroom/server/crowd.py): there the
ACKs change nothing and cost only their parsing, and a join or leave is
added to the run told by the next SUM rather than sent to every member.

No sockets and no storage: the core's own cost, with an explicit clock. The
server has as many users again outside the room, so a structure whose cost
grows with everyone online (rather than with the room) would show it.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from bench.conftest import sizes
from chatroom import protocol as p
from chatroom.registry import REGISTRY_KINDS, Address, make_registry
from chatroom.server import Hub, Send, ServerConfig

SIZES = sizes((10, 100, 1_000), quick=(10,))
Benchmark = Any

CONFIG = ServerConfig(validate_addresses=False, rate=None, login_rate=None, max_sessions_per_ip=0)


class Room:
    """A hub with ``size`` v2 members in ``#dev`` and ``size`` others in the lobby."""

    def __init__(self, kind: str, size: int) -> None:
        counter = itertools.count(1)
        self.hub = Hub(lambda: make_registry(kind), lambda: f"{next(counter):032x}", CONFIG)
        self.sids: dict[Address, str] = {}
        self.now = 1.0
        for i in range(2 * size + 1):
            addr = ("127.0.0.1", 20_000 + i)
            out = self.hub.handle(p.encode_client(p.Login(f"n{i}", f"u{i}")), addr, 1.0, 1.0)
            frames = [p.parse_server(e.payload) for e in out if isinstance(e, Send)]
            welcome = next(f for f in frames if isinstance(f, p.Welcome))
            self.sids[addr] = welcome.sid
            if i < size or i == 2 * size:
                self.send(addr, p.Join(welcome.sid, "#dev"))
        self.members = [("127.0.0.1", 20_000 + i) for i in range(size)]
        self.sender = self.members[0]
        self.outsider = ("127.0.0.1", 20_000 + 2 * size)
        self.send(self.outsider, p.Part(self.sids[self.outsider], "#dev"))
        self.seq = itertools.count(1)

    def send(self, addr: Address, frame: p.ClientFrame) -> int:
        return len(self.hub.handle(p.encode_client(frame), addr, self.now, 1.0))

    def join_part(self) -> int:
        sid = self.sids[self.outsider]
        return self.send(self.outsider, p.Join(sid, "#dev")) + self.send(
            self.outsider, p.Part(sid, "#dev")
        )

    def say(self) -> int:
        self.now += 0.001
        out = self.send(self.sender, p.Say(self.sids[self.sender], next(self.seq), "hi", "#dev"))
        upto = self.hub.conversations.open("#dev").last_seq
        for addr in self.members:
            self.send(addr, p.Ack(self.sids[addr], upto, "#dev"))
        return out

    def who(self) -> int:
        return self.send(self.sender, p.Who(self.sids[self.sender], "#dev"))


params = pytest.mark.parametrize(
    ("kind", "size"), [(k, s) for s in SIZES for k in REGISTRY_KINDS], ids=lambda v: str(v)
)


def label(benchmark: Benchmark, op: str, kind: str, size: int) -> None:
    benchmark.group = f"rooms.{op}.{size}"
    benchmark.extra_info.update(impl=kind, size=size, op=op)


@params
def test_join_part(benchmark: Benchmark, kind: str, size: int) -> None:
    label(benchmark, "join_part", kind, size)
    room = Room(kind, size)
    assert benchmark(room.join_part) >= 4  # JOINED, join event, PARTED, quit event
    assert len(room.hub.conversations.open("#dev").members) == size


@params
def test_say(benchmark: Benchmark, kind: str, size: int) -> None:
    label(benchmark, "say", kind, size)
    room = Room(kind, size)
    assert benchmark(room.say) == 3  # Store, the EV to the others, the ACKED


@params
def test_who(benchmark: Benchmark, kind: str, size: int) -> None:
    label(benchmark, "who", kind, size)
    room = Room(kind, size)
    assert benchmark(room.who) == 1
