"""Wire grammar: one table of frames run both ways, plus every kind of bad input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatroom import protocol as p
from chatroom.events import Event

pytestmark = pytest.mark.pure

# (bytes on the wire, frame) — parse(bytes) == frame and encode(frame) == bytes.
CLIENT_TABLE: list[tuple[bytes, p.ClientFrame]] = [
    (b"L alice", p.ClassicLogin("alice")),
    ("L 小明".encode(), p.ClassicLogin("小明")),
    (b"C alice hello world", p.ClassicChat("alice", "hello world")),
    (b"C alice  two  spaces ", p.ClassicChat("alice", " two  spaces ")),
    ("C 小明 你好".encode(), p.ClassicChat("小明", "你好")),
    (b"Q alice", p.ClassicQuit("alice")),
    (b"v2 LOGIN n1 alice - - ".ljust(p.LOGIN_MIN, b"."), p.Login("n1", "alice")),
    (b"v2 LOGIN n1 alice 0123456789abcdef 12.ab ".ljust(p.LOGIN_MIN, b"."),
     p.Login("n1", "alice", "0123456789abcdef", "12.ab")),
    (b"v2 SAY s1 7 hi there", p.Say("s1", 7, "hi there")),
    (b"v2 ACK s1 42", p.Ack("s1", 42)),
    (b"v2 PULL s1 10 32", p.Pull("s1", 10, 32)),
    (b"v2 PING s1 99", p.Ping("s1", 99)),
    (b"v2 WHO s1", p.Who("s1")),
    (b"v2 BYE s1", p.Bye("s1")),
]

SERVER_TABLE: list[tuple[bytes, p.ServerFrame]] = [
    (b"v2 EV 5 1700000000123 message alice hi there",
     p.EventFrame(Event(5, "message", "alice", "hi there", 1700000000.123))),
    (b"v2 EV 6 1700000000000 join bob ", p.EventFrame(Event(6, "join", "bob", "", 1700000000.0))),
    (b"v2 EV 7 1700000000000 announce * tea is ready",
     p.EventFrame(Event(7, "announce", "", "tea is ready", 1700000000.0))),
    (b"v2 ACKED 3 17", p.Acked(3, 17)),
    (b"v2 ACKED 3 17 1700000000123", p.Acked(3, 17, 1700000000.123)),
    (b"v2 WELCOME n1 abcd 60 12 5/1", p.Welcome("n1", "abcd", 60.0, 12, "5/1")),
    (b"v2 WELCOME n1 abcd 0.5 0 off", p.Welcome("n1", "abcd", 0.5, 0, "off")),
    (b"v2 COOKIE n1 17.00ff", p.Cookie("n1", "17.00ff")),
    (b"v2 REFUSED n1 taken name already taken", p.Refused("n1", "taken", "name already taken")),
    (b"v2 PONG 12", p.Pong(12)),
    (b"v2 USERS 2 alice bob", p.Users(2, ("alice", "bob"))),
    (b"v2 GONE 100", p.Gone(100)),
    (b"v2 ERR nosession log in again", p.Error("nosession", "log in again")),
    (b"v2 BYE", p.Goodbye()),
]


@pytest.mark.parametrize(("wire", "frame"), CLIENT_TABLE)
def test_client_frames_both_ways(wire: bytes, frame: p.ClientFrame) -> None:
    assert p.parse(wire) == frame
    assert p.encode_client(frame) == wire


@pytest.mark.parametrize(("wire", "frame"), SERVER_TABLE)
def test_server_frames_both_ways(wire: bytes, frame: p.ServerFrame) -> None:
    assert p.encode(frame) == wire
    assert p.parse_server(wire) == frame


def test_a_login_name_with_spaces_is_refused_by_the_name_rules() -> None:
    assert p.parse(b"L two words") == p.ClassicLogin("two words")
    assert p.check_name("two words")[1] == "invalid"


@pytest.mark.parametrize("suffix", [b"\n", b"\r\n", b"\r\n\r\n"])
def test_netcat_line_endings_are_stripped(suffix: bytes) -> None:
    assert p.parse(b"L alice" + suffix) == p.ClassicLogin("alice")
    assert p.parse(b"C alice hi" + suffix) == p.ClassicChat("alice", "hi")


BAD: list[tuple[bytes, str]] = [
    (b"", "empty"),
    (b"x" * (p.MAX_DATAGRAM + 1), "oversize"),
    (b"L \xff\xfe", "utf8"),
    (b"v2 SAY s 1 \xc3", "utf8"),
    (b"X alice", "verb"),
    (b"L", "fields"),
    (b"L ", "fields"),
    (b"Lalice", "verb"),
    (b"Q alice bob", "fields"),
    (b"C alice", "fields"),
    (b"C alice ", "fields"),
    (b"C alice    ", "fields"),
    (b"Q", "fields"),
    (b"\n", "verb"),
    (b"v2 NOPE", "verb"),
    (b"v2 SAY s1 x hi", "fields"),
    (b"v2 SAY s1 1", "fields"),
    (b"v2 ACK s1 -1", "fields"),
    (b"v2 ACK s1 1e9", "fields"),
    (b"v2 PULL s1 1", "fields"),
    (b"v2 LOGIN n1", "fields"),
    (b"v2 WHO", "fields"),
    (b"v2 PING s1 \xd9\xa3", "fields"),  # Arabic-Indic digit: isdigit() but not ASCII
]


@pytest.mark.parametrize(("wire", "reason"), BAD)
def test_bad_input_is_a_typed_error(wire: bytes, reason: str) -> None:
    frame = p.parse(wire)
    assert isinstance(frame, p.BadFrame)
    assert frame.reason == reason


def test_login_is_padded_and_its_size_recorded() -> None:
    wire = p.encode_client(p.Login("n1", "alice"))
    assert len(wire) == p.LOGIN_MIN
    frame = p.parse(wire)
    assert isinstance(frame, p.Login) and frame.size == p.LOGIN_MIN
    short = p.parse(b"v2 LOGIN n1 alice -")
    assert isinstance(short, p.Login) and short.size == 19


def test_v2_bad_frames_are_marked_v2() -> None:
    frame = p.parse(b"v2 NOPE")
    assert isinstance(frame, p.BadFrame) and frame.dialect == "v2"


@pytest.mark.parametrize("name", ["a", "x" * 32, "\U0001f600" * 32, "超级长的名字超级长的名字"])
@pytest.mark.parametrize("kind", ["message", "announce", "timeout"])
def test_every_event_at_the_text_limit_fits_one_datagram(name: str, kind: str) -> None:
    event = Event(10**18, kind, name, "\U0001f600" * (p.MAX_TEXT // 4), 9_999_999_999.999)  # type: ignore[arg-type]
    wire = p.encode(p.EventFrame(event))
    assert len(wire) <= p.MAX_DATAGRAM
    assert p.parse_server(wire) == p.EventFrame(event)


def test_an_oversized_stored_event_is_cut_visibly_not_dropped() -> None:
    """Rows written past the limits (by hand, or by an older version) must still be
    deliverable: a frame over the datagram limit would stall every client there."""
    event = Event(7, "message", "x" * 32, "é" * 900, 1.0)
    wire = p.encode(p.EventFrame(event))
    assert len(wire) <= p.MAX_DATAGRAM
    frame = p.parse_server(wire)
    assert isinstance(frame, p.EventFrame)
    assert frame.event.text.endswith(" […]") and frame.event.text.startswith("é" * 500)


def test_max_datagram_is_processed() -> None:
    wire = b"C alice " + b"a" * (p.MAX_DATAGRAM - 8)
    assert len(wire) == p.MAX_DATAGRAM
    assert p.parse(wire) == p.ClassicChat("alice", "a" * (p.MAX_DATAGRAM - 8))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("alice", ("alice", None)),
        ("Ｅｍｍａ", ("Ｅｍｍａ", None)),
        ("e\u0301", ("\u00e9", None)),  # NFC
        ("", ("", "invalid")),
        ("a" * 33, ("a" * 33, "invalid")),
        ("a" * 32, ("a" * 32, None)),
        ("al ice", ("al ice", "invalid")),
        ("al\u3000ice", ("al\u3000ice", "invalid")),
        ("bell\x07", ("bell\x07", "invalid")),
        ("zero\u200bwidth", ("zero\u200bwidth", "invalid")),
        ("evil\u202e", ("evil\u202e", "invalid")),
        ("管理员", ("管理员", "reserved")),
        ("管理员消息", ("管理员消息", "reserved")),
        ("Admin", ("Admin", "reserved")),
        ("ａｄｍｉｎ", ("ａｄｍｉｎ", "reserved")),
        ("\u0430dmin", ("\u0430dmin", "reserved")),  # Cyrillic а
        ("r\u043eot", ("r\u043eot", "reserved")),  # Cyrillic о
        ("ADMINISTRATOR", ("ADMINISTRATOR", "reserved")),
        ("*", ("*", "reserved")),
    ],
)
def test_check_name(raw: str, expected: tuple[str, str | None]) -> None:
    assert p.check_name(raw) == expected


def test_name_key_ignores_case() -> None:
    assert p.name_key("Alice") == p.name_key("ALICE") == p.name_key("alice")
    assert p.name_key("STRASSE") == p.name_key("straße")
    assert p.name_key("Ｅｍｍａ") == p.name_key("emma")


@pytest.mark.parametrize(
    ("text", "bad"),
    [("hello", None), ("tab\there", None), ("esc\x1b[2J", "\x1b"), ("del\x7f", "\x7f"),
     ("c1\x9b", "\x9b"), ("bidi\u202e", "\u202e"), ("nl\n", "\n"), ("你好 🙂", None)],
)
def test_bad_text_char(text: str, bad: str | None) -> None:
    assert p.bad_text_char(text) == bad


@pytest.mark.parametrize(
    ("lang", "kind", "name", "text", "line"),
    [
        ("zh", "join", "alice", "", "alice 进入了聊天室"),
        ("zh", "message", "alice", "你好", "alice : 你好"),
        ("zh", "quit", "alice", "", "alice退出了聊天室"),
        ("zh", "announce", "", "开会", "管理员消息: 开会"),
        ("en", "join", "alice", "", "alice joined"),
        ("en", "message", "alice", "hi", "alice : hi"),
        ("en", "message", "alice", "/me waves", "* alice waves"),
        ("en", "quit", "alice", "", "alice left"),
        ("en", "timeout", "alice", "", "alice timed out"),
        ("en", "announce", "", "tea", "[announcement] tea"),
    ],
)
def test_classic_wording(lang: p.Lang, kind: str, name: str, text: str, line: str) -> None:
    event = Event(1, kind, name, text, 0.0)  # type: ignore[arg-type]
    assert p.classic_event(lang, event) == line.encode()


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=1300))
def test_parse_never_raises_on_random_bytes(data: bytes) -> None:
    frame = p.parse(data)
    assert isinstance(frame, (p.BadFrame, *p.ClientFrame.__args__))  # type: ignore[attr-defined]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1300))
def test_parse_server_never_raises(data: bytes) -> None:
    p.parse_server(b"v2 " + data)
