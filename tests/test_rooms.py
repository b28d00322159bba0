"""Rooms and direct messages in the server core: who receives what, per
conversation order, acks, pulls, retransmission, restart. Pure tier: bytes and
an explicit clock in, effects out; every scenario runs on every registry kind
(room membership uses the same pluggable structures)."""

from __future__ import annotations

import pytest

from chatroom import protocol as p
from chatroom.events import dm_key
from chatroom.registry import REGISTRY_KINDS, Address
from tests.support.harness import A, B, C, Harness

pytestmark = pytest.mark.pure

D: Address = ("127.0.0.1", 5009)


class Chat(Harness):
    """The harness with v2 helpers that speak for a logged-in session."""

    def __init__(self, kind: str, **config: object) -> None:
        super().__init__(kind, **config)
        self.sids: dict[Address, str] = {}

    def login(self, addr: Address, name: str, room: str | None = None) -> p.Welcome:
        nonce = f"n{len(self.sids)}{addr[1]}"
        self.send(addr, p.encode_client(p.Login(nonce, name, None, None, room)))
        cookie = p.parse_server(self.take(addr)[-1])
        assert isinstance(cookie, p.Cookie), cookie
        self.send(addr, p.encode_client(p.Login(nonce, name, None, cookie.cookie, room)))
        frames = self.frames(addr)
        welcome = next(f for f in frames if isinstance(f, p.Welcome))
        self.sids[addr] = welcome.sid
        return welcome

    def v2(self, addr: Address, frame: p.ClientFrame) -> None:
        self.send(addr, p.encode_client(frame))

    def say(self, addr: Address, seq: int, text: str, chan: str = p.LOBBY) -> None:
        self.v2(addr, p.Say(self.sids[addr], seq, text, chan))

    def join(self, addr: Address, chan: str) -> None:
        self.v2(addr, p.Join(self.sids[addr], chan))

    def frames(self, addr: Address) -> list[p.ServerFrame | p.BadFrame]:
        return [p.parse_server(d) for d in self.take(addr)]

    def events(self, addr: Address) -> list[tuple[str, int, str, str, str]]:
        """(conversation, position, kind, name, text) of the EVs ``addr`` got."""
        return [
            (f.event.room, f.event.id, f.event.kind, f.event.name, f.event.text)
            for f in self.frames(addr)
            if isinstance(f, p.EventFrame)
        ]


@pytest.fixture(params=REGISTRY_KINDS)
def h(request: pytest.FixtureRequest) -> Chat:
    return Chat(request.param, rate=None)


def _dev(h: Chat) -> None:
    """alice and bob in #lobby and #dev; carol (v2) and dave (classic) in #lobby."""
    h.login(A, "alice")
    h.login(B, "bob")
    h.login(C, "carol")
    h.send(D, "L dave")
    h.join(A, "#dev")
    h.join(B, "#Dev")  # rooms are unique ignoring case, like names
    for addr in (A, B, C, D):
        h.take(addr)


def test_join_answers_joined_then_the_join_reaches_only_the_room(h: Chat) -> None:
    h.login(A, "alice")
    h.login(B, "bob")
    h.take(A), h.take(B)
    h.join(A, "#dev")
    joined, ev = h.frames(A)
    assert joined == p.Joined("#dev", 0)
    assert isinstance(ev, p.EventFrame)
    assert (ev.event.room, ev.event.id, ev.event.kind, ev.event.name) == (
        "#dev",
        1,
        "join",
        "alice",
    )
    h.join(B, "#DEV")
    joined, ev = h.frames(B)
    assert joined == p.Joined("#dev", 1)
    assert isinstance(ev, p.EventFrame) and (ev.event.room, ev.event.id) == ("#dev", 2)
    assert h.events(A) == [("#dev", 2, "join", "bob", "")]
    assert [s.event.room for s in h.stored][-2:] == ["#dev", "#dev"]
    h.join(B, "#dev")  # a retry gets the same answer and changes nothing
    assert h.frames(B) == [p.Joined("#dev", 1)]
    assert h.take(A) == []


