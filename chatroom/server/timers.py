"""Timers that cost nothing for sessions with nothing due (issue 12).

The loop ticks ten times a second. Walking every session's every stream at
each tick to find the few retransmissions due, and every session once a second
to find the silent ones, made an idle server's work grow with its users
(5.7% CPU at 10,000 idle sessions). Instead:

- ``Retransmits``: a heap of the streams (Outboxes) that have a deadline.
  Lazy, like the timer heaps of QUIC stacks: a deadline that moved later (an
  ACK came) is found when its entry is popped and pushed again; one that went
  away is dropped then; one that came earlier (an ACK ended a back-off, then
  a new event was sent) gets a new entry, and the old one is skipped when
  popped. A tick pops only what is due.
- ``IdleWheel``: sessions by the second they were last heard from, one slot a
  second. A session heard from again moves to its new slot (at most once a
  second, however many frames it sends); the check takes only the slots that
  fell past the idle timeout, and of those only the sessions still in them.

Pure: times come in as arguments.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Iterator

from chatroom.registry import User
from chatroom.server.delivery import Outbox


class Retransmits:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, User, str, Outbox]] = []
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def schedule(self, user: User, key: str, outbox: Outbox) -> None:
        """``outbox`` (``user``'s stream of conversation ``key``) has a deadline
        now; nothing to do if it is in the heap already."""
        deadline = outbox.deadline
        if deadline is None or (outbox.scheduled is not None and outbox.scheduled <= deadline):
            return
        outbox.scheduled = deadline
        heapq.heappush(self._heap, (deadline, next(self._order), user, key, outbox))

    def due(self, now: float) -> Iterator[tuple[User, str, Outbox]]:
        """The streams whose deadline has come, each once. The caller runs their
        ``expired`` and then ``schedule`` again (a new deadline, if any)."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, _, user, key, outbox = heapq.heappop(heap)
            if outbox.scheduled != at:
                continue  # superseded by an earlier entry (its deadline came forward)
            outbox.scheduled = None
            session = user.session
            if session is None or session.subs.get(key) is not outbox:
                continue  # the session ended, or left the conversation
            if outbox.deadline is None:
                continue  # everything was acknowledged
            if outbox.deadline > now:
                self.schedule(user, key, outbox)  # an ACK moved it later
                continue
            yield user, key, outbox


class IdleWheel:
    def __init__(self) -> None:
        self._slots: dict[int, dict[str, User]] = {}
        #: The oldest slot not yet looked at.
        self._next = -1

    def heard(self, user: User, now: float) -> None:
        """``user``'s session was heard from at ``now`` (its ``last_seen``)."""
        session = user.session
        second = int(now)
        if session.slot == second:
            return
        old = self._slots.get(session.slot)
        if old is not None:
            old.pop(session.sid, None)
        session.slot = second
        self._slots.setdefault(second, {})[session.sid] = user
        if self._next < 0:
            self._next = second

    def silent(self, since: float) -> list[User]:
        """Sessions not heard from since ``since`` (each once: they leave the
        wheel), oldest first. Only the slots that fell past it are looked at."""
        out: list[User] = []
        if self._next < 0:
            return out
        last = math.floor(since) - 1  # every slot before since's own second
        while self._next <= last:
            slot = self._slots.pop(self._next, None)
            self._next += 1
            if slot:
                out += [u for u in slot.values() if u.session.last_seen < since]
        # since's own second: some of it may be silent, some not yet.
        slot = self._slots.get(math.floor(since))
        if slot:
            for sid, user in list(slot.items()):
                if user.session.last_seen < since:
                    del slot[sid]
                    out.append(user)
        if not self._slots:
            self._next = -1
        elif self._next < min(self._slots):
            self._next = min(self._slots)
        return out

    def forget(self, user: User) -> None:
        """``user``'s session ended (the wheel must not keep it alive)."""
        slot = self._slots.get(user.session.slot)
        if slot is not None:
            slot.pop(user.session.sid, None)
