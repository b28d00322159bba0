"""Datagram bytes <-> typed frames, for both wire dialects. No sockets, no state.

This is the only module that knows the wire strings. The grammar, with examples,
is in docs/protocol.md; the short version:

* classic (the course's L/C/Q, typable in ``nc -u``): ``L name``, ``C name text``,
  ``Q name``; the server answers ``OK``, a refusal text, ``EXIT`` and broadcasts
  plain lines such as ``alice : hi``.
* v2 (our client): every datagram starts with ``v2 `` and one upper-case verb.

Parsing never raises on peer input: it returns a frame or a ``BadFrame`` saying why.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import cache
from typing import Final, Literal

from chatroom.confusables import skeletons
from chatroom.events import EVENT_KINDS, Event, EventKind

#: Datagrams longer than this are dropped unread (RFC 9000's safe minimum MTU
#: payload; our own frames never exceed it). The socket reads one byte more so
#: that an oversized datagram is detected rather than silently truncated.
MAX_DATAGRAM: Final = 1200
#: Longest name, in characters after NFC normalisation.
MAX_NAME: Final = 32
#: The prefix that makes a v2 frame; never a valid classic verb.
V2_PREFIX: Final = b"v2 "
#: A LOGIN without a cookie must be at least this long (the client pads it), so
#: that the COOKIE answer is well under 3x what the unvalidated address sent.
LOGIN_MIN: Final = 256
#: A name the operator's messages are stored under; no user can take it.
OPERATOR_NAME: Final = "*"

Lang = Literal["en", "zh"]

# --------------------------------------------------------------------------- errors


@dataclass(frozen=True, slots=True)
class BadFrame:
    """A datagram that is not a valid frame. ``reason`` is a short, stable code
    (counted by the server); ``detail`` is for humans."""

    reason: str
    detail: str
    dialect: Literal["classic", "v2"] = "classic"


# --------------------------------------------------------------------------- classic frames


@dataclass(frozen=True, slots=True)
class ClassicLogin:
    name: str


@dataclass(frozen=True, slots=True)
class ClassicChat:
    name: str
    text: str


@dataclass(frozen=True, slots=True)
class ClassicQuit:
    name: str


# --------------------------------------------------------------------------- v2 client frames


@dataclass(frozen=True, slots=True)
class Login:
    """``v2 LOGIN nonce name resume cookie padding``: ``nonce`` matches answers to
    retries; ``resume`` is the session id of an earlier session the client wants
    back (after a server restart) or ``-``; ``cookie`` echoes the server's COOKIE
    (``-`` on the first try). Encoded padded to at least LOGIN_MIN bytes."""

    nonce: str
    name: str
    resume: str | None = None
    cookie: str | None = None
    #: Length of the datagram it was parsed from (anti-amplification needs it).
    size: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Say:
    """``v2 SAY sid seq text``: a message; (sid, seq) makes retries idempotent."""

    sid: str
    seq: int
    text: str


@dataclass(frozen=True, slots=True)
class Ack:
    """``v2 ACK sid upto``: the client has shown every event with id <= upto."""

    sid: str
    upto: int


@dataclass(frozen=True, slots=True)
class Pull:
    """``v2 PULL sid after limit``: send events with id > after, at most limit."""

    sid: str
    after: int
    limit: int


@dataclass(frozen=True, slots=True)
class Ping:
    """``v2 PING sid seen``: heartbeat; ``seen`` is the highest id the client has."""

    sid: str
    seen: int


@dataclass(frozen=True, slots=True)
class Who:
    """``v2 WHO sid``: who is online."""

    sid: str


@dataclass(frozen=True, slots=True)
class Bye:
    """``v2 BYE sid``: leave the room."""

    sid: str


ClientFrame = ClassicLogin | ClassicChat | ClassicQuit | Login | Say | Ack | Pull | Ping | Who | Bye

# --------------------------------------------------------------------------- v2 server frames


@dataclass(frozen=True, slots=True)
class Welcome:
    """``v2 WELCOME nonce sid idle_timeout last_id rate``; ``rate`` is the
    server's message rate limit ``BURST/PER_SECOND`` or ``off``."""

    nonce: str
    sid: str
    idle_timeout: float
    last_id: int
    rate: str = "off"


@dataclass(frozen=True, slots=True)
class Cookie:
    """``v2 COOKIE nonce cookie``: echo this in LOGIN to prove the address."""

    nonce: str
    cookie: str


@dataclass(frozen=True, slots=True)
class Refused:
    """``v2 REFUSED nonce code text``: login refused (taken, invalid, reserved)."""

    nonce: str
    code: str
    text: str