def test_a_room_message_reaches_its_members_only(h: Chat) -> None:
    _dev(h)
    h.say(A, 1, "hello dev", "#dev")
    assert h.events(B) == [("#dev", 3, "message", "alice", "hello dev")]
    assert h.take(C) == [] and h.take(D) == []
    acked = h.frames(A)
    assert acked == [p.Acked(1, 3, h.stored[-1].event.created_at, "#dev")]
    event = h.stored[-1].event
    assert (event.room, event.room_seq, event.to) == ("#dev", 3, None)


def test_lobby_traffic_does_not_reach_a_room_only_member(h: Chat) -> None:
    h.login(A, "alice", room="#dev")
    h.send(D, "L dave")
    h.take(A), h.take(D)
    h.send(D, "C dave anyone?")
    assert h.take(A) == []


def test_login_into_a_room_starts_there(h: Chat) -> None:
    h.login(B, "bob")
    h.join(B, "#dev")
    h.take(B)
    welcome = h.login(A, "alice", room="#dev")
    assert (welcome.room, welcome.last_id) == ("#dev", 1)
    assert h.events(B) == [("#dev", 2, "join", "alice", "")]


def test_saying_in_a_room_you_are_not_in_is_rejected(h: Chat) -> None:
    _dev(h)
    stored = len(h.stored)
    h.say(C, 7, "let me in", "#dev")
    assert h.frames(C) == [p.Rejected(7, "notmember", "you are not in #dev")]
    assert len(h.stored) == stored
    assert h.take(A) == h.take(B) == []


def test_direct_message_reaches_only_the_two(h: Chat) -> None:
    _dev(h)
    h.say(A, 1, "psst bob", "@Bob")
    assert h.events(B) == [("@alice", 1, "message", "alice", "psst bob")]
    assert h.take(C) == [] and h.take(D) == []
    event = h.stored[-1].event
    assert (event.room, event.room_seq, event.to) == (dm_key("alice", "bob"), 1, "bob")
    assert h.frames(A) == [p.Acked(1, 1, event.created_at, "@bob")]
    h.say(B, 1, "hi alice", "@alice")
    assert h.events(A) == []  # alice has not acknowledged the first one yet
    h.v2(A, p.Ack(h.sids[A], 1, "@bob"))
    assert h.events(A) == [("@bob", 2, "message", "bob", "hi alice")]


def test_direct_message_to_someone_offline_is_rejected(h: Chat) -> None:
    _dev(h)
    stored = len(h.stored)
    h.say(A, 1, "anyone?", "@zed")
    assert h.frames(A) == [p.Rejected(1, "offline", "zed is not online")]
    h.say(A, 2, "me?", "@alice")
    assert h.frames(A) == [p.Rejected(2, "self", "that is you")]
    assert len(h.stored) == stored


def test_direct_message_to_a_classic_user_says_why_it_is_refused(h: Chat) -> None:
    """A netcat user is online (in /who) but has no direct messages: the
    refusal says so rather than "not online" (found by a new-user tryout)."""
    _dev(h)  # dave is the classic user
    stored = len(h.stored)
    h.say(A, 1, "psst", "@Dave")
    expected = "Dave uses the classic dialect, which has no direct messages"
    assert h.frames(A) == [p.Rejected(1, "classic", expected)]
    assert len(h.stored) == stored and h.take(D) == []


def test_a_new_direct_conversation_sends_one_event_until_acked(h: Chat) -> None:
    """The recipient's client starts an unknown conversation at the first event
    it sees: a second must not overtake a lost first."""
    _dev(h)
    h.say(A, 1, "one", "@bob")
    h.take(B)  # lost
    h.v2(A, p.Ack(h.sids[A], 1, "@bob"))
    h.say(A, 2, "two", "@bob")
    assert h.take(B) == []  # held until bob has the first
    h.tick(1.5)
    resent = [e for e in h.events(B) if e[0] == "@alice"]
    assert resent == [("@alice", 1, "message", "alice", "one")]  # retransmitted
    h.v2(B, p.Ack(h.sids[B], 1, "@alice"))
    assert h.events(B) == [("@alice", 2, "message", "alice", "two")]  # caught up


