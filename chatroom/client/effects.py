"""What the client session asks its shell to do: plain values, no behaviour.

The session (chatroom/client/session.py) returns a list of these for every input.
``Transmit`` goes to the socket (to the server the last ``UseServer`` named);
everything else is for the screen (rendered by chatroom/client/render.py in the
user's language) or for the shell's control flow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chatroom.events import Event
from chatroom.protocol import Summary


@dataclass(frozen=True, slots=True)
class Transmit:
    """Send this datagram to the server."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class UseServer:
    """From now on send to server ``index`` of the list the session was given
    (``chatroom join --server``; ``label`` names it): the current one stopped
    answering. Comes before the datagrams meant for the new server."""

    index: int
    label: str


@dataclass(frozen=True, slots=True)
class ShowEvent:
    """Display one stored event. ``history``: it happened before we joined (or was
    asked for with /history) and is shown dimmed (a day other than today is dated
    by a line of its own). ``own``: we sent it. ``elsewhere``: it is not from the
    current room, so its line names the conversation (``event.room``; a direct
    message, ``@peer``, is always shown with its own marker)."""

    event: Event
    history: bool = False
    own: bool = False
    elsewhere: bool = False
    #: Our message, shown as pending while it waited (``ShowPending``), and
    #: now stored: its line says it was delivered.
    delivered: bool = False


@dataclass(frozen=True, slots=True)
class ShowPresence:
    """A large room's joins and leaves told together (``alice, bob and 38
    others joined``); ``room`` is the conversation, ``history`` and
    ``elsewhere`` as for ShowEvent."""

    summary: Summary
    room: str
    history: bool = False
    elsewhere: bool = False


@dataclass(frozen=True, slots=True)
class ShowPending:
    """One of our messages has waited (the connection is lost, or no answer
    came for a while): show it at once, marked as not delivered yet. It is shown
    again, marked delivered (``ShowEvent.delivered``), once stored; if it never
    is, a ``gave_up`` or ``undelivered_line`` notice says so. ``room`` is its
    conversation (``#dev``, ``@bob``), ``elsewhere`` as for ShowEvent."""

    name: str
    text: str
    room: str
    elsewhere: bool = False


@dataclass(frozen=True, slots=True)
class Notice:
    """A line of the client's own (connection state, errors, help...), rendered from
    the i18n catalog: ``key`` names the message, ``args`` fills it in."""

    key: str
    args: dict[str, str | int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ShowUsers:
    """The answer to /who: who is in ``room``."""

    total: int
    names: tuple[str, ...]
    room: str = ""


@dataclass(frozen=True, slots=True)
class ShowRooms:
    """The answer to /rooms: (room, members) of as many rooms as the server sent."""

    total: int
    rooms: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class OnlineChanged:
    """The set of names known to be online changed (for tab completion): the
    people in our rooms and those we have direct conversations with."""

    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RoomsChanged:
    """The rooms we know of changed (for tab completion): ours and the last
    /rooms answer's."""

    rooms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CurrentRoom:
    """What the user types now goes to ``room`` (None: no room; the prompt says)."""

    room: str | None


@dataclass(frozen=True, slots=True)
class LoggedIn:
    """The first WELCOME: the session is established."""

    name: str
    sid: str


@dataclass(frozen=True, slots=True)
class LoginRefused:
    """The server refused the name (first login only): ask for another."""

    code: str
    text: str


@dataclass(frozen=True, slots=True)
class NoAnswer:
    """The first login got no answer at all within the configured time."""


@dataclass(frozen=True, slots=True)
class Finished:
    """The session is over (after /quit): the shell may exit."""


Output = (
    Transmit
    | UseServer
    | ShowEvent
    | ShowPresence
    | ShowPending
    | Notice
    | ShowUsers
    | ShowRooms
    | OnlineChanged
    | RoomsChanged
    | CurrentRoom
    | LoggedIn
    | LoginRefused
    | NoAnswer
    | Finished
)
