"""One node of a cluster: what replaces the single node's group commit.

The socket loop (chatroom/server/loop.py) is the same; it hands its effects to
this object instead of the Committer, and selects on ``worker`` for what comes
back. The flow of one event:

1. the core makes a draft (no id, no position) and its effects say ``Store``;
2. the commit thread stores a batch of drafts in PostgreSQL, where they are
   numbered (storage/sequencer.py); a failure puts them back in front and is
   retried with back-off, like the single node's commits;
3. the stored batch is published on the broker, and applied here
   (server/replica.py), which sends it to this node's members; every other
   node applies it when the broker brings it.

So nothing is shown anywhere before it is committed. What the broker loses
(an outage, a node killed between its commit and its publish) is read back
from the database: a conversation with a hole is repaired at once, and once
a second the heads of the conversations with members here are compared with
the database's.

Leases (``lease``, the idle timeout): each name is claimed with one, renewed
every third of it. The node's own lease is half of it, renewed with its
presence once a second, when the node also looks for dead ones: a node whose
lease ran out is dead, and one node times its users out everywhere, within the
idle timeout of the kill.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterable
from typing import Final

from redis.exceptions import RedisError

from chatroom.cluster import wire
from chatroom.cluster.redis_broker import RedisBroker
from chatroom.events import Event
from chatroom.server.effects import Effect, Send, Store
from chatroom.server.hub import Hub
from chatroom.server.storage_state import Faults
from storage.errors import StorageError
from storage.sequencer import Sequencer

log = logging.getLogger("chatroom.cluster")

#: How often the heads of the conversations with members here are checked.
CHECK_EVERY: Final = 1.0
#: How long a hole may wait for the broker before it is read from the database
#: (the other node's batch is usually a millisecond or two behind).
HOLE_GRACE: Final = 0.1
#: How often the node renews its own lease and looks for dead nodes (at most).
BEAT_EVERY: Final = 1.0
#: A node's own lease, as a part of the idle timeout: with a look a second, a
#: killed node's users are timed out within the idle timeout (for timeouts of
#: 3 s and more).
NODE_LEASE: Final = 0.5


class Wake:
    """The pipe the loop selects on: written by the commit thread and by the
    broker's subscriber when they have something for the loop."""

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)

    def fileno(self) -> int:
        return self._r

    def poke(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._w, b"x")

    def drain(self) -> None:
        with contextlib.suppress(OSError):
            os.read(self._r, 4096)

    def close(self) -> None:
        """Close the pipe (again: nothing; the loop and the node both may)."""
        if self._r < 0:
            return
        os.close(self._r)
        os.close(self._w)
        self._r = self._w = -1


