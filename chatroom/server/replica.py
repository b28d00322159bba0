"""Applying events numbered elsewhere: how a node of a cluster delivers.

On a single node an event is numbered, delivered and stored in one step
(membership.py). In a cluster the database numbers it (storage/sequencer.py),
and every node, the one it started on included, *applies* the stored event:
it takes the event's position in its conversation, keeps it in the ring, and
fans it out to the members on this node. Events arrive from the node's own
commits and from the broker, in any order between rooms; within a
conversation they are applied strictly in position order: one that arrives
early waits for the ones before it, and ``behind`` names the conversations
whose missing positions the node should read back from the database (the
broker lost them, or a node died between its commit and its publish).

Applying also keeps the membership of other nodes' users (``remote``) from
the join and leave events everyone applies: who is in a room (WHO, counts),
who is online for a direct message, which names are taken.

No I/O here either: the node passes events in and sends the effects.
"""

from __future__ import annotations

from collections.abc import Iterable

from chatroom import protocol as p
from chatroom.events import Event
from chatroom.registry import User
from chatroom.server.conversation import Conversation
from chatroom.server.effects import Effect, Send, Store
from chatroom.server.fanout import fan_out
from chatroom.server.membership import COUNTERS, Membership

#: Events that took someone out of a room.
_LEAVES = ("quit", "timeout")


