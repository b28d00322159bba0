"""A conversation's memory of recent events: a bounded ring with contiguous ids
(the conversation's own positions, ``Event.room_seq``).

PULL (history replay, gap filling) and server retransmissions are answered from
here, so the hot path never reads the database; the ring is loaded from storage
at start-up, which is also what lets a client resume its session's idempotency
map after a server restart.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator

from chatroom.events import Event


class Ring:
    """The last ``size`` events, ids contiguous and ascending, each with its wire
    frame encoded at most once.

    The frame cache is what keeps a held session's catch-up, a retransmission and
    a PULL as cheap as the live fan-out: under load every session that falls
    behind its window is sent each event separately, and encoding the same event
    once per session cost more than the send (docs/benchmarks.md, v2 profile).
    """

    def __init__(
        self, size: int, recent: Iterable[Event] = (), *, encode: Callable[[Event], bytes]
    ) -> None:
        self._events: deque[Event] = deque(recent, maxlen=size)
        self._frames: deque[bytes | None] = deque((None for _ in self._events), maxlen=size)
        self._encode = encode

    def append(self, event: Event) -> None:
        self._events.append(event)
        self._frames.append(None)

    def _index(self, event_id: int) -> int | None:
        """Where ``event_id`` sits (contiguous ids: O(1) by arithmetic), if held."""
        events = self._events
        if not events:
            return None
        index = event_id - events[0].room_seq
        return index if 0 <= index < len(events) else None

    def frame(self, event_id: int) -> bytes | None:
        """The encoded frame of ``event_id`` (encoded on first use), or None when
        the ring no longer (or not yet) holds it."""
        index = self._index(event_id)
        if index is None:
            return None
        data = self._frames[index]
        if data is None:
            data = self._frames[index] = self._encode(self._events[index])
        return data

    def get(self, event_id: int) -> Event | None:
        index = self._index(event_id)
        return None if index is None else self._events[index]

    @property
    def newest(self) -> int | None:
        return self._events[-1].room_seq if self._events else None

    @property
    def oldest(self) -> int | None:
        return self._events[0].room_seq if self._events else None

    def frames(self, after: int, limit: int) -> list[bytes]:
        """Encoded frames of the events with id > after, at most ``limit`` (the
        caller checks ``oldest``)."""
        events = self._events
        if not events:
            return []
        first = max(events[0].room_seq, after + 1)
        stop = min(events[-1].room_seq, first + limit - 1)
        return [f for i in range(first, stop + 1) if (f := self.frame(i)) is not None]

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

    def messages_of(self, sid: str) -> list[Event]:
        """A session's stored messages: its idempotency map after a restart."""
        return [e for e in self._events if e.session == sid and e.seq is not None]

    def __iter__(self) -> Iterator[Event]:
        return iter(self._events)

    def grow(self, size: int) -> None:
        """Keep up to ``size`` events again (a conversation back in use)."""
        if self._events.maxlen is not None and self._events.maxlen < size:
            self._events = deque(self._events, maxlen=size)
            self._frames = deque(self._frames, maxlen=size)

    def shrink(self, size: int) -> None:
        """Keep only the newest ``size`` events (an idle conversation's memory)."""
        if self._events.maxlen is not None and self._events.maxlen <= size:
            return
        self._events = deque(self._events, maxlen=size)
        self._frames = deque(self._frames, maxlen=size)