def test_part_leaves_the_room_and_tells_it(h: Chat) -> None:
    _dev(h)
    h.v2(B, p.Part(h.sids[B], "#dev"))
    assert h.frames(B) == [p.Parted("#dev")]
    assert h.events(A) == [("#dev", 3, "quit", "bob", "")]
    h.v2(B, p.Part(h.sids[B], "#dev"))  # a retry
    assert h.frames(B) == [p.Parted("#dev")]
    h.say(A, 1, "still here?", "#dev")
    assert h.take(B) == []
    # Leaving the lobby too keeps bob connected.
    h.v2(B, p.Part(h.sids[B], "#lobby"))
    h.take(B)
    h.v2(B, p.Ping(h.sids[B], 0))
    assert isinstance(h.frames(B)[0], p.Pong)
    assert "bob" in h.room.users()


def test_rooms_and_who(h: Chat) -> None:
    _dev(h)
    h.v2(C, p.ListRooms(h.sids[C]))
    assert h.frames(C) == [p.RoomList(2, (("#dev", 2), ("#lobby", 4)))]
    h.v2(C, p.Who(h.sids[C], "#dev"))
    assert h.frames(C) == [p.Users(2, ("alice", "bob"), "#dev")]
    h.v2(C, p.Who(h.sids[C]))
    assert h.frames(C) == [p.Users(4, ("alice", "bob", "carol", "dave"))]


def test_an_announcement_goes_to_every_room(h: Chat) -> None:
    _dev(h)
    h._apply(h.room.announce("maintenance at noon", h.now, 0.0))
    stored = [(s.event.room, s.event.kind) for s in h.stored[-2:]]
    assert sorted(stored) == [("#dev", "announce"), ("#lobby", "announce")]
    assert sorted(r for r, *_ in h.events(A)) == ["#dev", "#lobby"]
    assert [r for r, *_ in h.events(C)] == ["#lobby"]
    assert h.take(D) == [b"[announcement] maintenance at noon"]


def test_bye_and_timeout_are_told_in_every_room_of_the_user() -> None:
    h = Chat("indexed", rate=None, idle_timeout=5.0)
    _dev(h)
    h.v2(A, p.Bye(h.sids[A]))
    assert sorted(r for r, *_ in h.events(B)) == ["#dev", "#lobby"]
    for _ in range(4):  # carol keeps talking; bob falls silent
        h.tick(2)
        h.v2(C, p.Ping(h.sids[C], 0))
    kinds = sorted((s.event.room, s.event.kind, s.event.name) for s in h.stored[-2:])
    assert kinds == [("#dev", "timeout", "bob"), ("#lobby", "timeout", "bob")]
    assert b"bob timed out" in h.take(D)


def test_pull_is_per_room_and_members_only(h: Chat) -> None:
    _dev(h)
    h.say(A, 1, "one", "#dev")
    h.say(A, 2, "two", "#dev")
    h.take(B)
    h.v2(B, p.Pull(h.sids[B], 2, 10, "#dev"))
    assert [(r, i, t) for r, i, _, _, t in h.events(B)] == [("#dev", 3, "one"), ("#dev", 4, "two")]
    h.v2(C, p.Pull(h.sids[C], 0, 10, "#dev"))
    assert h.frames(C) == [p.Error("notmember", "you are not in #dev")]


def test_gone_when_a_pull_starts_before_the_rooms_memory() -> None:
    h = Chat("indexed", rate=None, ring_size=4)
    _dev(h)
    for seq in range(1, 6):
        h.say(A, seq, f"line {seq}", "#dev")
    h.take(B)
    h.v2(B, p.Pull(h.sids[B], 0, 10, "#dev"))
    assert h.frames(B) == [p.Gone(4, "#dev")]


