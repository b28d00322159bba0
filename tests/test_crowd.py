"""Large rooms (chatroom/server/crowd.py): each event sent once, no ACKs, holes
pulled, joins and leaves told together; and the client's side of it."""

from __future__ import annotations

import pytest

from chatroom import protocol as p
from chatroom.client.effects import ShowEvent, ShowPresence
from chatroom.client.render import Renderer
from chatroom.client.stream import EventStream
from chatroom.client.style import Style
from chatroom.client.timeline import Timeline
from chatroom.events import Event
from chatroom.registry import Address
from chatroom.server import Send
from chatroom.server.crowd import LARGE, PRESENCE_DELAY, SMALL, TAIL_DELAY
from tests.support.harness import Harness

pytestmark = pytest.mark.pure


def addr(i: int) -> Address:
    return ("127.0.0.1", 20_000 + i)


class Crowd:
    """A harness with ``n`` v2 users logged in to the lobby."""

    def __init__(self, n: int) -> None:
        self.h = Harness("indexed", rate=None, login_rate=None, max_sessions_per_ip=0)
        self.sids = [self.h.v2_login(addr(i), f"u{i}", nonce=f"n{i}") for i in range(n)]

    def frames(self, i: int) -> list[p.ServerFrame | p.BadFrame]:
        return [p.parse_server(d) for d in self.h.take(addr(i))]

    def say(self, i: int, seq: int, text: str) -> list[Send]:
        raw = p.encode_client(p.Say(self.sids[i], seq, text))
        return [e for e in self.h.send(addr(i), raw) if isinstance(e, Send)]

    def drain(self, n: int) -> None:
        for i in range(n):
            self.h.take(addr(i))


def of(frames: list[p.ServerFrame | p.BadFrame], kind: type) -> list:  # type: ignore[type-arg]
    return [f for f in frames if isinstance(f, kind)]


def test_joins_of_a_large_room_come_as_one_summary_and_are_all_stored() -> None:
    n = LARGE + 20
    c = Crowd(n)
    first = c.frames(0)
    # Small until the LARGE-th member: each join an event of its own.
    assert [e.event.name for e in of(first, p.EventFrame)] == [f"u{i}" for i in range(1, LARGE - 1)]
    heads = of(first, p.Head)
    assert heads == [p.Head(LARGE - 1, LARGE, "nack")]  # the room turned large
    c.h.tick(PRESENCE_DELAY)
    sums = of(c.frames(0), p.Summary)
    assert len(sums) == 1
    s = sums[0]
    assert (s.first, s.last, s.joined, s.left) == (LARGE, n, n - LARGE + 1, 0)
    assert s.names == ("+u99", "+u100", "+u101")
    # The newest member gets the same summary (its own join is in it).
    assert of(c.frames(n - 1), p.Summary) == [s]
    joins = [st.event.name for st in c.h.stored if st.event.kind == "join"]
    assert joins == [f"u{i}" for i in range(n)]  # history keeps every one
    assert p.presence_lines("en", s.joined, s.left, s.names) == [
        "u99, u100, u101 and 18 others joined"
    ]


def test_a_message_in_a_large_room_is_one_send_and_acks_change_nothing() -> None:
    n = LARGE + 5
    c = Crowd(n)
    c.h.tick(PRESENCE_DELAY)
    c.drain(n)
    sends = c.say(3, 1, "hello crowd")
    ev = [s for s in sends if s.payload.startswith(b"v2 EV")]
    assert len(ev) == 1 and len(ev[0].addrs) == n - 1 and addr(3) not in ev[0].addrs
    assert isinstance(of(c.frames(3), p.Acked)[0], p.Acked)  # the sender's copy
    pos = p.parse_server(ev[0].payload).event.room_seq  # type: ignore[union-attr]
    assert c.h.send(addr(7), p.encode_client(p.Ack(c.sids[7], pos))) == []
    # No retransmission to anyone who did not acknowledge: holes are pulled.
    c.h.tick(TAIL_DELAY)
    c.drain(n)
    for _ in range(20):
        c.h.tick(1.0)
    assert not any(b"EV" in d or b"HEAD" in d for i in range(n) for d in c.h.take(addr(i)))
    # A hole is pulled like anywhere else...
    pull = p.encode_client(p.Pull(c.sids[8], pos - 1, 1))
    pulled = [p.parse_server(s.payload) for s in c.h.send(addr(8), pull) if isinstance(s, Send)]
    assert [f.event.text for f in of(pulled, p.EventFrame)] == ["hello crowd"]
    # ...and a member that had to pull is told the room's newest id once the
    # room falls quiet (its path loses datagrams: a lost last line would stay
    # unseen until its next heartbeat); the others are not.
    c.say(3, 2, "and again")
    c.h.tick(TAIL_DELAY)
    assert of(c.frames(8), p.Head) == [p.Head(pos + 1, n, "nack")]
    assert of(c.frames(9), p.Head) == []
    # Repeated twice, backing off (the HEAD may be lost too), then no more.
    for _ in range(30):
        c.h.tick(0.5)
    assert of(c.frames(8), p.Head) == [p.Head(pos + 1, n, "nack")] * 2