@dataclass(frozen=True, slots=True)
class EventFrame:
    """``v2 EV id ts_ms kind name text``: one stored event."""

    event: Event


@dataclass(frozen=True, slots=True)
class Acked:
    """``v2 ACKED seq id``: message ``seq`` is stored as event ``id``."""

    seq: int
    id: int


@dataclass(frozen=True, slots=True)
class Pong:
    """``v2 PONG last_id``: the newest event id, so a lost tail is noticed."""

    last_id: int


@dataclass(frozen=True, slots=True)
class Users:
    """``v2 USERS total name...``: who is online (as many names as fit)."""

    total: int
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Gone:
    """``v2 GONE oldest``: the pulled range starts before the oldest event the
    server still keeps in memory; pull from ``oldest`` instead."""

    oldest: int


@dataclass(frozen=True, slots=True)
class Error:
    """``v2 ERR code text``: e.g. ``nosession`` (log in again), ``badtext``."""

    code: str
    text: str


@dataclass(frozen=True, slots=True)
class Goodbye:
    """``v2 BYE``: the answer to Bye (the v2 form of classic ``EXIT``)."""


ServerFrame = (
    Welcome | Cookie | Refused | EventFrame | Acked | Pong | Users | Gone | Error | Goodbye
)

# --------------------------------------------------------------------------- text rules

_RESERVED: Final = frozenset(
    {
        "admin",
        "administrator",
        "operator",
        "server",
        "system",
        "root",
        "moderator",
        "mod",
        "sysop",
        "announcement",
        "管理员",
        "管理员消息",
        "系统",
        "系统消息",
        "*",
        "-",
    }
)

# Bidi overrides/isolates/marks: reordering tricks that let a message disguise itself.
_BIDI: Final = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


@cache
def _reserved_skeletons() -> frozenset[str]:
    return frozenset(sk for name in _RESERVED for sk in skeletons(name))


