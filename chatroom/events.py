"""The stored event: the one value the room, the wire and the storage layer share.

The room assigns ids itself (it is the single writer of a database), so that a frame
can carry its event id before the batch is committed; the server commits the batch
and only then sends the frames. See docs/architecture.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

#: The room everyone starts in; it always exists. Events of older releases (one
#: room) are in it, and a v2 frame that names no room means it.
LOBBY: Final = "#lobby"

EventKind = Literal["join", "message", "quit", "timeout", "announce"]
EVENT_KINDS: Final[tuple[EventKind, ...]] = ("join", "message", "quit", "timeout", "announce")


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened in a room or a direct conversation.

    ``created_at`` is wall-clock seconds since the epoch (UTC). ``session`` and
    ``seq`` are set for v2 client messages only: together they make a retried
    message idempotent (a unique constraint in storage).

    ``room`` is where it happened: a room (``#lobby``, ``#dev``) or, for a direct
    message, the conversation's key (see ``dm_key``); ``to`` is a direct
    message's recipient. ``room_seq`` is the event's position in its room's own
    contiguous sequence, which is what v2 clients order by, find holes in and
    pull (order is per room). ``id`` is the global order of the whole database
    (storage's primary key). On the client, which only sees a room's sequence,
    ``id`` and ``room_seq`` are both the position and ``room`` is how the wire
    named the conversation (``#dev``, or ``@bob`` for direct messages with bob).
    A ``room_seq`` of 0 means "the same as ``id``" (events of the single-room
    releases, where the two were one number).
    """

    id: int
    kind: EventKind
    name: str
    text: str
    created_at: float
    session: str | None = None
    seq: int | None = None
    room: str = LOBBY
    room_seq: int = 0
    to: str | None = None

    def __post_init__(self) -> None:
        if self.room_seq == 0:
            object.__setattr__(self, "room_seq", self.id)

    @property
    def direct(self) -> bool:
        """A direct message (its room is a conversation key, not a ``#room``)."""
        return self.room.startswith(DM_PREFIX)


#: What starts a direct conversation's key, and on the wire the peer's name.
DM_PREFIX: Final = "@"


def dm_key(a: str, b: str) -> str:
    """The stored room of the direct conversation between the users whose
    canonical name keys are ``a`` and ``b``: the same whichever writes. Keys hold
    no whitespace (names cannot), so the space separates them unambiguously."""
    first, second = sorted((a, b))
    return f"{DM_PREFIX}{first} {second}"
