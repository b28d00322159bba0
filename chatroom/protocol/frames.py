"""The frames of both dialects as frozen dataclasses, and the wire limits.

Plain values: parsing and encoding are in codec.py, the rules for names and
message text in rules.py, the classic dialect's wording in classic.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

from chatroom.events import Event

#: Datagrams longer than this are dropped unread (RFC 9000's safe minimum MTU
#: payload; our own frames never exceed it). The socket reads one byte more so
#: that an oversized datagram is detected rather than silently truncated.
MAX_DATAGRAM: Final = 1200
#: Longest name, in characters after NFC normalisation.
MAX_NAME: Final = 32
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