def test_unacked_room_events_are_retransmitted_per_room(h: Chat) -> None:
    _dev(h)
    h.v2(B, p.Ack(h.sids[B], 2, "#dev"))
    h.say(A, 1, "lost once", "#dev")
    h.take(B)
    h.tick(1.5)
    assert ("#dev", 3, "message", "alice", "lost once") in h.events(B)
    h.v2(B, p.Ack(h.sids[B], 3, "#dev"))
    h.tick(5)
    assert not [e for e in h.events(B) if e[0] == "#dev"]


def test_pong_names_the_newest_event_of_each_conversation(h: Chat) -> None:
    _dev(h)
    h.say(A, 1, "dm", "@bob")
    h.take(B)
    h.v2(B, p.Ping(h.sids[B], 0))
    pong = h.frames(B)[0]
    assert isinstance(pong, p.Pong)
    assert dict(pong.others) == {"#dev": 2, "@alice": 1}
    assert pong.last_id == h.room.conversations.lobby.last_seq


def test_bad_room_names_are_refused() -> None:
    h = Chat("indexed", rate=None)
    h.login(A, "alice")
    h.take(A)
    h.join(A, "#")  # not even a room's shape
    assert h.frames(A) == [p.Error("fields", "malformed v2 JOIN")]
    h.now += 1.1  # error replies are rate-limited per address
    for bad in ("#a:b", "#" + "x" * 40, "#a\u202eb"):
        h.join(A, bad)
        frames = h.frames(A)
        assert frames and isinstance(frames[0], p.Error) and frames[0].code == "badroom", bad
        h.now += 1.1  # error replies are rate-limited per address
    nonce = "nb"
    h.send(B, p.encode_client(p.Login(nonce, "bob", None, None, "#a:b")))
    cookie = p.parse_server(h.take(B)[-1])
    assert isinstance(cookie, p.Cookie)
    h.send(B, p.encode_client(p.Login(nonce, "bob", None, cookie.cookie, "#a:b")))
    refused = h.frames(B)
    assert isinstance(refused[0], p.Refused) and refused[0].code == "badroom"


def test_a_session_is_in_at_most_so_many_conversations() -> None:
    h = Chat("indexed", rate=None, max_conversations=3)
    h.login(A, "alice")
    h.join(A, "#one")
    h.join(A, "#two")
    h.take(A)
    h.join(A, "#three")
    assert h.frames(A)[0] == p.Error("toomany", "at most 3 rooms at once")


def test_moving_address_keeps_the_rooms(h: Chat) -> None:
    _dev(h)
    sid = h.sids[A]
    far_a: Address = ("127.0.0.1", 6001)
    h.send(far_a, p.encode_client(p.Login("mv", "alice", sid)))
    cookie = p.parse_server(h.take(far_a)[-1])
    assert isinstance(cookie, p.Cookie)
    h.send(far_a, p.encode_client(p.Login("mv", "alice", sid, cookie.cookie)))
    assert isinstance(h.frames(far_a)[0], p.Welcome)
    h.sids[far_a] = sid
    h.say(B, 1, "where did you go", "#dev")
    assert h.events(far_a) == [("#dev", 3, "message", "bob", "where did you go")]
    assert h.take(A) == []


def test_after_a_restart_every_room_continues_its_sequence() -> None:
    h = Chat("indexed", rate=None)
    _dev(h)
    h.say(A, 1, "before", "#dev")
    h.say(A, 2, "dm before", "@bob")
    sid = h.sids[A]
    h.restart(first_token=900, rate=None)
    h.send(A, p.encode_client(p.Login("r1", "alice", sid)))
    cookie = p.parse_server(h.take(A)[-1])
    assert isinstance(cookie, p.Cookie)
    h.send(A, p.encode_client(p.Login("r1", "alice", sid, cookie.cookie)))
    assert next(f for f in h.frames(A) if isinstance(f, p.Welcome)).sid == sid
    stored = len(h.stored)
    h.join(A, "#dev")
    assert h.frames(A)[0] == p.Joined("#dev", 3)
    assert len(h.stored) == stored  # alice never left #dev: no second join
    dm = next(s.event for s in h.stored if s.event.to == "bob")
    h.say(A, 2, "dm before", "@bob")  # a retry after the restart: same answer
    assert h.frames(A)[0] == p.Acked(2, 1, dm.created_at, "@bob")
    assert len(h.stored) == stored  # stored once
    h.say(A, 3, "after", "#dev")
    assert h.stored[-1].event.room_seq == 4 and h.stored[-1].event.id == h.room.last_id