class Replica:
    def __init__(self, members: Membership) -> None:
        self.members = members
        #: Events that arrived ahead of a missing position, per conversation.
        self._early: dict[str, dict[int, Event]] = {}
        #: When each conversation's current hole was first seen.
        self._hole_since: dict[str, float] = {}

    # ------------------------------------------------------------------ applying

    def apply(self, events: Iterable[Event], now: float) -> list[Effect]:
        """Deliver stored events to this node's members, each conversation in
        position order; the sends (nothing to store: they are stored)."""
        effects: list[Effect] = []
        for event in events:
            conv = self.members.conversations.open(event.room)
            if event.room_seq <= conv.last_seq:
                effects += self._again(conv, event)
                continue
            if event.room_seq > conv.last_seq + 1:
                self._early.setdefault(conv.key, {})[event.room_seq] = event
                self._hole_since.setdefault(conv.key, now)
                continue
            effects += self._apply_one(conv, event, now)
            early = self._early.get(conv.key)
            while early and (nxt := early.pop(conv.last_seq + 1, None)) is not None:
                effects += self._apply_one(conv, nxt, now)
            if early is not None and not early:
                del self._early[conv.key]
            if conv.key not in self._early:
                self._hole_since.pop(conv.key, None)
        return effects

    def behind(self, now: float, grace: float = 0.0) -> dict[str, int]:
        """Conversations with a hole before events that arrived, for ``grace``
        seconds at least (the missing batch is usually a millisecond behind on
        the broker): key -> the last position applied (read the ones after it
        from the database)."""
        out: dict[str, int] = {}
        for key, since in self._hole_since.items():
            if now - since < grace:
                continue
            conv = self.members.conversations.get(key)
            out[key] = conv.last_seq if conv is not None else 0
        return out

    def heads(self) -> dict[str, int]:
        """The newest position applied in every conversation in memory."""
        return {c.key: c.last_seq for c in self.members.conversations.in_memory()}

    def _apply_one(self, conv: Conversation, event: Event, now: float) -> list[Effect]:
        m = self.members
        author = m.directory.get(p.name_key(event.name)) if event.name else None
        if not conv.is_room:
            # Each party on this node follows the conversation from this event
            # on (on probation until its client acknowledges it: delivery.py).
            for key in conv.key[1:].split(" "):
                party = m.directory.get(key)
                session = None if party is None else party.session
                if party is not None and session is not None and conv.key not in session.subs:
                    m.open_direct(party, conv, now)
        conv.last_seq = event.room_seq
        conv.ring.append(event)
        m.log.last_id = max(m.log.last_id, event.id)
        m.storage.committed = max(m.storage.committed, event.id)
        m.stats[COUNTERS[event.kind]] += 1
        if author is None and conv.is_room and event.name:
            self._remote_membership(conv, event)
        sender: User | None = None
        if (
            author is not None
            and author.session is not None
            and event.kind == "message"
            and event.session == author.session.sid
        ):
            sender = author
        exclude = author.address if author is not None and author.session is None else None
        out = fan_out(conv, event, now, m.crowds, exclude=exclude, sender=sender)
        sends: list[Effect] = [e for e in out if isinstance(e, Send)]
        if sender is not None:
            sends += self._acked(sender, conv, event)
        return sends

    def _remote_membership(self, conv: Conversation, event: Event) -> None:
        key = p.name_key(event.name)
        directory = self.members.directory
        if event.kind == "join" and key not in conv.remote:
            conv.remote[key] = event.name
            directory.remote_entered(key, event.name)
            self.members.conversations.joined(conv)
        elif event.kind in _LEAVES and conv.remote.pop(key, None) is not None:
            directory.remote_left(key)
            self.members.conversations.left(conv)

    def _again(self, conv: Conversation, event: Event) -> list[Effect]:
        """An event applied before (the broker and a repair both brought it; or
        a retried message the database had stored already): only its sender
        may still be waiting for its ACKED."""
        if event.kind != "message" or event.seq is None:
            return []
        author = self.members.directory.get(p.name_key(event.name))
        if author is None or author.session is None or author.session.sid != event.session:
            return []
        if event.seq not in author.session.pending:
            return []
        return self._acked(author, conv, event)

    def _acked(self, user: User, conv: Conversation, event: Event) -> list[Effect]:
        session = user.session
        assert event.seq is not None
        session.pending.discard(event.seq)
        session.remember(event.seq, conv.key, event.room_seq)
        acked = p.Acked(event.seq, event.room_seq, event.created_at, conv.label_for(user.key))
        return [Send(p.encode(acked), (user.address,), event.id)]

    # ------------------------------------------------------------------ other nodes

    def moved_away(self, user: User) -> None:
        """``user``'s client moved to another node (which holds the name now):
        forget it here without telling anyone; it has not left."""
        m = self.members
        m.changes += 1
        for conv in m.conversations_of(user):
            conv.members.remove(user.key)
            # A large room turning small restarts its members' streams here;
            # the HEAD that would tell them is not sent (nothing is, from this
            # path): their clients ACK again once the server resends to them.
            m.crowds.changed(conv)
            if user.session is not None:
                user.session.subs.pop(conv.key, None)
            if conv.is_room:
                conv.remote[user.key] = user.name
                m.directory.remote_entered(user.key, user.name)
            m.conversations.left(conv)
        m.directory.remove(user, release=False)
        if user.session is not None:
            m.guard.session_closed(user.address[0])
        else:
            m.guard.classic_closed(user.address)

    def reap(self, gone: Iterable[str], wall: float) -> list[Effect]:
        """Users (names) of a node that died: a timeout in each room where this
        node has them as members (drafts, stored and applied as usual). The
        rooms come from the joins and leaves applied here, which every node
        applies alike, not from what the dead node last wrote."""
        effects: list[Effect] = []
        log = self.members.log
        keys = {p.name_key(name) for name in gone}
        keys = {k for k in keys if self.members.directory.get(k) is None}  # not back here
        for conv in self.members.conversations.in_memory():
            for key in keys & conv.remote.keys():
                effects.append(Store(log.draft(conv, "timeout", conv.remote[key], "", wall)))
        return effects

    def seen_elsewhere(self, online: Iterable[tuple[str, Iterable[str]]]) -> None:
        """What the other nodes say their users are in (a node that starts, or
        the broker back after an outage): joins it never applied."""
        for name, rooms in online:
            key = p.name_key(name)
            if self.members.directory.get(key) is not None:
                continue
            for room in rooms:
                conv = self.members.conversations.open(room)
                if conv.is_room and key not in conv.remote:
                    conv.remote[key] = name
                    self.members.directory.remote_entered(key, name)
                    self.members.conversations.joined(conv)
