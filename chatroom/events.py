"""The stored event: the one value the room, the wire and the storage layer share.

The room assigns ids itself (it is the single writer of a database), so that a frame
can carry its event id before the batch is committed; the server commits the batch
and only then sends the frames. See docs/architecture.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

EventKind = Literal["join", "message", "quit", "timeout", "announce"]
EVENT_KINDS: Final[tuple[EventKind, ...]] = ("join", "message", "quit", "timeout", "announce")


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened in the room.

    ``created_at`` is wall-clock seconds since the epoch (UTC). ``session`` and
    ``seq`` are set for v2 client messages only: together they make a retried
    message idempotent (a unique constraint in storage).
    """

    id: int
    kind: EventKind
    name: str
    text: str
    created_at: float
    session: str | None = None
    seq: int | None = None