def test_a_pending_summary_goes_out_before_the_next_message() -> None:
    n = LARGE + 2
    c = Crowd(n)
    c.drain(n)
    sends = c.say(0, 1, "right after the joins")
    kinds = [s.payload.split(b" ")[1] for s in sends if len(s.addrs) > 1]
    assert kinds == [b"SUM", b"EV"]


def test_a_large_room_shrinking_below_small_goes_back_to_acks_and_retransmission() -> None:
    n = LARGE
    c = Crowd(n)
    c.h.tick(PRESENCE_DELAY)
    for i in range(n - SMALL + 1):
        c.h.send(addr(i), p.encode_client(p.Bye(c.sids[i])))
    stay = n - SMALL + 1  # the first one still in
    heads = of(c.frames(stay), p.Head)
    assert heads[-1].mode == "ack" and heads[-1].members == SMALL - 1
    c.h.tick(PRESENCE_DELAY)
    c.drain(n)
    head = c.h.room.conversations.lobby.last_seq
    c.h.send(addr(stay + 1), p.encode_client(p.Ack(c.sids[stay + 1], head)))
    c.say(stay, 1, "small again")
    got = of(c.frames(stay + 1), p.EventFrame)
    assert [f.event.text for f in got] == ["small again"]
    c.h.tick(1.5)  # unacknowledged: retransmitted, as in any small room
    again = of(c.frames(stay + 1), p.EventFrame)
    assert [f.event.text for f in again] == ["small again"]


def test_classic_members_of_a_large_lobby_get_the_summary_as_a_line() -> None:
    c = Crowd(LARGE + 3)
    c.h.tick(PRESENCE_DELAY)
    classic: Address = ("127.0.0.1", 5999)
    c.h.send(classic, "L carol")
    c.h.take(classic)
    for i in range(3):
        c.h.v2_login(addr(500 + i), f"late{i}", nonce=f"x{i}")
    c.h.tick(PRESENCE_DELAY)
    assert c.h.take(classic) == [b"carol, late0, late1 and 1 other joined"]


def test_the_client_stream_takes_a_summary_as_its_whole_range() -> None:
    s = EventStream(4, 4)
    ev = Event(10, "message", "bob", "hi", 0.0)
    assert s.receive(ev, 0.0) == []  # 5..9 missing
    summary = p.Summary(6, 9, 0.0, 4, 0)
    assert s.receive(summary, 0.0) == []  # 5 still missing: pulled
    assert [(r.after, r.limit) for r in s.pull_due(1.0, 0.2)] == [(4, 1)]
    five = Event(5, "join", "al", "", 0.0)
    assert s.receive(five, 1.0) == [five, summary, ev]
    assert s.delivered == 10 and not s.behind
    # A summary of ids partly had (a member who joined mid-run) is taken for the rest.
    assert s.receive(p.Summary(8, 12, 0.0, 5, 0), 1.0) == [p.Summary(8, 12, 0.0, 5, 0)]
    assert s.delivered == 12
    assert s.receive(p.Summary(8, 12, 0.0, 5, 0), 1.0) == []  # a duplicate


def test_a_summary_alone_stops_the_clients_acks() -> None:
    tl = Timeline.start("me", 10, 0, gap_delay=0.1, ack_every=16, ack_delay=0.2, now=0.0)
    tl.event(p.Summary(11, 12, 0.0, 2, 0, ("+a", "+me")), 0.0, lambda e: False)
    for i in range(13, 40):
        tl.event(Event(i, "message", "bob", f"m{i}", 0.0), 0.0, lambda e: False)
    assert tl.large and tl.ack_due(5.0) is None


