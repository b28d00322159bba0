"""What a typed line means: a message, an action or a slash command. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from chatroom.protocol import ACTION_PREFIX, ROOM_PREFIX

#: The commands, for /help and tab completion (``quit`` also works bare).
COMMANDS: Final = (
    "/help",
    "/who",
    "/history",
    "/me",
    "/join",
    "/part",
    "/rooms",
    "/msg",
    "/reply",
    "/quit",
)
#: Events /history shows when no count is given, and the most it will fetch.
HISTORY_DEFAULT: Final = 10
HISTORY_MAX: Final = 1000


@dataclass(frozen=True, slots=True)
class Message:
    text: str


@dataclass(frozen=True, slots=True)
class Help:
    pass


@dataclass(frozen=True, slots=True)
class WhoCmd:
    """``/who [#room]``: None means the current room."""

    room: str | None = None


@dataclass(frozen=True, slots=True)
class HistoryCmd:
    count: int


@dataclass(frozen=True, slots=True)
class JoinCmd:
    """``/join #room`` (a bare name gets its ``#``)."""

    room: str


@dataclass(frozen=True, slots=True)
class PartCmd:
    """``/part [#room]``: None means the current room."""

    room: str | None = None


@dataclass(frozen=True, slots=True)
class RoomsCmd:
    pass


@dataclass(frozen=True, slots=True)
class DirectCmd:
    """``/msg NAME TEXT``: a direct message."""

    name: str
    text: str


@dataclass(frozen=True, slots=True)
class ReplyCmd:
    """``/reply TEXT``: a direct message to whoever last wrote to us."""

    text: str


@dataclass(frozen=True, slots=True)
class QuitCmd:
    pass


@dataclass(frozen=True, slots=True)
class Unknown:
    command: str


@dataclass(frozen=True, slots=True)
class Usage:
    """A known command used wrongly; ``command`` names it."""

    command: str


Command = (
    Message
    | Help
    | WhoCmd
    | HistoryCmd
    | JoinCmd
    | PartCmd
    | RoomsCmd
    | DirectCmd
    | ReplyCmd
    | QuitCmd
    | Unknown
    | Usage
)


def is_quit(line: str) -> bool:
    """``quit`` (the course's word) or ``/quit``."""
    return line.strip() in ("quit", "/quit")


def _room_arg(arg: str) -> str:
    """A room argument as typed: ``dev`` means ``#dev`` (a name cannot start with
    ``#``, so nothing else is meant)."""
    return arg if arg.startswith(ROOM_PREFIX) else ROOM_PREFIX + arg


def parse_line(line: str) -> Command | None:
    """None for a blank line. ``//text`` sends ``/text`` literally."""
    stripped = line.strip()
    if not stripped:
        return None
    if is_quit(stripped):
        return QuitCmd()
    if not stripped.startswith("/") or stripped.startswith("//"):
        return Message(stripped[1:] if stripped.startswith("//") else stripped)
    word, _, rest = stripped.partition(" ")
    rest = rest.strip()
    args = rest.split()
    match word.lower():
        case "/help" | "/?":
            return Help()
        case "/who" | "/users" | "/names":
            if len(args) > 1:
                return Usage("/who")
            return WhoCmd(_room_arg(args[0]) if args else None)
        case "/me":
            return Message(ACTION_PREFIX + rest) if rest else Usage("/me")
        case "/history":
            if not rest:
                return HistoryCmd(HISTORY_DEFAULT)
            if rest.isascii() and rest.isdigit() and 0 < int(rest) <= HISTORY_MAX:
                return HistoryCmd(int(rest))
            return Usage("/history")
        case "/join" | "/j":
            return JoinCmd(_room_arg(args[0])) if len(args) == 1 else Usage("/join")
        case "/part" | "/leave":
            if len(args) > 1:
                return Usage("/part")
            return PartCmd(_room_arg(args[0]) if args else None)
        case "/rooms" | "/list":
            return RoomsCmd() if not args else Usage("/rooms")
        case "/msg" | "/m" | "/tell":
            name, _, text = rest.partition(" ")
            text = text.strip()
            return DirectCmd(name.removeprefix("@"), text) if name and text else Usage("/msg")
        case "/reply" | "/r":
            return ReplyCmd(rest) if rest else Usage("/reply")
        case _:
            return Unknown(word)


def complete(text: str, names: list[str]) -> list[str]:
    """Candidates for tab completion of the word ``text``: commands when it starts
    with ``/``, rooms (the ``#...`` entries of ``names``) when it starts with
    ``#``, otherwise the names seen online (case-insensitive prefix)."""
    if text.startswith("/"):
        return [c for c in COMMANDS if c.startswith(text.lower())]
    low = text.casefold()
    rooms = text.startswith(ROOM_PREFIX)
    return sorted(
        n for n in names if n.startswith(ROOM_PREFIX) == rooms and n.casefold().startswith(low)
    )
