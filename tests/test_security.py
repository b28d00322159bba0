"""Address validation, anti-amplification, spoofing and rate limits (pure tier)."""

from __future__ import annotations

import random

import pytest

from chatroom import protocol as p
from chatroom.ratelimit import Rate
from chatroom.server.cookies import LIFETIME, ROTATE
from tests.support.harness import A, B, C, Harness

pytestmark = pytest.mark.pure

VICTIM = ("127.0.0.1", 6000)


def _frames(h: Harness, addr: tuple[str, int]) -> list[p.ServerFrame | p.BadFrame]:
    return [p.parse_server(d) for d in h.take(addr)]


def test_short_first_login_is_dropped_silently() -> None:
    h = Harness("indexed")
    h.send(A, "v2 LOGIN n1 alice - -")
    assert h.take(A) == []
    assert h.room.stats["drop.short_login"] == 1


def test_unvalidated_address_gets_only_a_small_cookie() -> None:
    h = Harness("indexed")
    h.v2_login(B, "bob")
    request = p.encode_client(p.Login("n1", "alice"))
    h.send(A, request)
    answers = h.take(A)
    assert len(answers) == 1 and isinstance(p.parse_server(answers[0]), p.Cookie)
    assert len(answers[0]) * 3 <= len(request) * 3 and len(answers[0]) < len(request)
    assert h.room.users() == ["bob"]  # nothing kept, nothing fanned out, nothing stored
    assert [s.event.name for s in h.stored] == ["bob"]
    assert _frames(h, B) == []


def test_spoofed_login_never_registers_the_victim() -> None:
    h = Harness("indexed")
    # The attacker sends LOGINs with the victim's source address: the cookie goes
    # to the victim, so the attacker can only guess it.
    h.send(VICTIM, p.encode_client(p.Login("n1", "mallory")))
    rng = random.Random(7)
    for _ in range(200):
        guess = f"{int(h.now)}.{rng.getrandbits(128):032x}"
        h.send(VICTIM, p.encode_client(p.Login("n1", "mallory", None, guess)))
    assert h.room.users() == []
    assert h.stored == []
    assert all(isinstance(p.parse_server(d), p.Cookie) for d in h.take(VICTIM))


def test_cookie_is_bound_to_address_name_and_nonce() -> None:
    h = Harness("indexed")
    h.send(A, p.encode_client(p.Login("n1", "alice")))
    cookie = p.parse_server(h.take(A)[0])
    assert isinstance(cookie, p.Cookie)
    for addr, name, nonce in ((B, "alice", "n1"), (A, "bob", "n1"), (A, "alice", "n2")):
        h.send(addr, p.encode_client(p.Login(nonce, name, None, cookie.cookie)))
        assert not any(isinstance(f, p.Welcome) for f in _frames(h, addr))
    h.send(A, p.encode_client(p.Login("n1", "alice", None, cookie.cookie)))
    assert any(isinstance(f, p.Welcome) for f in _frames(h, A))


def test_cookie_expires_and_is_single_use() -> None:
    h = Harness("indexed")
    h.send(A, p.encode_client(p.Login("n1", "alice")))
    cookie = p.parse_server(h.take(A)[0])
    assert isinstance(cookie, p.Cookie)
    h.now += LIFETIME + 1
    h.send(A, p.encode_client(p.Login("n1", "alice", None, cookie.cookie)))
    fresh = p.parse_server(h.take(A)[0])
    assert isinstance(fresh, p.Cookie)  # expired: a new cookie, no session
    assert h.room.users() == []
    h.send(A, p.encode_client(p.Login("n1", "alice", None, fresh.cookie)))
    sid = next(f.sid for f in _frames(h, A) if isinstance(f, p.Welcome))
    h.send(A, f"v2 BYE {sid}")
    h.take(A)
    h.send(A, p.encode_client(p.Login("n1", "alice", None, fresh.cookie)))  # replayed
    assert not any(isinstance(f, p.Welcome) for f in _frames(h, A))
    assert h.room.users() == []


def test_cookie_survives_one_key_rotation() -> None:
    h = Harness("indexed")
    h.send(C, p.encode_client(p.Login("n0", "carol")))  # starts the rotation clock
    h.take(C)
    h.now += ROTATE - 2
    h.send(A, p.encode_client(p.Login("n1", "alice")))
    cookie = p.parse_server(h.take(A)[0])
    assert isinstance(cookie, p.Cookie)
    h.now += 3  # the key rotates in between
    h.send(B, p.encode_client(p.Login("n2", "bob")))
    h.take(B)
    h.send(A, p.encode_client(p.Login("n1", "alice", None, cookie.cookie)))
    assert any(isinstance(f, p.Welcome) for f in _frames(h, A))


def test_ten_thousand_forged_frames_change_nothing() -> None:
    h = Harness("indexed")
    sid = h.v2_login(A, "alice")
    h.v2_login(B, "bob")
    h.take(A)
    stored = len(h.stored)
    rng = random.Random(1)
    verbs = ["SAY {} 1 forged", "BYE {}", "ACK {} 99", "PULL {} 0 32", "PING {} 0", "WHO {}"]
    for i in range(10_000):
        fake = "" if i % 3 == 0 else f"{rng.getrandbits(128):032x}"
        frame = f"v2 {rng.choice(verbs).format(fake)}"
        addr = A if i % 2 else ("127.0.0.1", 7000 + i % 50)
        h.send(addr, frame)
        if i % 1000 == 0:
            h.now += 0.1  # the whole flood lasts about a second
    assert len(h.stored) == stored
    assert h.room.users() == ["alice", "bob"]
    errors = h.take(A)
    assert len(errors) <= 2  # at most one error reply per second per address
    for port in range(7000, 7050):
        assert len(h.take(("127.0.0.1", port))) <= 2
    h.send(A, f"v2 SAY {sid} 1 still here")
    assert any(isinstance(f, p.Acked) for f in _frames(h, A))


