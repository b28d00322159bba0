"""The room as a state machine: bytes and an explicit clock in, effects out.

No sockets, no sleeps, no mocks. Every scenario runs on every registry.
"""

from __future__ import annotations

import pytest

from chatroom import protocol as p
from chatroom.registry import REGISTRY_KINDS, Address
from chatroom.server import Send
from tests.support.harness import FAR, A, B, C, Harness

pytestmark = pytest.mark.pure


@pytest.fixture(params=REGISTRY_KINDS)
def h(request: pytest.FixtureRequest) -> Harness:
    # Rate limits have their own tests (test_security.py); here they would only
    # get in the way of scenarios that send many messages at one instant.
    return Harness(request.param, rate=None)


def test_login_ok_and_others_told(h: Harness) -> None:
    h.send(A, "L alice")
    assert h.take(A) == [b"OK"]
    h.send(B, "L bob")
    assert h.take(B) == [b"OK"]  # the newcomer does not get their own join notice
    assert h.take(A) == [b"bob joined"]
    assert [s.event.kind for s in h.stored] == ["join", "join"]


def test_netcat_peers_get_newline_terminated_lines(h: Harness) -> None:
    """nc users end lines with a newline and should read whole lines back; the
    course's client sends none and compares replies byte for byte."""
    h.send(A, "L alice")
    h.send(B, "L bob\n")
    assert h.take(B) == [b"OK\n"]
    assert h.take(A) == [b"OK", b"bob joined"]
    h.send(A, "C alice hi")
    assert h.take(B) == [b"alice : hi\n"]
    h.send(B, "C bob hey\r\n")
    assert h.take(A) == [b"bob : hey"]
    h.send(B, "Q bob\n")
    assert h.take(B) == [b"EXIT\n"]


def test_duplicate_and_case_duplicate_refused(h: Harness) -> None:
    h.send(A, "L alice")
    h.take(A)
    h.send(B, "L alice")
    assert h.take(B) == [b"name already taken"]
    h.send(B, "L ALICE")
    assert h.take(B) == [b"name already taken"]
    assert h.take(A) == []
    assert len(h.room.directory.users) == 1


def test_zh_wording_matches_the_course() -> None:
    h = Harness("dict", lang="zh")
    h.send(A, "L 小明")
    h.send(B, "L 小红")
    h.send(C, "L 小明")
    assert h.take(C) == ["该用户已存在".encode()]
    assert h.take(A) == [b"OK", "小红 进入了聊天室".encode()]
    h.send(B, "C 小红 大家好")
    assert h.take(A) == ["小红 : 大家好".encode()]
    h.send(B, "Q 小红")
    assert h.take(B) == [b"OK", b"EXIT"]
    assert h.take(A) == ["小红退出了聊天室".encode()]
    h._apply(h.room.announce("明天放假", h.now, 0.0))
    assert h.take(A) == ["管理员消息: 明天放假".encode()]


def test_chat_goes_to_everyone_else_exactly(h: Harness) -> None:
    for addr, name in ((A, "alice"), (B, "bob"), (C, "carol")):
        h.send(addr, f"L {name}")
    for addr in (A, B, C):
        h.take(addr)
    h.send(A, "C alice hello there\r\n")
    assert h.take(A) == []
    assert h.take(B) == [b"alice : hello there"]
    assert h.take(C) == [b"alice : hello there"]
    sends = [e for e in h.send(A, "C alice again") if isinstance(e, Send)]
    assert len(sends) == 1 and set(sends[0].addrs) == {B, C}  # encoded once, sent to many


def test_forged_name_changes_nothing(h: Harness) -> None:
    h.send(A, "L alice")
    h.send(B, "L bob")
    h.take(A), h.take(B)
    stored = len(h.stored)
    h.send(B, "C alice I am alice")
    h.send(B, "Q alice")
    assert h.take(A) == []
    assert h.room.users() == ["alice", "bob"]
    assert len(h.stored) == stored
    assert h.take(B) == [b"ERR not logged in as alice from this address"]  # once: rate-limited


