"""The event log: who numbers events, and in what order.

The server is the single writer of its database, so it assigns ids itself: a
frame can carry its event's position before the batch is committed (the loop
commits, then sends). Two numbers per event: ``id``, the global order (the
database's primary key, what ``chatroom history`` sorts by), and ``room_seq``,
the position in its conversation's own contiguous sequence, which is what v2
clients order by and pull holes of.

In a cluster several nodes write one PostgreSQL database: there the database
numbers events as it stores them (storage/sequencer.py), so the log makes
*drafts* (id 0, no position) that the node sends for storing, and events come
back numbered to be applied (replica.py).
"""

from __future__ import annotations

from chatroom.events import Event, EventKind
from chatroom.server.conversation import Conversation


class EventLog:
    __slots__ = ("last_id", "numbering")

    def __init__(self, last_id: int = 0, *, numbering: bool = True) -> None:
        self.last_id = last_id
        #: False in a cluster: ``draft`` instead of ``record``.
        self.numbering = numbering

    @staticmethod
    def draft(
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
        """A new event of ``conv`` for the database to number (id and position 0)."""
        return Event(0, kind, name, text, wall, session, seq, conv.key, 0, to)

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
