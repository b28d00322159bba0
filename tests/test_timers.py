"""The server's timers (chatroom/server/timers.py): a tick finds exactly the
retransmissions due and the sessions gone silent, without looking at the rest.
Pure tier: explicit times, no sockets."""

from __future__ import annotations

import pytest

from chatroom import protocol as p
from chatroom.registry import User, make_registry
from chatroom.server import Hub, ServerConfig
from chatroom.server.delivery import Outbox
from chatroom.server.sessions import Session
from chatroom.server.timers import IdleWheel, Retransmits

pytestmark = pytest.mark.pure


def session_user(name: str, now: float = 0.0) -> User:
    session = Session(name * 4, "n", now, p.LOBBY, 0, None)
    return User(name, name, ("127.0.0.1", 1000 + len(name)), session)


def test_only_due_streams_come_out_each_once_and_a_later_deadline_waits() -> None:
    timers = Retransmits()
    users = [session_user(n) for n in ("ann", "bob", "cy")]
    boxes = []
    for i, user in enumerate(users):
        box = user.session.subscribe(p.LOBBY, 0, 0.0)
        box.deadline = 1.0 + i  # 1, 2, 3
        timers.schedule(user, p.LOBBY, box)
        timers.schedule(user, p.LOBBY, box)  # twice: still one entry
        boxes.append(box)
    assert len(timers) == 3
    assert [u.name for u, _, _ in timers.due(1.5)] == ["ann"]
    boxes[1].deadline = 5.0  # an ACK moved bob's later
    assert [u.name for u, _, _ in timers.due(2.5)] == []
    boxes[2].deadline = None  # cy's all acknowledged
    assert [u.name for u, _, _ in timers.due(4.0)] == []
    assert [u.name for u, _, _ in timers.due(5.0)] == ["bob"]
    assert len(timers) == 0


def test_a_stream_whose_session_left_is_dropped() -> None:
    timers = Retransmits()
    user = session_user("ann")
    box = user.session.subscribe("#dev", 0, 0.0)
    box.deadline = 1.0
    timers.schedule(user, "#dev", box)
    del user.session.subs["#dev"]  # parted
    assert list(timers.due(2.0)) == []
    assert box.scheduled is None


def test_a_push_puts_the_stream_in_the_heap_through_its_alarm() -> None:
    timers = Retransmits()
    user = session_user("ann")
    user.session.alarm = lambda key, box: timers.schedule(user, key, box)
    box: Outbox = user.session.subscribe(p.LOBBY, 0, 0.0)
    box.pushed(1, 10.0)
    box.pushed(2, 10.1)  # the deadline was there already: no second entry
    assert len(timers) == 1 and box.scheduled is not None
    assert [k for _, k, _ in timers.due(10.0 + box.rto)] == [p.LOBBY]


def test_the_idle_wheel_finds_the_silent_ones_once() -> None:
    wheel = IdleWheel()
    ann, bob, cy = (session_user(n) for n in ("ann", "bob", "cy"))
    for user, t in ((ann, 0.2), (bob, 0.7), (cy, 3.4)):
        user.session.last_seen = t
        wheel.heard(user, t)
    bob.session.last_seen = 2.5
    wheel.heard(bob, 2.5)  # moves to a later slot
    assert [u.name for u in wheel.silent(0.5)] == ["ann"]
    assert wheel.silent(0.5) == []  # once
    assert [u.name for u in wheel.silent(3.0)] == ["bob"]
    wheel.forget(cy)
    assert wheel.silent(100.0) == []


def test_the_server_still_times_out_exactly_the_silent_sessions() -> None:
    config = ServerConfig(validate_addresses=False, idle_timeout=10.0)
    tokens = iter(f"{i:032x}" for i in range(1, 1000))
    hub = Hub(lambda: make_registry("indexed"), lambda: next(tokens), config)
    sids = {}
    for i, name in enumerate(("ann", "bob", "cy")):
        out = hub.handle(
            p.encode_client(p.Login(f"n{i}", name, None, None)), ("127.0.0.1", 2000 + i), 1.0, 1.0
        )
        welcome = next(
            f
            for s in out
            if (f := p.parse_server(getattr(s, "payload", b""))) and isinstance(f, p.Welcome)
        )
        sids[name] = (welcome.sid, ("127.0.0.1", 2000 + i))
    sid, addr = sids["bob"]
    hub.handle(p.encode_client(p.Ping(sid, 0)), addr, 8.0, 8.0)  # bob keeps talking
    hub.on_timer(10.9, 10.9)
    assert sorted(hub.users()) == ["ann", "bob", "cy"]
    hub.on_timer(12.0, 12.0)  # (silent sessions are looked for once a second)
    assert hub.users() == ["bob"]
    assert hub.stats["timeouts"] == 2
    hub.on_timer(17.9, 17.9)
    assert hub.users() == ["bob"]
    hub.on_timer(19.0, 19.0)
    assert hub.users() == []