def test_unknown_address_gets_one_short_error(h: Harness) -> None:
    h.send(A, "C alice hi")
    h.send(A, "Q alice")
    assert h.take(A) == [b"ERR not logged in (send L name first)"]
    h.now += 1.5
    h.send(A, "Q alice")
    assert len(h.take(A)) == 1
    assert h.stored == []


def test_operator_name_cannot_be_taken_or_forged(h: Harness) -> None:
    h.send(A, "L alice")
    h.take(A)
    for name in ("管理员消息", "管理员", "admin", "Admin"):
        h.send(B, f"L {name}")
        assert h.take(B) == [b"name reserved for the operator"]
    h.send(B, "C 管理员消息 free pizza")
    assert h.take(A) == []
    assert all(s.event.kind != "announce" for s in h.stored)


def test_quit_and_unknown_quit(h: Harness) -> None:
    h.send(A, "L alice")
    h.send(B, "L bob")
    h.take(A), h.take(B)
    h.send(B, "Q bob")
    assert h.take(B) == [b"EXIT"]
    assert h.take(A) == [b"bob left"]
    assert h.room.users() == ["alice"]
    h.send(B, "L bob")  # the name is free again
    assert h.take(B) == [b"OK"]


def test_announcement_reaches_everyone(h: Harness) -> None:
    h.send(A, "L alice")
    h.send(B, "L bob")
    h.take(A), h.take(B)
    h._apply(h.room.announce("  server   restarts soon \n", h.now, 5.0))
    assert h.take(A) == h.take(B) == [b"[announcement] server restarts soon"]
    assert h.stored[-1].event.kind == "announce" and h.stored[-1].event.name == ""


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\n",
        b"x" * 1300,
        b"\xff\xfe",
        b"L",
        b"C alice",
        b"Z alice",
        b"v2 NOPE",
        b"v2 SAY",
        b"C alice \x1b]52;c;aGk=\x07",
        b"C alice bidi\xe2\x80\xae",
    ],
)
def test_bad_input_never_raises_and_stores_nothing(h: Harness, data: bytes) -> None:
    h.send(A, "L alice")
    h.send(B, "L bob")
    h.take(A), h.take(B)
    stored = len(h.stored)
    h.send(A, data)
    assert len(h.stored) == stored
    assert h.take(B) == []
    assert all(len(d) < 100 for d in h.take(A))  # at most a short error
    assert sum(v for k, v in h.room.stats.items() if k.startswith("drop.")) == 1


def test_bad_input_from_strangers_is_silent(h: Harness) -> None:
    for data in (b"", b"\xff", b"Z", b"v2 NOPE", b"x" * 1300):
        h.send(C, data)
    assert h.take(C) == []


def test_classic_from_far_address_dropped_by_default(h: Harness) -> None:
    h.send(FAR, "L mallory")
    assert h.take(FAR) == []
    assert len(h.room.directory.users) == 0
    assert h.room.stats["drop.classic_policy"] == 1


def test_classic_policy_any_and_off() -> None:
    any_ = Harness("indexed", classic="any")
    any_.send(FAR, "L mallory")
    assert any_.take(FAR) == [b"OK"]
    off = Harness("indexed", classic="off")
    off.send(A, "L alice")
    assert off.take(A) == []


def test_classic_login_retry_is_idempotent(h: Harness) -> None:
    h.send(A, "L alice")
    h.send(A, "L alice")
    assert h.take(A) == [b"OK", b"OK"]
    assert len(h.stored) == 1


# ---------------------------------------------------------------------- v2


def test_v2_login_welcome_and_event_stream(h: Harness) -> None:
    h.send(A, "L alice")
    h.take(A)
    sid = h.v2_login(B, "bob")
    assert len(sid) == 32
    assert h.take(A) == [b"bob joined"]
    h.send(A, "C alice hi bob")
    frames = [p.parse_server(d) for d in h.take(B)]
    assert [f.event.text for f in frames if isinstance(f, p.EventFrame)] == ["hi bob"]


