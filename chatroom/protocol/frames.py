"""The frames of both dialects as frozen dataclasses, and the wire limits.

Plain values: parsing and encoding are in codec.py, the rules for names and
message text in rules.py, the classic dialect's wording in classic.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

from chatroom.events import LOBBY, Event

#: Datagrams longer than this are dropped unread (RFC 9000's safe minimum MTU
#: payload; our own frames never exceed it). The socket reads one byte more so
#: that an oversized datagram is detected rather than silently truncated.
MAX_DATAGRAM: Final = 1200
#: Longest name, in characters after NFC normalisation.
MAX_NAME: Final = 32
#: What a room name may be, in English: the one wording of the rule that
#: check_room applies (join --room, history --room, the client, the classic reply).
ROOM_RULE: Final = f"# then 1-{MAX_NAME} characters, no spaces, colons or control characters"
#: Longest message or announcement text, in UTF-8 bytes, whoever sends it. With it
#: the largest EV frame (19-digit id, 16-digit time, the longest kind, a name of 32
#: four-byte characters: 181 bytes of framing) still fits in MAX_DATAGRAM, so every
#: stored event can be delivered to every client whatever the sender's name.
MAX_TEXT: Final = 1000
#: The prefix that makes a v2 frame; never a valid classic verb.
V2_PREFIX: Final = b"v2 "
#: A LOGIN without a cookie must be at least this long (the client pads it), so
#: that the COOKIE answer is well under 3x what the unvalidated address sent.
LOGIN_MIN: Final = 256
#: A name the operator's messages are stored under; no user can take it.
OPERATOR_NAME: Final = "*"

Lang = Literal["en", "zh"]

#: What starts a room's name (``#dev``); a direct conversation is named on the
#: wire by the peer's name after ``@`` (``@bob``). A frame that names no
#: conversation means LOBBY, so the frames of the single-room release still mean
#: what they meant.
ROOM_PREFIX: Final = "#"
PEER_PREFIX: Final = "@"

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
    #: The room to start in (None: LOBBY): ``... cookie #room padding``.
    room: str | None = None
    #: Length of the datagram it was parsed from (anti-amplification needs it).
    size: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Say:
    """``v2 SAY sid [chan] seq text``: a message to a room (``#dev``) or a direct
    message (``@bob``); (sid, seq) makes retries idempotent (``seq`` counts the
    session's messages, whatever their conversation)."""

    sid: str
    seq: int
    text: str
    chan: str = LOBBY


@dataclass(frozen=True, slots=True)
class Ack:
    """``v2 ACK sid [chan] upto``: the client has shown every event of ``chan``
    with id <= upto."""

    sid: str
    upto: int
    chan: str = LOBBY


@dataclass(frozen=True, slots=True)
class Pull:
    """``v2 PULL sid [chan] after limit``: send events of ``chan`` with id > after,
    at most limit."""

    sid: str
    after: int
    limit: int
    chan: str = LOBBY


@dataclass(frozen=True, slots=True)
class Ping:
    """``v2 PING sid seen``: heartbeat; ``seen`` is the highest id the client has."""

    sid: str
    seen: int


@dataclass(frozen=True, slots=True)
class Who:
    """``v2 WHO sid [#room]``: who is in the room."""

    sid: str
    room: str = LOBBY


@dataclass(frozen=True, slots=True)
class Join:
    """``v2 JOIN sid chan``: join a room (created if new), or open the direct
    conversation with a peer (``@bob``: its events are pushed from now on).
    Answered by JOINED, also when already joined (a retry)."""

    sid: str
    chan: str


@dataclass(frozen=True, slots=True)
class Part:
    """``v2 PART sid #room``: leave a room; answered by PARTED (also a retry)."""

    sid: str
    room: str


@dataclass(frozen=True, slots=True)
class ListRooms:
    """``v2 ROOMS sid``: which rooms exist, with their member counts."""

    sid: str


@dataclass(frozen=True, slots=True)
class Bye:
    """``v2 BYE sid``: leave the room."""

    sid: str


ClientFrame = (
    ClassicLogin
    | ClassicChat
    | ClassicQuit
    | Login
    | Say
    | Ack
    | Pull
    | Ping
    | Who
    | Bye
    | Join
    | Part
    | ListRooms
)

# --------------------------------------------------------------------------- v2 server frames


@dataclass(frozen=True, slots=True)
class Welcome:
    """``v2 WELCOME nonce sid idle_timeout last_id rate [#room]``; ``rate`` is
    the server's message rate limit ``BURST/PER_SECOND`` or ``off``; ``last_id``
    is the newest event of ``room`` (the room the session starts in) before it
    joined."""

    nonce: str
    sid: str
    idle_timeout: float
    last_id: int
    rate: str = "off"
    room: str = LOBBY


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
    """``v2 EV [chan] id ts_ms kind name text``: one stored event; ``id`` is its
    position in its conversation (``event.room_seq``). ``chan`` is how the
    conversation is named to the receiver: the room, or ``@peer`` for a direct
    message (None: the event's room)."""

    event: Event
    chan: str | None = None


@dataclass(frozen=True, slots=True)
class Acked:
    """``v2 ACKED seq id [ts_ms]``: message ``seq`` is stored as event ``id``.

    With ``ts`` (the event's time) it is also the sender's copy of the event: the
    server does not send the sender an EV of its own message, since the client
    already has the text; that saves one datagram per message in the fan-out. Without
    ``ts`` (an older server, or a retry whose event left the server's memory) the
    client takes the event from an EV or a PULL as for anyone else's.
    """

    seq: int
    id: int
    ts: float | None = None
    chan: str = LOBBY


@dataclass(frozen=True, slots=True)
class Rejected:
    """``v2 REJECTED seq code text``: message ``seq`` was not stored and will not
    be: ``offline`` (a direct message to a name that is not online), ``classic``
    (to a name online in the classic dialect, which has no direct messages), ``notmember``
    (a room the session is not in), ``badroom``. The client stops retrying it."""

    seq: int
    code: str
    text: str


@dataclass(frozen=True, slots=True)
class Pong:
    """``v2 PONG last_id [chan:last_id ...]``: the newest event id of LOBBY and
    of each other conversation of the session (as many as fit), so a lost tail
    is noticed in every one of them."""

    last_id: int
    others: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class Users:
    """``v2 USERS [#room] total name...``: who is in the room (as many names as
    fit)."""

    total: int
    names: tuple[str, ...]
    room: str = LOBBY


@dataclass(frozen=True, slots=True)
class Joined:
    """``v2 JOINED chan last_id``: the session is in ``chan``; ``last_id`` is the
    newest event there before it joined (older ones are history, pull them)."""

    chan: str
    last_id: int


@dataclass(frozen=True, slots=True)
class Parted:
    """``v2 PARTED #room``: the session is no longer in the room."""

    room: str


@dataclass(frozen=True, slots=True)
class RoomList:
    """``v2 ROOMS total #room:members ...``: the rooms (as many as fit)."""

    total: int
    rooms: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class Gone:
    """``v2 GONE [chan] oldest``: the pulled range starts before the oldest event
    of ``chan`` the server still keeps in memory; pull from ``oldest`` instead."""

    oldest: int
    chan: str = LOBBY


@dataclass(frozen=True, slots=True)
class Summary:
    """``v2 SUM [#room] first last ts_ms joined left [+name|-name ...]``: the
    positions ``first..last`` of a large room are joins and leaves (timeouts
    included), told together: ``joined`` joins and ``left`` leaves, of which the
    names listed (``+`` joined, ``-`` left) are the first few. The client treats
    the whole range as delivered. ``ts`` is the time of the last of them."""

    first: int
    last: int
    ts: float
    joined: int
    left: int
    names: tuple[str, ...] = ()
    chan: str = LOBBY


#: How a HEAD says which acknowledgement the room wants.
HeadMode = Literal["ack", "nack"]


@dataclass(frozen=True, slots=True)
class Head:
    """``v2 HEAD [#room] last_id members ack|nack``: the room's newest event and
    member count, unasked. ``nack``: the room is large; the server keeps no
    per-member delivery state there and sends each event once, so the client
    sends no ACKs and pulls whatever it lacks (this frame, after the room falls
    quiet, is how a lost last event is noticed). ``ack``: back to the usual
    acknowledgements."""

    last_id: int
    members: int
    mode: HeadMode
    chan: str = LOBBY


@dataclass(frozen=True, slots=True)
class Error:
    """``v2 ERR code text``: e.g. ``nosession`` (log in again), ``badtext``."""

    code: str
    text: str


@dataclass(frozen=True, slots=True)
class Goodbye:
    """``v2 BYE``: the answer to Bye (the v2 form of classic ``EXIT``)."""


ServerFrame = (
    Welcome
    | Cookie
    | Refused
    | EventFrame
    | Acked
    | Rejected
    | Pong
    | Users
    | Joined
    | Parted
    | RoomList
    | Gone
    | Summary
    | Head
    | Error
    | Goodbye
)