class ClusterNode:
    #: A node stopping is not the chat stopping: its users are told (not
    #: stored) and move to another node (loop.py).
    announces_shutdown = False

    def __init__(
        self,
        hub: Hub,
        sequencer: Sequencer,
        broker: RedisBroker,
        wake: Wake,
        *,
        lease: float,
        name: str = "",
    ) -> None:
        self.hub = hub
        self.sequencer = sequencer
        self.broker = broker
        self.node = broker.node
        self.worker = wake
        self.state = hub.storage
        self.lease = lease
        #: The cluster's name, and how many other nodes were alive at the last look.
        self.name = name
        self.peers = 0
        #: Told each batch this node stored (the terminal's activity log).
        self.on_commit: Callable[[list[Event]], None] | None = None
        self._pending: list[Event] = []
        self._in_flight: list[Event] = []
        self._jobs: queue.SimpleQueue[list[Event] | None] = queue.SimpleQueue()
        self._results: queue.SimpleQueue[tuple[list[Event], BaseException | None]] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(
            target=self._commit_loop, name="chatroom-commit", daemon=True
        )
        self._thread.start()
        self.faults = Faults(hub.storage)
        self.last_commit_at: float | None = None
        self.broker_up = True
        self._next_beat = 0.0
        self._next_renew = 0.0
        self._next_check = 0.0
        #: The presence as last written (name key -> value), and as of which
        #: of the core's membership changes.
        self._written: dict[str, str] = {}
        self._written_at = -1

    # ------------------------------------------------------------------ start

    def join(self, now: float) -> None:
        """Announce this node and learn who is online on the others."""
        self._beat(now)
        alive, _ = self.broker.others()
        for node in alive:
            self.hub.replica.seen_elsewhere(self.broker.online_at(node))

    # ------------------------------------------------------------------ the loop's interface

    @property
    def retry_at(self) -> float | None:
        return self.faults.retry_at

    @property
    def last_error(self) -> str:
        return self.faults.last_error

    @property
    def pending(self) -> int:
        return len(self._pending) + len(self._in_flight)

    def apply(self, effects: list[Effect], now: float) -> list[Send]:
        """Queue the drafts for storing; every send may go now (anything a send
        shows was applied, so it is stored)."""
        sends: list[Send] = []
        for effect in effects:
            if isinstance(effect, Store):
                self._pending.append(effect.event)
            else:
                sends.append(effect)
        self._submit()
        return sends

    def poll(self, now: float) -> list[Send]:
        """What the commit thread and the broker brought: apply it."""
        self.worker.drain()
        sends: list[Send] = []
        while True:
            try:
                drafts, outcome = self._results.get_nowait()
            except queue.Empty:
                break
            sends += self._outcome(drafts, outcome, now)
        for kind, data in self.broker.received():
            sends += self._from_broker(kind, data, now)
        self._submit()
        return sends

    def retry(self, now: float) -> list[Send]:
        if self.faults.retry_at is not None and now >= self.faults.retry_at:
            self._submit(retrying=True)
        return []

    def retry_now(self, now: float, timeout: float = 5.0) -> list[Send]:
        """Before stopping: store what is pending, waiting up to ``timeout``."""
        self._submit(retrying=True)
        sends: list[Send] = []
        while self._in_flight:
            try:
                drafts, outcome = self._results.get(timeout=timeout)
            except queue.Empty:
                break
            sends += self._outcome(drafts, outcome, now)
            if outcome is None:
                self._submit()
        return sends

    def tick(self, now: float, wall: float) -> list[Send]:
        """Leases, presence and dead nodes every third of a lease; repairs."""
        sends: list[Send] = []
        if now >= self._next_beat:
            sends += self._housekeeping(now, wall)
        elif self.hub.members.changes != self._written_at and self.broker_up:
            with contextlib.suppress(RedisError, OSError):
                self._beat(now)  # who is where, promptly: a starting node reads it
        behind = self.hub.replica.behind(now, HOLE_GRACE)
        if now >= self._next_check and not self._in_flight and not self._pending:
            # Not while a batch of ours is being stored: the database would be
            # ahead by it, and the node would read its own batch back.
            self._next_check = now + CHECK_EVERY
            behind = {**self._stale_heads(), **behind}
        for room, after in behind.items():
            sends += self._repair(room, after, now)
        self._submit()
        return sends

    def cluster_status(self) -> dict[str, object] | None:
        """For ``chatroom status``: which cluster, which node, the broker."""
        return {
            "name": self.name,
            "node": self.node,
            "nodes": self.peers + 1,
            "broker": "up" if self.broker_up else "down",
            "repaired": self.hub.stats["cluster.repaired"],
        }

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(5.0)
        self.worker.close()

    # ------------------------------------------------------------------ commits

    def _submit(self, *, retrying: bool = False) -> None:
        """Hand the pending drafts to the commit thread, unless a batch is in
        flight, or a failure is being waited out (``retrying``: its time came)."""
        waiting = self.faults.retry_at is not None and not retrying
        if self._pending and not self._in_flight and not waiting:
            self._in_flight, self._pending = self._pending, []
            self._jobs.put(self._in_flight)

    def _commit_loop(self) -> None:
        while (drafts := self._jobs.get()) is not None:
            outcome: BaseException | None = None
            try:
                stored = self.sequencer.commit(drafts)
            except BaseException as exc:  # reported to the loop, which decides
                outcome = exc
                stored = drafts
            self._results.put((stored, outcome))
            self.worker.poke()

    def _outcome(
        self, events: list[Event], outcome: BaseException | None, now: float
    ) -> list[Send]:
        self._in_flight = []
        if outcome is not None:
            if not isinstance(outcome, StorageError):
                raise outcome  # a bug, not a storage fault
            self._pending = events + self._pending  # back in front, in order
            self._failed(outcome, now)
            return []
        self.last_commit_at = now
        self.faults.succeeded(now)
        self.broker.publish(wire.encode(self.node, events))
        if self.on_commit is not None:
            self.on_commit(events)
        return self._applied(events, now)

    def _failed(self, exc: BaseException, now: float) -> None:
        self.faults.failed(exc, now, self.pending)

    def _applied(self, events: Iterable[Event], now: float) -> list[Send]:
        return [e for e in self.hub.replica.apply(events, now) if isinstance(e, Send)]

    # ------------------------------------------------------------------ broker

    def _from_broker(self, kind: str, data: bytes, now: float) -> list[Send]:
        if kind == "events":
            if wire.sent_by(data, self.node):
                return []  # applied when it was committed
            try:
                _, events = wire.decode(data)
            except wire.BadPayload as exc:
                self.hub.stats["drop.cluster_payload"] += 1
                log.debug("a broker message that is not a batch: %s", exc)
                return []
            return self._applied(events, now)
        if kind == "down":
            self.broker_up = False
            log.warning(
                "broker unreachable (%s): serving this node's users; new logins wait; "
                "what other nodes say is read back from the database once it is back",
                data.decode(errors="replace"),
            )
            return []
        log.warning("broker is back: claiming this node's names again and catching up")
        self.broker_up = True
        self._next_beat = self._next_renew = 0.0  # claims, lease, presence at the next tick
        self._written = {}
        self._next_check = 0.0
        return []

    def _housekeeping(self, now: float, wall: float) -> list[Send]:
        """Once a second: this node's lease and presence, a look for dead nodes;
        every third of a lease, the claims of its names."""
        self._next_beat = now + min(BEAT_EVERY, self.lease / 6)
        try:
            if now >= self._next_renew:
                self._next_renew = now + self.lease / 3
                for key in self.broker.renew(self._claimed(), self.lease):
                    user = self.hub.directory.get(key)
                    if user is not None:
                        log.info("%s moved to another node", user.name)
                        self.hub.replica.moved_away(user)
            self._beat(now)
            alive, dead = self.broker.others()
            self.peers = len(alive)
            drafts: list[Effect] = []
            for node in dead:
                gone = self.broker.reap(node, self.lease * 3)
                if gone is not None:
                    log.warning("node %s stopped answering: %d user(s) timed out", node, len(gone))
                    drafts += self.hub.replica.reap(gone, wall)
        except (RedisError, OSError) as exc:
            log.debug("broker housekeeping failed: %s", exc)
            return []
        return self.apply(drafts, now)

    def _claimed(self) -> list[tuple[str, str, str | None]]:
        """(key, name, session id) of every name this node holds."""
        return [
            (u.key, u.name, None if u.session is None else u.session.sid)
            for u in self.hub.directory.users
        ]

    def _beat(self, now: float) -> None:
        changes = self.hub.members.changes
        present: dict[str, str] = {}
        for user in self.hub.directory.users:
            rooms = [c.key for c in self.hub.members.conversations_of(user) if c.is_room]
            present[user.key] = self.broker.presence(user.name, rooms)
        changed = {k: v for k, v in present.items() if self._written.get(k) != v}
        gone = [k for k in self._written if k not in present]
        self.broker.heartbeat(self.lease * NODE_LEASE, changed, gone)
        self._written = present
        self._written_at = changes

    # ------------------------------------------------------------------ repair

    def _stale_heads(self) -> dict[str, int]:
        mine = {c.key: c.last_seq for c in self.hub.conversations.in_memory() if len(c.members)}
        try:
            stored = self.sequencer.heads(list(mine))
        except StorageError as exc:
            log.debug("cannot compare heads: %s", exc)
            return {}
        return {room: mine[room] for room, head in stored.items() if head > mine[room]}

    def _repair(self, room: str, after: int, now: float) -> list[Send]:
        try:
            missing = self.sequencer.since(room, after)
        except StorageError as exc:
            log.debug("cannot repair %s: %s", room, exc)
            return []
        if missing:
            self.hub.stats["cluster.repaired"] += len(missing)
        return self._applied(missing, now)