def test_v2_lost_welcome_retry_gets_same_session(h: Harness) -> None:
    first = h.login_frames(A, "alice")
    h.send(A, p.encode_client(p.Login("n1", "alice")))  # the retry, cookie or not
    second = [p.parse_server(d) for d in h.take(A)]
    w1 = next(f for f in first if isinstance(f, p.Welcome))
    w2 = next(f for f in second if isinstance(f, p.Welcome))
    assert w1 == w2
    assert [s.event.kind for s in h.stored] == ["join"]  # no ghost, no second join


def test_v2_say_is_idempotent_and_acked_with_same_id(h: Harness) -> None:
    sid = h.v2_login(A, "alice")
    h.v2_login(B, "bob")
    h.take(A)
    h.send(A, f"v2 SAY {sid} 1 hello")
    h.send(A, f"v2 SAY {sid} 1 hello")
    acks = [f for f in map(p.parse_server, h.take(A)) if isinstance(f, p.Acked)]
    assert len(acks) == 2 and acks[0] == acks[1]
    messages = [s for s in h.stored if s.event.kind == "message"]
    assert len(messages) == 1
    assert (messages[0].event.session, messages[0].event.seq) == (sid, 1)
    assert acks[0].id == messages[0].event.id


def test_v2_ids_are_contiguous_per_session(h: Harness) -> None:
    frames = h.login_frames(A, "alice")
    sid = next(f.sid for f in frames if isinstance(f, p.Welcome))
    h.inbox[A] = [p.encode(f) for f in frames if not isinstance(f, (p.Welcome, p.BadFrame))]
    h.send(B, "L bob")
    h.send(B, "C bob one")
    h.send(A, f"v2 SAY {sid} 1 two")
    h._apply(h.room.announce("three", h.now, 0.0))
    h.send(B, "Q bob")
    frames = [p.parse_server(d) for d in h.take(A)]
    evs = [f.event.id for f in frames if isinstance(f, p.EventFrame)]
    acked = [f for f in frames if isinstance(f, p.Acked)]
    # Our own message comes back as its ACKED, with the event's time, not as an EV:
    # together they are every id, once.
    assert [a.id for a in acked] == [4] and acked[0].ts is not None
    assert sorted([*evs, 4]) == list(range(1, 7)) and 4 not in evs


def test_v2_wrong_session_id_is_refused(h: Harness) -> None:
    h.v2_login(A, "alice")
    h.send(A, "v2 SAY 00000000000000000000000000000000 1 hi")
    assert h.take(A) == [b"v2 ERR nosession not logged in; log in again"]
    assert all(s.event.kind != "message" for s in h.stored)


def test_v2_pull_ping_who_bye(h: Harness) -> None:
    sid = h.v2_login(A, "alice")
    h.send(B, "L bob")
    for i in range(40):
        h.send(B, f"C bob m{i}")
    h.take(A)
    h.send(A, f"v2 PULL {sid} 0 100")
    pulled = [f.event.id for f in map(p.parse_server, h.take(A)) if isinstance(f, p.EventFrame)]
    assert pulled == list(range(1, 33))  # capped at 32 per request
    h.send(A, f"v2 PING {sid} 3")
    assert h.take(A) == [b"v2 PONG 42"]
    h.send(A, f"v2 WHO {sid}")
    assert h.take(A) == [b"v2 USERS 2 alice bob"]
    h.send(A, f"v2 BYE {sid}")
    assert h.take(A) == [b"v2 BYE"]
    assert h.take(B)[-1] == b"alice left"


