"""Conversations: the rooms and direct conversations the server holds in memory.

A ``Conversation`` is one place where events happen, with its own contiguous
sequence of positions (``Event.room_seq``), its ring of recent events and its
members. A room's members are a registry of the kind ``--registry`` names (the
data-structure comparison covers "members of one room"); a direct
conversation's members are the (at most two) sessions subscribed to it.

``Conversations`` keeps them: every live one, plus the most recently used idle
ones (no members) with a shortened ring, so that a room joined again still
replays its history from memory; older idle ones are dropped and only their
newest position is remembered, so their sequence continues where it stopped.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Final

from chatroom import protocol as p
from chatroom.events import DM_PREFIX, LOBBY, Event
from chatroom.registry import Registry
from chatroom.server.ring import Ring

if TYPE_CHECKING:
    from chatroom.server.crowd import Crowd

#: Idle conversations kept in memory (least recently used dropped first).
MAX_IDLE: Final = 1000
#: Events an idle conversation keeps: a rejoin's replay and some /history.
IDLE_RING: Final = 256


def dm_peer(key: str, viewer_key: str) -> str:
    """In the direct conversation ``key`` (``dm_key``), the other party's name key."""
    first, _, second = key[len(DM_PREFIX) :].partition(" ")
    return second if first == viewer_key else first


def _encode(event: Event) -> bytes:
    return p.encode(p.EventFrame(event))


class Conversation:
    """One room (``#dev``) or direct conversation (``dm_key``: ``@alice bob``)."""

    __slots__ = ("crowd", "key", "last_seq", "members", "remote", "ring")

    def __init__(self, key: str, members: Registry, ring: Ring, last_seq: int) -> None:
        self.key = key
        self.members = members
        self.ring = ring
        self.last_seq = last_seq
        #: Members on other nodes of a cluster (name key -> name), kept from the
        #: events every node applies (chatroom/server/replica.py); empty on a
        #: single node.
        self.remote: dict[str, str] = {}
        #: A large room's delivery state (crowd.py); None in a small one.
        self.crowd: Crowd | None = None

    def count(self) -> int:
        """Members here and on other nodes."""
        return len(self.members) + len(self.remote)

    def names(self) -> list[str]:
        """Every member's name: this node's in join order, then other nodes'."""
        return [u.name for u in self.members] + list(self.remote.values())

    @property
    def is_room(self) -> bool:
        return not self.key.startswith(DM_PREFIX)

    def label_for(self, viewer_key: str) -> str:
        """How the wire names this conversation to ``viewer_key``: the room, or
        ``@`` and the other party's name key."""
        return self.key if self.is_room else p.PEER_PREFIX + dm_peer(self.key, viewer_key)

    def frame(self, pos: int, viewer_key: str) -> bytes | None:
        """The EV frame of position ``pos`` as ``viewer_key`` receives it, or None
        when the ring no longer (or not yet) holds it. A room's frame is the same
        for everyone and cached in the ring; a direct message names the other
        party, so it is encoded per viewer (two people, few messages)."""
        if self.is_room:
            return self.ring.frame(pos)
        event = self.ring.get(pos)
        if event is None:
            return None
        return p.encode(p.EventFrame(event, self.label_for(viewer_key)))

    def frames(self, after: int, limit: int, viewer_key: str) -> list[bytes]:
        if self.is_room:
            return self.ring.frames(after, limit)
        oldest = self.ring.oldest or 0
        first = max(oldest, after + 1)
        stop = min(self.last_seq, first + limit - 1)
        return [f for i in range(first, stop + 1) if (f := self.frame(i, viewer_key))]


class Conversations:
    """Every conversation in memory, by key. Rooms are created on first use."""

    def __init__(
        self,
        new_members: Callable[[], Registry],
        ring_size: int,
        *,
        recent: Iterable[Event] = (),
        heads: dict[str, int] | None = None,
    ) -> None:
        self._new_members = new_members
        self._ring_size = ring_size
        #: Newest position of each conversation not in memory.
        self._heads: dict[str, int] = dict(heads or {})
        self._all: dict[str, Conversation] = {}
        self._idle: OrderedDict[str, None] = OrderedDict()
        grouped: dict[str, list[Event]] = {}
        for event in recent:
            grouped.setdefault(event.room, []).append(event)
        for key, events in grouped.items():
            self._create(key, events)
            if key != LOBBY:
                self._idle[key] = None
        self.lobby = self.open(LOBBY)
        self._trim()

    def _create(self, key: str, recent: Iterable[Event] = ()) -> Conversation:
        ring = Ring(self._ring_size, recent, encode=_encode)
        last = ring.newest or 0
        conv = Conversation(key, self._new_members(), ring, max(last, self._heads.pop(key, 0)))
        self._all[key] = conv
        return conv

    def get(self, key: str) -> Conversation | None:
        return self._all.get(key)

    def open(self, key: str) -> Conversation:
        """The conversation ``key``, created (continuing its stored sequence) if
        it is not in memory."""
        conv = self._all.get(key)
        if conv is None:
            conv = self._create(key)
        return conv

    def joined(self, conv: Conversation) -> None:
        """``conv`` has a member again: no longer idle."""
        if conv.key in self._idle:
            del self._idle[conv.key]
            conv.ring.grow(self._ring_size)

    def left(self, conv: Conversation) -> None:
        """A member left ``conv``; the last one makes it idle (never the lobby)."""
        if len(conv.members) or conv.remote or conv.key == LOBBY:
            return
        conv.ring.shrink(IDLE_RING)
        self._idle[conv.key] = None
        self._idle.move_to_end(conv.key)
        self._trim()

    def _trim(self) -> None:
        while len(self._idle) > MAX_IDLE:
            key, _ = self._idle.popitem(last=False)
            conv = self._all.pop(key)
            self._heads[key] = conv.last_seq

    def rooms(self) -> Iterator[Conversation]:
        """Rooms with members (here or on other nodes), and the lobby (which
        always exists)."""
        for conv in self._all.values():
            if conv.is_room and (len(conv.members) or conv.remote or conv.key == LOBBY):
                yield conv

    def in_memory(self) -> Iterator[Conversation]:
        return iter(tuple(self._all.values()))
