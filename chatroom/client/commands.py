"""What a typed line means: a message, an action or a slash command. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

#: The commands, for /help and tab completion (``quit`` also works bare).
COMMANDS: Final = ("/help", "/who", "/history", "/me", "/quit")
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
    pass


@dataclass(frozen=True, slots=True)
class HistoryCmd:
    count: int


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


Command = Message | Help | WhoCmd | HistoryCmd | QuitCmd | Unknown | Usage


def is_quit(line: str) -> bool:
    """``quit`` (the course's word) or ``/quit``."""
    return line.strip() in ("quit", "/quit")


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
    match word.lower():
        case "/help" | "/?":
            return Help()
        case "/who" | "/users" | "/names":
            return WhoCmd()
        case "/me":
            return Message("/me " + rest) if rest else Usage("/me")
        case "/history":
            if not rest:
                return HistoryCmd(HISTORY_DEFAULT)
            if rest.isascii() and rest.isdigit() and 0 < int(rest) <= HISTORY_MAX:
                return HistoryCmd(int(rest))
            return Usage("/history")
        case _:
            return Unknown(word)


def complete(text: str, names: list[str]) -> list[str]:
    """Candidates for tab completion of the word ``text``: commands when it starts
    with ``/``, otherwise the names seen online (case-insensitive prefix)."""
    if text.startswith("/"):
        return [c for c in COMMANDS if c.startswith(text.lower())]
    low = text.casefold()
    return sorted(n for n in names if n.casefold().startswith(low))
