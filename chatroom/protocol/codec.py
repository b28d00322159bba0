"""Datagram bytes <-> frames, both ways, for both dialects. Never raises on peer
input: a datagram becomes a frame or a ``BadFrame`` saying why."""

from __future__ import annotations

from typing import Literal

from chatroom.events import EVENT_KINDS, Event, EventKind
from chatroom.protocol.frames import (
    LOGIN_MIN,
    MAX_DATAGRAM,
    OPERATOR_NAME,
    V2_PREFIX,
    Ack,
    Acked,
    BadFrame,
    Bye,
    ClassicChat,
    ClassicLogin,
    ClassicQuit,
    ClientFrame,
    Cookie,
    Error,
    EventFrame,
    Gone,
    Goodbye,
    Login,
    Ping,
    Pong,
    Pull,
    Refused,
    Say,
    ServerFrame,
    Users,
    Welcome,
    Who,
)

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
    if verb == "L":
        # The whole rest is the requested name: a name with a space is then refused
        # by the name rules with a reason a person at nc can act on.
        return ClassicLogin(rest)
    if " " in rest:
        return BadFrame("fields", "Q takes one name")
    return ClassicQuit(rest)


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
            head = f"EV {e.id} {round(e.created_at * 1000)} {e.kind} {name} "
            return V2_PREFIX + head.encode() + _fit(e.text, MAX_DATAGRAM - 3 - len(head.encode()))
        case Acked(seq=seq, id=id_, ts=ts):
            body = f"ACKED {seq} {id_}" if ts is None else f"ACKED {seq} {id_} {round(ts * 1000)}"
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


def _fit(text: str, room: int) -> bytes:
    """``text`` as UTF-8, cut (visibly) to ``room`` bytes. Only rows written past the
    server's limits (by hand, or by an older version) can need it: an EV frame must
    always fit in one datagram, or no client could ever get past that event."""
    data = text.encode("utf-8")
    if len(data) <= room:
        return data
    marker = " […]".encode()
    return data[: room - len(marker)].decode("utf-8", "ignore").encode() + marker


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
                seq_s, id_s, *when = rest.split(" ")
                if len(when) > 1:
                    raise ValueError(rest)
                return Acked(int(seq_s), int(id_s), int(when[0]) / 1000 if when else None)
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
