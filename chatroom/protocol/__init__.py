"""Datagram bytes <-> typed frames, for both wire dialects. No sockets, no state.

This package is the only place that knows the wire strings. The grammar, with
examples, is in docs/protocol.md; the short version:

* classic (the course's L/C/Q, typable in ``nc -u``): ``L name``, ``C name text``,
  ``Q name``; the server answers ``OK``, a refusal text, ``EXIT`` and broadcasts
  plain lines such as ``alice : hi``.
* v2 (our client): every datagram starts with ``v2 `` and one upper-case verb.

Parsing never raises on peer input: it returns a frame or a ``BadFrame`` saying why.
Modules: frames.py (the values and limits), codec.py (bytes <-> frames),
rules.py (names and message text), classic.py (the classic dialect's wording).
"""

from chatroom.protocol.classic import EXIT, OK, classic_event, classic_text
from chatroom.protocol.codec import encode, encode_client, parse, parse_server
from chatroom.protocol.frames import (
    LOGIN_MIN,
    MAX_DATAGRAM,
    MAX_NAME,
    MAX_TEXT,
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
    Lang,
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
from chatroom.protocol.rules import bad_text_char, check_name, name_key, text_too_long

__all__ = [
    "EXIT",
    "LOGIN_MIN",
    "MAX_DATAGRAM",
    "MAX_NAME",
    "MAX_TEXT",
    "OK",
    "OPERATOR_NAME",
    "V2_PREFIX",
    "Ack",
    "Acked",
    "BadFrame",
    "Bye",
    "ClassicChat",
    "ClassicLogin",
    "ClassicQuit",
    "ClientFrame",
    "Cookie",
    "Error",
    "EventFrame",
    "Gone",
    "Goodbye",
    "Lang",
    "Login",
    "Ping",
    "Pong",
    "Pull",
    "Refused",
    "Say",
    "ServerFrame",
    "Users",
    "Welcome",
    "Who",
    "bad_text_char",
    "check_name",
    "classic_event",
    "classic_text",
    "encode",
    "encode_client",
    "name_key",
    "parse",
    "parse_server",
    "text_too_long",
]