def test_v2_idle_session_times_out_and_name_is_free(h: Harness) -> None:
    h.v2_login(A, "alice")
    h.send(B, "L bob")
    h.take(B)
    h.tick(30)
    assert h.room.users() == ["alice", "bob"]
    h.tick(31)
    assert h.room.users() == ["bob"]  # classic users never time out: they cannot heartbeat
    assert h.take(B) == [b"alice timed out"]
    assert h.stored[-1].event.kind == "timeout"
    assert h.v2_login(C, "alice")


def test_v2_heartbeat_keeps_session(h: Harness) -> None:
    sid = h.v2_login(A, "alice")
    for _ in range(5):
        h.now += 20
        h.send(A, f"v2 PING {sid} 0")
        h.tick(0)
    assert h.room.users() == ["alice"]


def test_v2_resume_after_restart_keeps_idempotency() -> None:
    h = Harness("indexed")
    sid = h.v2_login(A, "alice")
    h.send(A, f"v2 SAY {sid} 1 before restart")
    events = [s.event for s in h.stored]
    h.restart(first_token=100)
    frames = h.login_frames(A, "alice", "n2", resume=sid)
    welcome = next(f for f in frames if isinstance(f, p.Welcome))
    assert welcome.sid == sid
    h.send(A, f"v2 SAY {sid} 1 before restart")  # the retry of an already stored message
    acks = [f for f in map(p.parse_server, h.take(A)) if isinstance(f, p.Acked)]
    assert [(a.seq, a.id) for a in acks] == [(1, events[-1].id)]
    assert acks[0].ts == pytest.approx(events[-1].created_at, abs=0.001)
    assert sum(s.event.kind == "message" for s in h.stored) == 1


def test_v2_address_change_moves_the_live_session() -> None:
    h = Harness("indexed", rate=None)
    sid = h.v2_login(A, "alice")
    h.send(B, "L bob")
    h.take(A), h.take(B)
    h.send(A, f"v2 SAY {sid} 1 from home")
    h.take(A), h.take(B)
    # The NAT rebinds: same client, new source port. Old-address frames stop working
    # from the new address until it proves itself through the cookie handshake.
    moved: Address = ("127.0.0.1", 6001)
    h.send(moved, f"v2 SAY {sid} 2 from the train")
    assert h.take(moved) == [b"v2 ERR nosession not logged in; log in again"]
    frames = h.login_frames(moved, "alice", "n9", resume=sid)
    welcome = next(f for f in frames if isinstance(f, p.Welcome))
    # The same session, and the newest id now: the client pulls what is newer
    # (the id of its first join would read as a reset server, history shown twice).
    assert welcome.sid == sid and welcome.last_id == h.room.last_id
    h.send(moved, f"v2 SAY {sid} 2 from the train")
    h.send(moved, f"v2 SAY {sid} 1 from home")  # an old retry: still the same answer
    acks = [f for f in map(p.parse_server, h.take(moved)) if isinstance(f, p.Acked)]
    assert [a.seq for a in acks] == [2, 1]
    assert h.take(B) == [b"alice : from the train"]  # no leave/join noise
    assert h.room.directory.users.find_address(A) is None
    assert [s.event.kind for s in h.stored].count("join") == 2


def test_retried_say_not_yet_acknowledged_gets_the_event_too() -> None:
    h = Harness("indexed", rate=None)
    sid = h.v2_login(A, "alice")
    h.take(A)
    h.send(A, f"v2 SAY {sid} 1 hello")
    h.take(A)  # the ACKED (alice's copy) is lost
    h.send(A, f"v2 SAY {sid} 1 hello")
    frames = [p.parse_server(d) for d in h.take(A)]
    assert [type(f) for f in frames] == [p.Acked, p.EventFrame]
    h.send(A, f"v2 ACK {sid} 2")
    h.take(A)
    h.send(A, f"v2 SAY {sid} 1 hello")  # acknowledged: the ACKED alone
    assert [type(p.parse_server(d)) for d in h.take(A)] == [p.Acked]


