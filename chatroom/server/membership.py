"""Entering and leaving conversations, and publishing in them.

These are the operations that touch several parts at once: a join is a member
added to a room's registry, a stream opened for the session, an event recorded
in the log and fanned out; a departure is the same in reverse, in every
conversation the user was in, plus the directory and the guard's accounting.
"""

from __future__ import annotations

from collections import Counter
from typing import Final

from chatroom.events import EVENT_KINDS, EventKind
from chatroom.registry import Address, User
from chatroom.server.config import ServerConfig
from chatroom.server.conversation import Conversation, Conversations
from chatroom.server.crowd import Crowds
from chatroom.server.directory import Directory
from chatroom.server.effects import Effect, Store
from chatroom.server.eventlog import EventLog
from chatroom.server.fanout import fan_out
from chatroom.server.guard import Guard
from chatroom.server.storage_state import StorageState

#: The counter of each event kind (``chatroom status``'s message rate reads one).
COUNTERS: Final = {kind: f"events.{kind}" for kind in EVENT_KINDS}


class Membership:
    def __init__(
        self,
        config: ServerConfig,
        directory: Directory,
        conversations: Conversations,
        log: EventLog,
        guard: Guard,
        stats: Counter[str],
        storage: StorageState,
    ) -> None:
        self.config = config
        self.directory = directory
        self.conversations = conversations
        self.log = log
        self.guard = guard
        self.stats = stats
        self.storage = storage
        #: The large rooms (crowd.py).
        self.crowds = Crowds(config.lang)
        #: Counts changes of who is online and where (a cluster node writes its
        #: presence to the broker when it moves).
        self.changes = 0

    def publish(
        self,
        conv: Conversation,
        kind: EventKind,
        name: str,
        text: str,
        now: float,
        wall: float,
        *,
        exclude: Address | None = None,
        session: str | None = None,
        seq: int | None = None,
        sender: User | None = None,
        to: str | None = None,
    ) -> list[Effect]:
        """Record a new event in ``conv`` and deliver it (see fanout.py); in a
        cluster, only a draft to store: it is delivered once it comes back
        numbered (replica.py)."""
        if not self.log.numbering:
            draft = self.log.draft(conv, kind, name, text, wall, session=session, seq=seq, to=to)
            return [Store(draft)]
        event = self.log.record(conv, kind, name, text, wall, session=session, seq=seq, to=to)
        self.stats[COUNTERS[kind]] += 1
        return fan_out(conv, event, now, self.crowds, exclude=exclude, sender=sender)

    def arrive(self, user: User) -> None:
        """``user`` is online here. One who was online on another node (a client
        that moved) is no longer counted there."""
        self.changes += 1
        self.directory.add(user)
        if user.key in self.directory.remote:
            for conv in self.conversations.in_memory():
                if conv.remote.pop(user.key, None) is not None:
                    self.directory.remote_left(user.key)

    def conversations_of(self, user: User) -> list[Conversation]:
        """Where ``user`` is: a session's subscriptions; a classic peer's lobby."""
        if user.session is None:
            lobby = self.conversations.lobby
            return [lobby] if lobby.members.get(user.key) is user else []
        found = (self.conversations.get(key) for key in user.session.subs)
        return [conv for conv in found if conv is not None]

    def enter(
        self, user: User, conv: Conversation, now: float, wall: float, *, notice: bool = True
    ) -> tuple[int, list[Effect]]:
        """Add ``user`` to ``conv`` (a room: a join event unless ``notice`` is
        False; a direct conversation: no event). Returns the newest position
        before the entry (the session's stream starts after it) and the effects."""
        base = conv.last_seq
        self.changes += 1
        conv.members.add(user)
        self.conversations.joined(conv)
        if user.session is not None:
            user.session.subscribe(conv.key, base, now)
        told = self.crowds.changed(conv)
        if not notice or not conv.is_room:
            return base, told
        # A v2 join carries the session id: after a server restart that is how
        # the session is known to have been this name's (v2.py, _resumable).
        sid = None if user.session is None else user.session.sid
        effects = self.publish(
            conv, "join", user.name, "", now, wall, exclude=user.address, session=sid
        )
        return base, told + effects

    def open_direct(self, user: User, conv: Conversation, now: float) -> None:
        """Subscribe ``user``'s session to a direct conversation it has not
        joined, starting at the event about to be recorded; on probation until
        its client acknowledges that first one (delivery.py)."""
        conv.members.add(user)
        self.conversations.joined(conv)
        user.session.subscribe(conv.key, conv.last_seq, now, probation=True)

    def leave(
        self,
        user: User,
        conv: Conversation,
        kind: EventKind,
        now: float,
        wall: float,
        *,
        exclude: Address | None = None,
    ) -> list[Effect]:
        """Take ``user`` out of ``conv``; a room is told (``quit``/``timeout``)."""
        self.changes += 1
        conv.members.remove(user.key)
        if user.session is not None:
            user.session.subs.pop(conv.key, None)
            user.session.joined_at.pop(conv.key, None)
        self.conversations.left(conv)
        told = self.crowds.changed(conv)
        if not conv.is_room:
            return told
        return told + self.publish(conv, kind, user.name, "", now, wall, exclude=exclude)

    def depart(
        self, user: User, kind: EventKind, now: float, wall: float, *, exclude: Address | None
    ) -> list[Effect]:
        """``user`` leaves the server: every conversation, the directory, the guard."""
        effects: list[Effect] = []
        for conv in self.conversations_of(user):
            effects += self.leave(user, conv, kind, now, wall, exclude=exclude)
        self.changes += 1
        self.directory.remove(user)
        if user.session is not None:
            self.guard.session_closed(user.address[0])
        else:
            self.guard.classic_closed(user.address)
        return effects