def name_key(name: str) -> str:
    """The canonical form used for uniqueness: NFKC then casefold, so ``Alice``,
    ``ALICE`` and fullwidth ``Ａｌｉｃｅ`` are one name."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def check_name(raw: str) -> tuple[str, str | None]:
    """Normalise a requested name. Returns (name, None) or (raw, reason-code).

    Codes: ``invalid`` (empty, too long, whitespace/control/format characters)
    and ``reserved`` (impersonates the operator).
    """
    name = unicodedata.normalize("NFC", raw)
    if not 1 <= len(name) <= MAX_NAME:
        return raw, "invalid"
    for ch in name:
        cat = unicodedata.category(ch)
        if ch.isspace() or cat[0] in "CZ" or ch in _BIDI:
            return raw, "invalid"
    key = name_key(name)
    if any(sk in _reserved_skeletons() for sk in skeletons(name)):
        return raw, "reserved"
    if key in _RESERVED or key.startswith("管理员") or key.startswith("admin"):
        return raw, "reserved"
    return name, None


# What bad_text_char refuses, as one character class: a regex scans in C, where a
# Python loop over the characters cost ~40 ns each on every message (the profile in
# docs/benchmarks.md).
_BAD_TEXT: Final = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f" + "".join(sorted(_BIDI)) + "]")


def bad_text_char(text: str) -> str | None:
    """The first character a chat message may not contain, or None.

    C0 and C1 controls, DEL and bidi controls are refused: they can drive or
    disguise a terminal. Tab is allowed (rendered as a space by clients).
    """
    bad = _BAD_TEXT.search(text)
    return bad.group() if bad is not None else None


# --------------------------------------------------------------------------- parsing


def parse(data: bytes) -> ClientFrame | BadFrame:
    """Parse one datagram from a client. Never raises."""
    if not data:
        return BadFrame("empty", "empty datagram")
    if len(data) > MAX_DATAGRAM:
        return BadFrame("oversize", f"datagram over {MAX_DATAGRAM} bytes")
    v2 = data.startswith(V2_PREFIX)
    dialect: Literal["classic", "v2"] = "v2" if v2 else "classic"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return BadFrame("utf8", "not valid UTF-8", dialect)
    if v2:
        return _parse_v2(text[len(V2_PREFIX) :])
    return _parse_classic(text.rstrip("\r\n"))


def _parse_classic(text: str) -> ClientFrame | BadFrame:
    verb, sep, rest = text.partition(" ")
    if verb not in ("L", "C", "Q"):
        return BadFrame("verb", "unknown request (use L name, C name text or Q name)")
    if not sep or not rest:
        return BadFrame("fields", f"missing fields after {verb}")
    if verb == "C":
        name, sep, msg = rest.partition(" ")
        if not name or not sep or not msg.strip():
            return BadFrame("fields", "C needs a name and a text")
        return ClassicChat(name, msg)
    if " " in rest:
        return BadFrame("fields", f"{verb} takes one name")
    return ClassicLogin(rest) if verb == "L" else ClassicQuit(rest)


def _int(field: str) -> int | None:
    if not field.isascii() or not field.isdigit() or len(field) > 18:
        return None
    return int(field)


def _parse_v2(text: str) -> ClientFrame | BadFrame:
    verb, _, rest = text.partition(" ")
    parts = rest.split(" ")
    try:
        match verb:
            case "LOGIN" if 2 <= len(parts) <= 5 and parts[0] and parts[1]:
                resume = parts[2] if len(parts) > 2 and parts[2] not in ("-", "") else None
                cookie = parts[3] if len(parts) > 3 and parts[3] not in ("-", "") else None
                size = len(text.encode()) + len(V2_PREFIX)
                return Login(parts[0], parts[1], resume, cookie, size)
            case "SAY":
                sid, seq_s, msg = rest.split(" ", 2)
                seq = _int(seq_s)
                if seq is not None and sid and msg:
                    return Say(sid, seq, msg)
            case "ACK" if len(parts) == 2 and (n := _int(parts[1])) is not None:
                return Ack(parts[0], n)
            case "PULL" if len(parts) == 3:
                after, limit = _int(parts[1]), _int(parts[2])
                if after is not None and limit is not None:
                    return Pull(parts[0], after, limit)
            case "PING" if len(parts) == 2 and (n := _int(parts[1])) is not None:
                return Ping(parts[0], n)
            case "WHO" if len(parts) == 1 and parts[0]:
                return Who(parts[0])
            case "BYE" if len(parts) == 1 and parts[0]:
                return Bye(parts[0])
            case "LOGIN" | "SAY" | "ACK" | "PULL" | "PING" | "WHO" | "BYE":
                pass
            case _:
                return BadFrame("verb", f"unknown v2 verb {verb[:16]!r}", "v2")
    except ValueError:
        pass
    return BadFrame("fields", f"malformed v2 {verb}", "v2")


# --------------------------------------------------------------------------- encoding


def encode(frame: ServerFrame) -> bytes:
    """Encode a v2 server frame."""
    match frame:
        case EventFrame(event=e):
            name = e.name or OPERATOR_NAME
            body = f"EV {e.id} {round(e.created_at * 1000)} {e.kind} {name} {e.text}"
        case Acked(seq=seq, id=id_):
            body = f"ACKED {seq} {id_}"
        case Welcome(nonce=nonce, sid=sid, idle_timeout=t, last_id=last, rate=rate):
            body = f"WELCOME {nonce} {sid} {t:g} {last} {rate}"
        case Cookie(nonce=nonce, cookie=cookie):
            body = f"COOKIE {nonce} {cookie}"
        case Refused(nonce=nonce, code=code, text=text):
            body = f"REFUSED {nonce} {code} {text}"
        case Pong(last_id=last):
            body = f"PONG {last}"
        case Users(total=total, names=names):
            body = " ".join(("USERS", str(total), *names))
        case Gone(oldest=oldest):
            body = f"GONE {oldest}"
        case Error(code=code, text=text):
            body = f"ERR {code} {text}"
        case Goodbye():
            body = "BYE"
    return V2_PREFIX + body.encode("utf-8")


def encode_client(frame: ClientFrame) -> bytes:
    """Encode a client frame (used by our client and by tests)."""
    match frame:
        case ClassicLogin(name=n):
            return f"L {n}".encode()
        case ClassicChat(name=n, text=t):
            return f"C {n} {t}".encode()
        case ClassicQuit(name=n):
            return f"Q {n}".encode()
        case Login(nonce=nonce, name=n, resume=r, cookie=c):
            raw = V2_PREFIX + f"LOGIN {nonce} {n} {r or '-'} {c or '-'} ".encode()
            return raw + b"." * max(1, LOGIN_MIN - len(raw))
        case Say(sid=sid, seq=seq, text=t):
            return V2_PREFIX + f"SAY {sid} {seq} {t}".encode()
        case Ack(sid=sid, upto=upto):
            return V2_PREFIX + f"ACK {sid} {upto}".encode()
        case Pull(sid=sid, after=after, limit=limit):
            return V2_PREFIX + f"PULL {sid} {after} {limit}".encode()
        case Ping(sid=sid, seen=seen):
            return V2_PREFIX + f"PING {sid} {seen}".encode()
        case Who(sid=sid):
            return V2_PREFIX + f"WHO {sid}".encode()
        case Bye(sid=sid):
            return V2_PREFIX + f"BYE {sid}".encode()


def parse_server(data: bytes) -> ServerFrame | BadFrame:
    """Parse a v2 frame from the server (our client's side). Never raises."""
    if not data.startswith(V2_PREFIX) or len(data) > MAX_DATAGRAM:
        return BadFrame("verb", "not a v2 server frame", "v2")
    try:
        text = data[len(V2_PREFIX) :].decode("utf-8")
    except UnicodeDecodeError:
        return BadFrame("utf8", "not valid UTF-8", "v2")
    verb, _, rest = text.partition(" ")
    try:
        match verb:
            case "EV":
                id_s, ts_s, kind, name, msg = rest.split(" ", 4)
                if kind not in EVENT_KINDS:
                    raise ValueError(kind)
                k: EventKind = kind
                who = "" if name == OPERATOR_NAME else name
                return EventFrame(Event(int(id_s), k, who, msg, int(ts_s) / 1000))
            case "ACKED":
                seq_s, id_s = rest.split(" ")
                return Acked(int(seq_s), int(id_s))
            case "WELCOME":
                nonce, sid, t, last, rate = rest.split(" ")
                return Welcome(nonce, sid, float(t), int(last), rate)
            case "COOKIE":
                nonce, cookie = rest.split(" ")
                return Cookie(nonce, cookie)
            case "REFUSED":
                nonce, code, msg = rest.split(" ", 2)
                return Refused(nonce, code, msg)
            case "PONG":
                return Pong(int(rest))
            case "USERS":
                total, *names = rest.split(" ")
                return Users(int(total), tuple(n for n in names if n))
            case "GONE":
                return Gone(int(rest))
            case "ERR":
                code, _, msg = rest.partition(" ")
                return Error(code, msg)
            case "BYE":
                return Goodbye()
    except ValueError:
        return BadFrame("fields", f"malformed server {verb}", "v2")
    return BadFrame("verb", f"unknown server verb {verb[:16]!r}", "v2")


# --------------------------------------------------------------------------- classic texts

_CLASSIC: Final[dict[str, dict[str, str]]] = {
    "en": {
        "join": "{name} joined",
        "message": "{name} : {text}",
        "action": "* {name} {text}",
        "quit": "{name} left",
        "timeout": "{name} timed out",
        "announce": "[announcement] {text}",
        "taken": "name already taken",
        "invalid": "invalid name: 1-32 characters, no spaces or control characters",
        "reserved": "name reserved for the operator",
        "confusable": "name looks too much like someone who is online",
        "notyou": "ERR not logged in as {name} from this address",
        "unknown": "ERR not logged in (send L name first)",
        "badtext": "ERR control characters are not allowed",
        "slowdown": "ERR slow down: too many messages",
        "ratelimited": "too many logins from your address; try again shortly",
        "full": "too many sessions from your address",
        "shutdown": "[announcement] server shutting down",
    },
    "zh": {
        "join": "{name} 进入了聊天室",
        "message": "{name} : {text}",
        "action": "* {name} {text}",
        "quit": "{name}退出了聊天室",
        "timeout": "{name}超时退出了聊天室",
        "announce": "管理员消息: {text}",
        "taken": "该用户已存在",
        "invalid": "用户名无效: 1-32 个字符, 不能含空格或控制字符",
        "reserved": "该用户名保留给管理员",
        "confusable": "该用户名与在线用户过于相似",
        "notyou": "ERR 此地址未以 {name} 登录",
        "unknown": "ERR 尚未登录 (请先发送 L 用户名)",
        "badtext": "ERR 消息不能包含控制字符",
        "slowdown": "ERR 发言太快, 请稍后再试",
        "ratelimited": "该地址登录过于频繁, 请稍后再试",
        "full": "该地址的会话数已达上限",
        "shutdown": "管理员消息: 服务器即将关闭",
    },
}

OK: Final = b"OK"
EXIT: Final = b"EXIT"


def classic_text(lang: Lang, key: str, name: str = "", text: str = "") -> bytes:
    """A classic-dialect line (reply or broadcast) in the server's language."""
    return _CLASSIC[lang][key].format(name=name, text=text).encode("utf-8")


def classic_event(lang: Lang, event: Event) -> bytes:
    """How a stored event reads to a classic client, e.g. ``alice : hi``."""
    key: str = event.kind
    text = event.text
    if event.kind == "message" and text.startswith("/me "):
        key, text = "action", text[4:]
    return classic_text(lang, key, event.name, text)