def test_a_datagram_over_the_limit_is_explained_to_its_netcat_user_only(h: Harness) -> None:
    """From a tryout: a 1,500-byte line from nc vanished without a word (an
    1,100-byte one got the ERR). A logged-in classic user is told, rate-limited
    like every error; a stranger and a v2 session (our client checks first) are
    not answered, and nothing is stored or relayed."""
    sid = h.v2_login(A, "alice")
    h.send(B, "L bob")
    h.take(A), h.take(B)
    stored = len(h.stored)
    huge = b"C bob " + b"x" * (p.MAX_DATAGRAM + 100)
    h.send(B, huge)
    assert h.take(B) == [b"ERR message too long (the limit is 1000 bytes of UTF-8)"]
    h.send(C, b"C carol " + b"x" * (p.MAX_DATAGRAM + 100))  # not logged in
    assert h.take(C) == []
    h.send(A, f"v2 SAY {sid} 1 ".encode() + b"m" * (p.MAX_DATAGRAM + 100))
    assert h.take(A) == []
    assert len(h.stored) == stored
    assert h.room.stats["drop.oversize"] == 3


def test_texts_over_the_limit_are_refused_for_everyone(h: Harness) -> None:
    """Found by trying it: an over-long line from nc (or the operator) used to be
    stored and sent as an EV frame over 1200 bytes, which no v2 client accepts."""
    sid = h.v2_login(A, "alice")
    h.send(B, "L bob")
    h.take(A), h.take(B)
    stored = len(h.stored)
    h.send(B, "C bob " + "L" * (p.MAX_TEXT + 1))
    assert h.take(B) == [b"ERR message too long (the limit is 1000 bytes of UTF-8)"]
    h.send(A, f"v2 SAY {sid} 1 " + "m" * (p.MAX_TEXT + 1))
    assert p.parse_server(h.take(A)[0]) == p.Error("toolong", "the limit is 1000 bytes of UTF-8")
    assert h.room.announcement_problem("A" * (p.MAX_TEXT + 1)) is not None
    assert h.room.announce("A" * (p.MAX_TEXT + 1), h.now, 0.0) == []
    assert len(h.stored) == stored
    h.send(B, "C bob " + "L" * p.MAX_TEXT)  # exactly at the limit: fine
    assert len(h.stored) == stored + 1


def test_netcat_user_mistakes_get_an_answer(h: Harness) -> None:
    h.send(A, "L two words\n")
    assert h.take(A) == [
        b"invalid name: 1-32 characters, no spaces or control characters, "
        b"not starting with # or @\n"
    ]
    h.send(A, "L carol\n")
    h.take(A)
    h.now += 2
    h.send(A, "L alice\n")
    assert h.take(A) == [b"ERR already logged in here as carol (send Q carol first)\n"]


def test_resume_after_restart_is_quiet_for_users_who_never_left() -> None:
    h = Harness("indexed", rate=None)
    sid = h.v2_login(A, "alice")  # never says anything: the join carries the session
    h.v2_login(B, "bob")
    stored = len(h.stored)
    h.restart(rate=None)
    frames = h.login_frames(A, "alice", "n2", resume=sid)
    assert next(f for f in frames if isinstance(f, p.Welcome)).sid == sid
    assert len(h.stored) == stored  # no second "alice joined"
    assert h.room.stats["resumed"] == 1


def test_resume_after_a_timeout_is_announced() -> None:
    h = Harness("indexed", rate=None, idle_timeout=5.0)
    sid = h.v2_login(A, "alice")
    h.tick(10)  # evicted: others saw "alice timed out"
    h.restart(rate=None)
    h.login_frames(A, "alice", "n2", resume=sid)
    assert [s.event.kind for s in h.stored][-2:] == ["timeout", "join"]


def test_a_session_id_cannot_be_resumed_under_another_name() -> None:
    h = Harness("indexed", rate=None)
    sid = h.v2_login(A, "alice")
    h.restart(rate=None)
    frames = h.login_frames(B, "mallory", "n2", resume=sid)
    assert next(f for f in frames if isinstance(f, p.Welcome)).sid != sid
