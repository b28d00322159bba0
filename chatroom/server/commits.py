"""Group commit, and the promise it keeps: nothing is shown before it is stored.

The loop hands every batch's effects to ``Committer.apply``: the ``Store``
effects are committed in order (one transaction per batch), and each ``Send``
is released only once the newest event it shows (``Send.reveals``) is
committed; a send that shows no event goes at once.

A failed commit (disk full, a lock held by another process past the busy
timeout, an I/O error, a read-only file) does not take the server down: the
events stay pending, in order, and are retried with exponential back-off
(``RETRY_MIN`` doubling to ``RETRY_MAX``); the sends that show them wait with
them. The core is told the database cannot be written (``StorageState``), so it
refuses what would only pile up (docs/architecture.md, "Storage faults"). The
cause is logged once when the fault starts and once when it ends, never per
datagram.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable
from typing import Final, Protocol

from chatroom.events import Event
from chatroom.server.effects import Effect, Send, Store
from chatroom.server.storage_state import UNAVAILABLE, StorageState

log = logging.getLogger("chatroom.server")

RETRY_MIN: Final = 0.1
RETRY_MAX: Final = 5.0
#: How long a retry waits for another process's lock: short, since the loop
#: waits with it (the first, failing commit waited the database's full timeout).
RETRY_LOCK_WAIT: Final = 0.05


class StorageFailure(Exception):
    """What a sink raises when a batch could not be committed (it rolled back)."""


class EventSink(Protocol):
    """Where the server commits events (storage.store.EventStore, or a test double).
    ``write_batch`` stores all of ``events`` or none, and raises on failure."""

    def write_batch(self, events: Iterable[Event]) -> None: ...


class Committer:
    def __init__(
        self,
        sink: EventSink,
        state: StorageState,
        errors: tuple[type[Exception], ...] = (StorageFailure,),
        lock_wait: Callable[[float | None], None] | None = None,
        on_commit: Callable[[list[Event]], None] | None = None,
    ) -> None:
        self.sink = sink
        #: Told each batch once it is committed (the server's console log).
        self._on_commit = on_commit
        self._lock_wait = lock_wait
        self.state = state
        self._errors = errors
        self._pending: list[Event] = []
        self._held: deque[Send] = deque()
        self._retry_at: float | None = None
        self._backoff = RETRY_MIN
        self._failed_at = 0.0
        #: The last error's text (for the operator: status, logs).
        self.last_error = ""

    @property
    def retry_at(self) -> float | None:
        """When the next retry of a failed commit is due (None: nothing failed)."""
        return self._retry_at

    @property
    def pending(self) -> int:
        """Events waiting for a commit."""
        return len(self._pending)

    def apply(self, effects: list[Effect], now: float) -> list[Send]:
        """Commit the batch's events (unless a fault is being waited out), and
        return the sends that may go now, oldest first."""
        stores = [e.event for e in effects if isinstance(e, Store)]
        if stores:
            self._pending += stores
            if self._retry_at is None:
                self._commit(now)
        ready = self._release()
        committed = self.state.committed
        for effect in effects:
            if isinstance(effect, Send):
                if effect.reveals <= committed:
                    ready.append(effect)
                else:
                    self._held.append(effect)
        return ready

    def retry(self, now: float) -> list[Send]:
        """Retry a failed commit if it is due; the sends it releases."""
        if self._retry_at is None or now < self._retry_at:
            return []
        self._commit(now)
        return self._release()

    def retry_now(self, now: float) -> list[Send]:
        """Retry a failed commit at once (a last try before stopping)."""
        if self._retry_at is not None:
            self._retry_at = now
        return self.retry(now)

    def _commit(self, now: float) -> None:
        try:
            self.sink.write_batch(self._pending)
        except self._errors as exc:
            self.last_error = str(exc)
            if self._retry_at is None:
                log.error(
                    "%s: %s; %d event(s) wait and are retried (messages are refused meanwhile)",
                    UNAVAILABLE,
                    exc,
                    len(self._pending),
                )
                self.state.writable = False
                self._failed_at = now
                self._backoff = RETRY_MIN
                if self._lock_wait is not None:
                    self._lock_wait(RETRY_LOCK_WAIT)
            else:
                self._backoff = min(self._backoff * 2, RETRY_MAX)
            self._retry_at = now + self._backoff
            return
        self.state.committed = self._pending[-1].id
        done, self._pending = self._pending, []
        if self._on_commit is not None:
            self._on_commit(done)
        if self._retry_at is not None:
            log.warning("storage works again after %.1f s; serving as usual", now - self._failed_at)
            self.state.writable = True
            self._retry_at = None
            self.last_error = ""
            if self._lock_wait is not None:
                self._lock_wait(None)

    def _release(self) -> list[Send]:
        out: list[Send] = []
        held, committed = self._held, self.state.committed
        while held and held[0].reveals <= committed:
            out.append(held.popleft())
        return out