def test_message_rate_limit_delays_but_loses_nothing() -> None:
    h = Harness("indexed", rate=Rate(5, 1))
    sid = h.v2_login(A, "alice")
    h.take(A)
    for seq in range(1, 7):
        h.send(A, f"v2 SAY {sid} {seq} m{seq}")
    acked = [f.seq for f in _frames(h, A) if isinstance(f, p.Acked)]
    assert acked == [1, 2, 3, 4, 5]  # the sixth is not acknowledged...
    h.now += 1.0
    h.send(A, f"v2 SAY {sid} 6 m6")  # ...so the client retries it, and it lands once
    assert [f.seq for f in _frames(h, A) if isinstance(f, p.Acked)] == [6]
    assert [s.event.text for s in h.stored if s.event.kind == "message"] == [
        f"m{i}" for i in range(1, 7)
    ]


def test_welcome_announces_the_rate() -> None:
    h = Harness("indexed", rate=Rate(5, 1))
    frames = h.login_frames(A, "alice")
    assert next(f for f in frames if isinstance(f, p.Welcome)).rate == "5/1"


def test_classic_flood_is_limited() -> None:
    h = Harness("indexed", rate=Rate(5, 1))
    h.send(A, "L alice")
    h.send(B, "L bob")
    h.take(A), h.take(B)
    for i in range(50):
        h.send(A, f"C alice flood {i}")
    assert len(h.take(B)) == 5
    assert h.take(A) == [b"ERR slow down: too many messages"]


def test_max_sessions_per_ip() -> None:
    h = Harness("indexed", max_sessions_per_ip=3, rate=None)
    for i in range(3):
        h.v2_login(("127.0.0.1", 9000 + i), f"user{i}")
    frames = h.login_frames(("127.0.0.1", 9100), "late")
    refused = next(f for f in frames if isinstance(f, p.Refused))
    assert refused.code == "full"
    assert h.v2_login(("127.0.0.2", 9100), "other")  # another address is fine
    unlimited = Harness("indexed", max_sessions_per_ip=0, login_rate=None)
    for i in range(40):
        unlimited.v2_login(("127.0.0.1", 9000 + i), f"user{i}")
    assert len(unlimited.room.directory.users) == 40


def test_login_rate_per_ip() -> None:
    h = Harness("indexed", login_rate=Rate(3, 0.1), max_sessions_per_ip=0)
    codes = []
    for i in range(5):
        frames = h.login_frames(("127.0.0.1", 9000 + i), f"user{i}")
        codes.append(next((f.code for f in frames if isinstance(f, p.Refused)), "ok"))
    assert codes == ["ok", "ok", "ok", "ratelimited", "ratelimited"]


@pytest.mark.parametrize(
    ("online", "newcomer", "refused"),
    [
        ("paypal", "\u0440\u0430ypal", True),  # Cyrillic р, а
        ("alice", "\u0430lice", True),
        ("Alice", "\u0430lice", True),
        ("bill", "biII", True),  # capital I looks like small l
        ("bob", "b0b", False),
        ("小明", "小朋", False),
        ("Zoe", "Zoë", False),
        ("alice", "alicia", False),
    ],
)
def test_confusable_names_refused_while_online(online: str, newcomer: str, refused: bool) -> None:
    h = Harness("indexed")
    h.send(A, f"L {online}")
    assert h.take(A) == [b"OK"]
    h.send(B, f"L {newcomer}")
    expected = b"name looks too much like someone who is online" if refused else b"OK"
    assert h.take(B) == [expected]
    if refused:  # once the look-alike leaves, the name is free
        h.send(A, f"Q {online}")
        h.send(B, f"L {newcomer}")
        assert h.take(B) == [b"OK"]


def test_a_flooder_is_muted_and_others_keep_talking() -> None:
    h = Harness("indexed", rate=Rate(5, 1))
    h.send(A, "L alice")
    h.send(B, "L bob")
    h.take(A), h.take(B)
    for i in range(200):
        h.send(A, f"C alice flood {i}")
    assert h.room.stats["mutes"] == 1
    assert h.room.stats["drop.muted"] == 200 - 5 - 50  # dropped unread once muted
    assert len(h.take(B)) == 5
    h.send(B, "C bob still here")
    assert h.take(A)[-1] == b"bob : still here"  # a muted user still hears the room
    h.now += 2.5  # the mute ends; alice may talk again at the normal pace
    h.send(A, "C alice sorry")
    assert h.take(B)[-1] == b"alice : sorry"


def test_forged_garbage_cannot_get_a_user_muted() -> None:
    h = Harness("indexed", rate=Rate(5, 1))
    h.send(A, "L alice")
    h.send(B, "L bob")
    h.take(A), h.take(B)
    for _ in range(1000):  # spoofed as alice: malformed frames and wrong sessions
        h.send(A, b"v2 SAY 00000000000000000000000000000000 1 x")
        h.send(A, b"C")
    assert h.room.stats["mutes"] == 0
    h.send(A, "C alice hi")
    assert h.take(B) == [b"alice : hi"]