def test_the_client_sends_no_acks_in_a_large_room_but_pulls_a_lost_tail() -> None:
    tl = Timeline.start("me", 10, 0, gap_delay=0.1, ack_every=16, ack_delay=0.2, now=0.0)
    tl.head(p.Head(10, 150, "nack"), 0.0)
    for i in range(11, 40):
        tl.event(Event(i, "message", "bob", f"m{i}", 0.0), 0.0, lambda e: False)
    assert tl.ack_due(5.0) is None
    tl.head(p.Head(42, 150, "nack"), 5.0)  # 40..42 were lost
    assert [(r.after, r.limit) for r in tl.pulls_due(5.2, 0.2)] == [(39, 3)]
    tl.head(p.Head(42, 40, "ack"), 6.0)
    tl.event(Event(40, "message", "bob", "x", 0.0), 6.0, lambda e: False)
    assert tl.ack_due(7.0) == 40  # small again: acknowledged as usual


def test_a_summary_is_shown_as_one_line_per_kind_in_the_users_language() -> None:
    tl = Timeline.start("me", 10, 0, gap_delay=0.1, ack_every=16, ack_delay=0.2, now=0.0)
    s = p.Summary(11, 50, 1_700_000_000.0, 39, 1, ("+alice", "+bob", "-carol"), "#lobby")
    out = tl.event(s, 0.0, lambda e: False)
    assert out == [ShowPresence(s, "#lobby")]
    assert {"alice", "bob"} <= tl.online
    for lang, want in (
        ("en", "alice, bob and 37 others joined"),
        ("zh", "alice、bob 等 37 人 进入了聊天室"),
    ):
        r = Renderer(lang, Style(False))  # type: ignore[arg-type]
        text = "\n".join(r.render(out[0], 1_700_000_000.0))
        assert want in text and ("carol left" in text or "carol退出了聊天室" in text)
    assert not any(isinstance(o, ShowEvent) for o in out)


def test_summary_and_head_frames_round_trip_and_bad_ones_are_refused() -> None:
    for frame in (p.Summary(3, 9, 1.5, 4, 1, ("+a", "-b"), "#big"), p.Head(9, 120, "nack")):
        assert p.parse_server(p.encode(frame)) == frame
    for bad in (b"v2 SUM 9 3 0 1 0", b"v2 SUM 1 2 0 1 0 alice", b"v2 HEAD 1 2 maybe", b"v2 SUM x"):
        assert isinstance(p.parse_server(bad), p.BadFrame)


def test_heartbeats_go_on_the_wall_clocks_grid_once_a_wall_time_is_given() -> None:
    import random

    from chatroom.client.liveness import HEARTBEAT_GRID, Liveness, heartbeat_grid, on_grid

    assert heartbeat_grid(60.0) == HEARTBEAT_GRID == 0.5  # whole half seconds
    assert heartbeat_grid(1.0) == pytest.approx(0.01)  # a short timeout keeps its margin

    live = Liveness()
    rng = random.Random(1)
    offset = 1_700_000_000.123_456  # wall minus monotonic
    live.schedule_ping(10.0, 60.0, rng)  # a WELCOME: no wall time at hand
    unaligned = live.next_ping
    live.align(10.5, 10.5 + offset)
    aligned = live.next_ping
    assert unaligned <= aligned < unaligned + HEARTBEAT_GRID
    ticks = (aligned + offset) / HEARTBEAT_GRID
    assert abs(ticks - round(ticks)) < 1e-4  # 10 µs: a double at 1.7e9 s holds ~0.2 µs
    # Clocks read microseconds apart at later ticks do not push it further.
    live.align(11.0, 11.0 + offset + 3e-6)
    assert live.next_ping == aligned
    for now in (20.0, 37.3, 55.55):
        live.schedule_ping(now, 60.0, rng, now + offset)
        assert now + 15.0 <= live.next_ping < now + 20.0 + HEARTBEAT_GRID
        ticks = (live.next_ping + offset) / HEARTBEAT_GRID
        assert abs(ticks - round(ticks)) < 1e-4  # 10 µs: a double at 1.7e9 s holds ~0.2 µs
    assert on_grid(5.0, 0.0) == pytest.approx(5.0)  # already on it: kept
    # A 1 s idle timeout (tests): its 0.25-0.33 s heartbeats move by 10 ms at most.
    live.schedule_ping(100.0, 1.0, rng, 100.0 + offset)
    assert 100.25 <= live.next_ping < 100.0 + 1 / 3 + 0.01 + 1e-6