def test_a_room_no_longer_in_memory_continues_from_its_stored_head() -> None:
    h = Chat("indexed", rate=None)
    _dev(h)
    h.say(A, 1, "in dev", "#dev")
    h.say(A, 2, "in the lobby")
    h.restart(keep=1, first_token=900, rate=None)  # only the lobby's last event in memory
    h.login(C, "carol")
    h.take(C)
    h.join(C, "#dev")
    assert h.frames(C)[0] == p.Joined("#dev", 3)
    assert h.stored[-1].event.room_seq == 4
    h.v2(C, p.Pull(h.sids[C], 0, 10, "#dev"))  # history not in memory: start there
    assert h.frames(C) == [p.Gone(4, "#dev")]


def test_classic_lobby_is_byte_for_byte_unchanged_by_rooms(h: Chat) -> None:
    _dev(h)
    h.say(A, 1, "in dev", "#dev")
    h.say(A, 2, "in the lobby")
    assert h.take(D) == [b"alice : in the lobby"]
    h.send(D, "C dave hi all")
    assert [e[:3] for e in h.events(A)] == [("#lobby", 6, "message")]
    assert [e[:3] for e in h.events(C)] == [("#lobby", 5, "message"), ("#lobby", 6, "message")]


def test_joins_and_parts_share_the_message_rate() -> None:
    """Each is stored and sent to a whole room: a JOIN/PART loop is a flood."""
    h = Chat("indexed")  # the default 5/1 rate
    h.login(A, "alice")
    h.take(A)
    for _ in range(3):
        h.join(A, "#spam")
        h.v2(A, p.Part(h.sids[A], "#spam"))
    assert p.Error("slowdown", "rate limit 5/1 messages/s") in h.frames(A)
    assert sum(s.event.room == "#spam" for s in h.stored) == 5
    h.now += 2  # the bucket refills: the retried PART goes through
    h.v2(A, p.Part(h.sids[A], "#spam"))
    assert h.frames(A) == [p.Parted("#spam")]
    assert [s.event.kind for s in h.stored if s.event.room == "#spam"][-2:] == ["join", "quit"]


def test_a_direct_message_to_a_name_nobody_can_have_is_offline(h: Chat) -> None:
    h.login(A, "alice")
    h.take(A)
    h.say(A, 1, "hello?", "@admin")
    assert h.frames(A) == [p.Rejected(1, "offline", "admin is not online")]


def test_a_long_room_and_name_lower_the_text_limit_instead_of_cutting() -> None:
    """An EV must fit one datagram: the room's name and the sender's take room."""
    h = Chat("indexed", rate=None)
    room = "#" + "房" * 32
    name = "名" * 32
    h.login(A, name)
    h.join(A, room)
    h.take(A)
    limit = p.text_limit(room, name)
    assert limit < p.MAX_TEXT
    stored = len(h.stored)
    h.say(A, 1, "字" * (limit // 3 + 1), room)
    assert h.frames(A) == [p.Error("toolong", f"the limit here is {limit} bytes of UTF-8")]
    assert len(h.stored) == stored
    h.say(A, 2, "x" * limit, room)
    assert isinstance(h.frames(A)[0], p.Acked)
    frame = h.room.conversations.open(p.room_key(room)).ring.frame(h.stored[-1].event.room_seq)
    assert frame is not None and len(frame) <= p.MAX_DATAGRAM
    assert p.parse_server(frame).event.text == "x" * limit  # type: ignore[union-attr]
