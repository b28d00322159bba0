"""Datagram bytes <-> frames, both ways, for both dialects. Never raises on peer
input: a datagram becomes a frame or a ``BadFrame`` saying why."""

from __future__ import annotations

import functools
from typing import Literal

from chatroom.events import EVENT_KINDS, LOBBY, Event, EventKind
from chatroom.protocol.frames import (
    LOGIN_MIN,
    MAX_DATAGRAM,
    MAX_TEXT,
    OPERATOR_NAME,
    PEER_PREFIX,
    ROOM_PREFIX,
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
    Head,
    Join,
    Joined,
    ListRooms,
    Login,
    Part,
    Parted,
    Ping,
    Pong,
    Pull,
    Refused,
    Rejected,
    RoomList,
    Say,
    ServerFrame,
    Summary,
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


def _is_chan(field: str) -> bool:
    """A conversation name's shape (``#room`` or ``@peer``); its rules are the
    server's to check."""
    return len(field) > 1 and field[0] in _CHAN_PREFIXES


_CHAN_PREFIXES = ROOM_PREFIX + PEER_PREFIX


def _chan(parts: list[str]) -> tuple[str, list[str]]:
    """The optional conversation field at the head of ``parts`` (LOBBY if absent)."""
    if parts and _is_chan(parts[0]):
        return parts[0], parts[1:]
    return LOBBY, parts


_V2_VERBS = frozenset(
    {"LOGIN", "SAY", "ACK", "PULL", "PING", "WHO", "BYE", "JOIN", "PART", "ROOMS"}
)


def _parse_v2(text: str) -> ClientFrame | BadFrame:
    verb, _, rest = text.partition(" ")
    parts = rest.split(" ")
    try:
        match verb:
            case "LOGIN" if 2 <= len(parts) <= 6 and parts[0] and parts[1]:
                resume = parts[2] if len(parts) > 2 and parts[2] not in ("-", "") else None
                cookie = parts[3] if len(parts) > 3 and parts[3] not in ("-", "") else None
                room = parts[4] if len(parts) > 4 and _is_chan(parts[4]) else None
                size = len(text.encode()) + len(V2_PREFIX)
                return Login(parts[0], parts[1], resume, cookie, room, size)
            case "SAY":
                sid, rest2 = rest.split(" ", 1)
                chan = LOBBY
                head, _, tail = rest2.partition(" ")
                if _is_chan(head):
                    chan, rest2 = head, tail
                seq_s, msg = rest2.split(" ", 1)
                seq = _int(seq_s)
                if seq is not None and sid and msg:
                    return Say(sid, seq, msg, chan)
            case "ACK" if 2 <= len(parts) <= 3:
                chan, nums = _chan(parts[1:])
                if len(nums) == 1 and (n := _int(nums[0])) is not None:
                    return Ack(parts[0], n, chan)
            case "PULL" if 3 <= len(parts) <= 4:
                chan, nums = _chan(parts[1:])
                if len(nums) == 2:
                    after, limit = _int(nums[0]), _int(nums[1])
                    if after is not None and limit is not None:
                        return Pull(parts[0], after, limit, chan)
            case "PING" if len(parts) == 2 and (n := _int(parts[1])) is not None:
                return Ping(parts[0], n)
            case "WHO" if 1 <= len(parts) <= 2 and parts[0]:
                if len(parts) == 1:
                    return Who(parts[0])
                if parts[1].startswith(ROOM_PREFIX) and _is_chan(parts[1]):
                    return Who(parts[0], parts[1])
            case "BYE" if len(parts) == 1 and parts[0]:
                return Bye(parts[0])
            case "JOIN" if len(parts) == 2 and parts[0] and _is_chan(parts[1]):
                return Join(parts[0], parts[1])
            case "PART" if len(parts) == 2 and parts[0] and _is_chan(parts[1]):
                return Part(parts[0], parts[1])
            case "ROOMS" if len(parts) == 1 and parts[0]:
                return ListRooms(parts[0])
            case _ if verb in _V2_VERBS:
                pass
            case _:
                return BadFrame("verb", f"unknown v2 verb {verb[:16]!r}", "v2")
    except ValueError:
        pass
    return BadFrame("fields", f"malformed v2 {verb}", "v2")


# --------------------------------------------------------------------------- encoding


def _opt(chan: str) -> str:
    """The optional conversation field: empty for LOBBY (the frames of the
    single-room release, byte for byte), else the name and a space."""
    return "" if chan == LOBBY else chan + " "


def encode(frame: ServerFrame) -> bytes:
    """Encode a v2 server frame."""
    match frame:
        case EventFrame(event=e, chan=chan):
            name = e.name or OPERATOR_NAME
            where = _opt(e.room if chan is None else chan)
            head = f"EV {where}{e.room_seq} {round(e.created_at * 1000)} {e.kind} {name} "
            return V2_PREFIX + head.encode() + _fit(e.text, MAX_DATAGRAM - 3 - len(head.encode()))
        case Acked(seq=seq, id=id_, ts=ts, chan=chan):
            body = f"ACKED {seq} {_opt(chan)}{id_}"
            if ts is not None:
                body += f" {round(ts * 1000)}"
        case Rejected(seq=seq, code=code, text=text):
            body = f"REJECTED {seq} {code} {text}"
        case Welcome(nonce=nonce, sid=sid, idle_timeout=t, last_id=last, rate=rate, room=room):
            body = f"WELCOME {nonce} {sid} {t:g} {last} {rate}"
            if room != LOBBY:
                body += f" {room}"
        case Cookie(nonce=nonce, cookie=cookie):
            body = f"COOKIE {nonce} {cookie}"
        case Refused(nonce=nonce, code=code, text=text):
            body = f"REFUSED {nonce} {code} {text}"
        case Pong(last_id=last, others=others):
            body = " ".join((f"PONG {last}", *(f"{c}:{n}" for c, n in others)))
        case Users(total=total, names=names, room=room):
            body = " ".join((f"USERS {_opt(room)}{total}", *names))
        case Joined(chan=chan, last_id=last):
            body = f"JOINED {chan} {last}"
        case Parted(room=room):
            body = f"PARTED {room}"
        case RoomList(total=total, rooms=rooms):
            body = " ".join((f"ROOMS {total}", *(f"{r}:{n}" for r, n in rooms)))
        case Gone(oldest=oldest, chan=chan):
            body = f"GONE {_opt(chan)}{oldest}"
        case Summary(first=first, last=last, ts=ts, joined=joined, left=left, names=names):
            head = f"SUM {_opt(frame.chan)}{first} {last} {round(ts * 1000)} {joined} {left}"
            body = " ".join((head, *names))
        case Head(last_id=last, members=members, mode=mode, chan=chan):
            body = f"HEAD {_opt(chan)}{last} {members} {mode}"
        case Error(code=code, text=text):
            body = f"ERR {code} {text}"
        case Goodbye():
            body = "BYE"
    return V2_PREFIX + body.encode("utf-8")


#: The widest id and time an EV can carry (19 and 16 digits, as frames.MAX_TEXT assumes).
_WIDEST_HEAD = "EV {where}9999999999999999999 9999999999999999 message {name} "


@functools.lru_cache(maxsize=4096)
def text_limit(where: str, name: str) -> int:
    """The longest text (UTF-8 bytes) ``name`` may say in the conversation the
    receivers' EV names ``where`` (``#lobby``, ``#dev``, ``@alice``): MAX_TEXT,
    or less when a long room or name leaves less room in one datagram. The
    server refuses longer texts rather than cut them; the client checks first."""
    head = _WIDEST_HEAD.format(where=_opt(where), name=name)
    return min(MAX_TEXT, MAX_DATAGRAM - len(V2_PREFIX) - len(head.encode()))


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
        case Login(nonce=nonce, name=n, resume=r, cookie=c, room=room):
            where = f"{room} " if room is not None and room != LOBBY else ""
            raw = V2_PREFIX + f"LOGIN {nonce} {n} {r or '-'} {c or '-'} {where}".encode()
            return raw + b"." * max(1, LOGIN_MIN - len(raw))
        case Say(sid=sid, seq=seq, text=t, chan=chan):
            return V2_PREFIX + f"SAY {sid} {_opt(chan)}{seq} {t}".encode()
        case Ack(sid=sid, upto=upto, chan=chan):
            return V2_PREFIX + f"ACK {sid} {_opt(chan)}{upto}".encode()
        case Pull(sid=sid, after=after, limit=limit, chan=chan):
            return V2_PREFIX + f"PULL {sid} {_opt(chan)}{after} {limit}".encode()
        case Ping(sid=sid, seen=seen):
            return V2_PREFIX + f"PING {sid} {seen}".encode()
        case Who(sid=sid, room=room):
            where = "" if room == LOBBY else f" {room}"
            return V2_PREFIX + f"WHO {sid}{where}".encode()
        case Bye(sid=sid):
            return V2_PREFIX + f"BYE {sid}".encode()
        case Join(sid=sid, chan=chan):
            return V2_PREFIX + f"JOIN {sid} {chan}".encode()
        case Part(sid=sid, room=room):
            return V2_PREFIX + f"PART {sid} {room}".encode()
        case ListRooms(sid=sid):
            return V2_PREFIX + f"ROOMS {sid}".encode()


def _pair(field: str) -> tuple[str, int]:
    """``#room:12`` -> ("#room", 12)."""
    chan, sep, n = field.rpartition(":")
    if not sep or not _is_chan(chan):
        raise ValueError(field)
    return chan, int(n)


def _event_frame(rest: str) -> EventFrame:
    """``EV [chan] id ts kind name text``; ValueError if malformed."""
    chan, tail = LOBBY, rest
    head, _, after = rest.partition(" ")
    if _is_chan(head):
        chan, tail = head, after
    id_s, ts_s, kind, name, msg = tail.split(" ", 4)
    if kind not in EVENT_KINDS:
        raise ValueError(kind)
    k: EventKind = kind
    who = "" if name == OPERATOR_NAME else name
    return EventFrame(Event(int(id_s), k, who, msg, int(ts_s) / 1000, room=chan))


def _acked(rest: str) -> Acked:
    """``ACKED seq [chan] id [ts]``; ValueError if malformed."""
    seq_s, *fields = rest.split(" ")
    chan, fields = _chan(fields)
    if not 1 <= len(fields) <= 2:
        raise ValueError(rest)
    ts = int(fields[1]) / 1000 if len(fields) == 2 else None
    return Acked(int(seq_s), int(fields[0]), ts, chan)


def _welcome(rest: str) -> Welcome:
    """``WELCOME nonce sid timeout last rate [room]``; ValueError if malformed."""
    nonce, sid, t, last, rate, *room = rest.split(" ")
    if len(room) > 1 or (room and not _is_chan(room[0])):
        raise ValueError(rest)
    return Welcome(nonce, sid, float(t), int(last), rate, room[0] if room else LOBBY)


def _summary(rest: str) -> Summary:
    """``SUM [chan] first last ts joined left [+name|-name ...]``; ValueError
    if malformed (an empty or reversed range, a name without its sign)."""
    chan, fields = _chan(rest.split(" "))
    first, last, ts, joined, left, *names = fields
    lo, hi = int(first), int(last)
    if not 0 < lo <= hi or any(len(n) < 2 or n[0] not in "+-" for n in names):
        raise ValueError(rest)
    return Summary(lo, hi, int(ts) / 1000, int(joined), int(left), tuple(names), chan)


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
                return _event_frame(rest)
            case "ACKED":
                return _acked(rest)
            case "REJECTED":
                seq_s, code, msg = rest.split(" ", 2)
                return Rejected(int(seq_s), code, msg)
            case "WELCOME":
                return _welcome(rest)
            case "COOKIE":
                nonce, cookie = rest.split(" ")
                return Cookie(nonce, cookie)
            case "REFUSED":
                nonce, code, msg = rest.split(" ", 2)
                return Refused(nonce, code, msg)
            case "PONG":
                last, *pairs = rest.split(" ")
                return Pong(int(last), tuple(_pair(x) for x in pairs if x))
            case "USERS":
                chan, fields = _chan(rest.split(" "))
                total, *names = fields
                return Users(int(total), tuple(n for n in names if n), chan)
            case "JOINED":
                chan, last = rest.split(" ")
                if not _is_chan(chan):
                    raise ValueError(rest)
                return Joined(chan, int(last))
            case "PARTED":
                if not _is_chan(rest):
                    raise ValueError(rest)
                return Parted(rest)
            case "ROOMS":
                total, *pairs = rest.split(" ")
                return RoomList(int(total), tuple(_pair(x) for x in pairs if x))
            case "GONE":
                chan, fields = _chan(rest.split(" "))
                (oldest,) = fields
                return Gone(int(oldest), chan)
            case "SUM":
                return _summary(rest)
            case "HEAD":
                chan, fields = _chan(rest.split(" "))
                last, members, mode = fields
                if mode not in ("ack", "nack"):
                    raise ValueError(mode)
                return Head(int(last), int(members), "ack" if mode == "ack" else "nack", chan)
            case "ERR":
                code, _, msg = rest.partition(" ")
                return Error(code, msg)
            case "BYE":
                return Goodbye()
    except ValueError:
        return BadFrame("fields", f"malformed server {verb}", "v2")
    return BadFrame("verb", f"unknown server verb {verb[:16]!r}", "v2")
