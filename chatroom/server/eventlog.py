"""The event log: who numbers events, and in what order.

The server is the single writer of its database, so it assigns ids itself: a
frame can carry its event's position before the batch is committed (the loop
commits, then sends). Two numbers per event: ``id``, the global order (the
database's primary key, what ``chatroom history`` sorts by), and ``room_seq``,
the position in its conversation's own contiguous sequence, which is what v2
clients order by and pull holes of.
"""

from __future__ import annotations

from chatroom.events import Event, EventKind
from chatroom.server.conversation import Conversation


class EventLog:
    __slots__ = ("last_id",)

    def __init__(self, last_id: int = 0) -> None:
        self.last_id = last_id

    def record(
        self,
        conv: Conversation,
        kind: EventKind,
        name: str,
        text: str,
        wall: float,
        *,
        session: str | None = None,
        seq: int | None = None,
        to: str | None = None,
    ) -> Event:
        """A new event at the end of ``conv``, kept in its ring (not yet stored:
        the caller returns a ``Store`` effect for it)."""
        self.last_id += 1
        conv.last_seq += 1
        event = Event(
            self.last_id, kind, name, text, wall, session, seq, conv.key, conv.last_seq, to
        )
        conv.ring.append(event)
        return event
