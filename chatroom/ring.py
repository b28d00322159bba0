"""The room's memory of recent events: a bounded ring with contiguous ids.

PULL (history replay, gap filling) and server retransmissions are answered from
here, so the hot path never reads the database; the ring is loaded from storage
at start-up, which is also what lets a client resume its session's idempotency
map after a server restart.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from chatroom.events import Event


class Ring:
    """The last ``size`` events, ids contiguous and ascending."""

    def __init__(self, size: int, recent: Iterable[Event] = ()) -> None:
        self._events: deque[Event] = deque(recent, maxlen=size)

    def append(self, event: Event) -> None:
        self._events.append(event)

    @property
    def oldest(self) -> int | None:
        return self._events[0].id if self._events else None

    def get(self, event_id: int) -> Event | None:
        events = self._events
        if not events:
            return None
        index = event_id - events[0].id  # contiguous ids: O(1) by arithmetic
        return events[index] if 0 <= index < len(events) else None

    def page(self, after: int, limit: int) -> list[Event]:
        """Events with id > after, at most ``limit`` (the caller checks ``oldest``)."""
        events = self._events
        if not events:
            return []
        start = max(0, after + 1 - events[0].id)
        stop = min(len(events), start + limit)
        return [events[i] for i in range(start, stop)]

    def session_name(self, sid: str) -> str | None:
        """The name the session ``sid`` last used, if the ring remembers it (joins
        and messages carry their session id)."""
        for event in reversed(self._events):
            if event.session == sid:
                return event.name
        return None

    def present_at_end(self, name: str) -> bool:
        """Whether ``name``'s last join/leave in memory is a join: the user was in
        the room when the ring ends (e.g. when the previous server process died)."""
        for event in reversed(self._events):
            if event.name == name and event.kind in ("join", "quit", "timeout"):
                return event.kind == "join"
        return False

    def seqs_of(self, sid: str) -> dict[int, int]:
        """(seq -> id) of a session's stored messages: its idempotency map."""
        return {e.seq: e.id for e in self._events if e.session == sid and e.seq is not None}
