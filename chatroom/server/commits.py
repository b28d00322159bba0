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

Pipelining (``CommitThread``): the commit of batch k runs on a second thread
while the loop receives and handles batch k+1; its sends wait for the commit
as always. By default (``chatroom serve --commit process``) the thread hands
batches of 64 events or more to the writer process of storage/writer.py and
only waits in a read: the SQLite work runs on another core and never competes
with the loop for the GIL, which a commit done on the thread itself does after
every SQLite call; smaller batches it writes itself (storage/writer.py,
``SplitWriter``, has the measurements). All of the Committer's state
still changes on the loop's thread: the worker only writes and reports the
outcome through a pipe the loop selects on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Final, Literal, Protocol

from chatroom.events import Event
from chatroom.server.effects import Effect, Send, Store
from chatroom.server.storage_state import Faults, StorageState

log = logging.getLogger("chatroom.server")

#: Where batches are committed (``chatroom serve --commit``): a writer process
#: (storage/writer.py), a second thread over the store, or inline in the loop.
CommitMode = Literal["process", "thread", "inline"]
COMMIT_MODES: Final[tuple[CommitMode, ...]] = ("process", "thread", "inline")

#: How long a retry waits for another process's lock: short, since the loop
#: waits with it (the first, failing commit waited the database's full timeout).
RETRY_LOCK_WAIT: Final = 0.05


class StorageFailure(Exception):
    """What a sink raises when a batch could not be committed (it rolled back)."""


class EventSink(Protocol):
    """Where the server commits events (storage.store.EventStore, or a test double).
    ``write_batch`` stores all of ``events`` or none, and raises on failure."""

    def write_batch(self, events: Iterable[Event]) -> None: ...


class Commits(Protocol):
    """What the loop needs of whoever stores its events and releases its
    sends: the single node's Committer (commits.py) or a cluster node."""

    @property
    def retry_at(self) -> float | None: ...
    @property
    def pending(self) -> int: ...
    @property
    def worker(self) -> Selectable | None: ...

    @property
    def last_error(self) -> str: ...

    last_commit_at: float | None
    announces_shutdown: bool

    def apply(self, effects: list[Effect], now: float) -> list[Send]: ...
    def poll(self, now: float) -> list[Send]: ...
    def retry(self, now: float) -> list[Send]: ...
    def retry_now(self, now: float, timeout: float = 5.0) -> list[Send]: ...
    def tick(self, now: float, wall: float) -> list[Send]: ...
    def cluster_status(self) -> dict[str, object] | None: ...


class Selectable(Protocol):
    def fileno(self) -> int: ...
    def close(self) -> None: ...


class CommitThread:
    """Writes batches on a thread of its own; reports each outcome (None, or
    the exception) in order, and wakes the loop through ``fileno()``."""

    def __init__(self, sink: EventSink) -> None:
        self._sink = sink
        self._jobs: queue.SimpleQueue[tuple[list[Event], float | None, bool] | None] = (
            queue.SimpleQueue()
        )
        self._results: queue.SimpleQueue[BaseException | None] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._thread = threading.Thread(target=self._run, name="chatroom-commit", daemon=True)
        self._thread.start()

    def fileno(self) -> int:
        return self._wake_r

    def submit(
        self,
        events: list[Event],
        lock_wait: float | None = None,
        set_lock_wait: bool = False,
    ) -> None:
        self._jobs.put((events, lock_wait, set_lock_wait))

    def results(self) -> list[BaseException | None]:
        """The outcomes reported since the last call, in submission order."""
        with contextlib.suppress(BlockingIOError):
            os.read(self._wake_r, 4096)
        out: list[BaseException | None] = []
        while True:
            try:
                out.append(self._results.get_nowait())
            except queue.Empty:
                return out

    def wait(self, timeout: float) -> BaseException | bool | None:
        """Block for the next outcome (False: none within ``timeout``)."""
        try:
            return self._results.get(timeout=timeout)
        except queue.Empty:
            return False

    def close(self, timeout: float = 5.0) -> None:
        self._jobs.put(None)
        self._thread.join(timeout)
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _run(self) -> None:
        set_wait = getattr(self._sink, "set_lock_wait", None)
        prepare = getattr(self._sink, "prepare", None)
        if prepare is not None:
            with contextlib.suppress(Exception):  # the first write reports it
                prepare()  # on this thread: the connection it opens lives here
        while (job := self._jobs.get()) is not None:
            events, lock_wait, change_wait = job
            outcome: BaseException | None = None
            try:
                if change_wait and set_wait is not None:
                    set_wait(lock_wait)  # on this thread: the writer connection lives here
                self._sink.write_batch(events)
            except BaseException as exc:  # reported to the loop, which decides
                outcome = exc
            self._results.put(outcome)
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"c")


class Committer:
    #: A single node stopping is the chat stopping: everyone is told, stored.
    announces_shutdown = True

    def __init__(
        self,
        sink: EventSink,
        state: StorageState,
        errors: tuple[type[Exception], ...] = (StorageFailure,),
        lock_wait: Callable[[float | None], None] | None = None,
        on_commit: Callable[[list[Event]], None] | None = None,
        worker: CommitThread | None = None,
    ) -> None:
        self.sink = sink
        #: Pipelined commits (None: each batch is committed inline).
        self.worker = worker
        #: The batch the worker is writing (pipelined mode).
        self._in_flight: list[Event] = []
        #: A lock-wait change for the worker to make before its next write.
        self._next_wait: tuple[float | None] | None = None
        #: Told each batch once it is committed (the server's console log).
        self._on_commit = on_commit
        self._lock_wait = lock_wait
        self.state = state
        self._errors = errors
        self._pending: list[Event] = []
        self._held: deque[Send] = deque()
        self.faults = Faults(state)
        #: When the last commit succeeded (the loop's clock; None: none yet).
        self.last_commit_at: float | None = None

    @property
    def retry_at(self) -> float | None:
        """When the next retry of a failed commit is due (None: nothing failed)."""
        return self.faults.retry_at

    @property
    def last_error(self) -> str:
        return self.faults.last_error

    @property
    def pending(self) -> int:
        """Events waiting for a commit."""
        return len(self._pending) + len(self._in_flight)

    def apply(self, effects: list[Effect], now: float) -> list[Send]:
        """Commit the batch's events (unless a fault is being waited out), and
        return the sends that may go now, oldest first."""
        stores = [e.event for e in effects if isinstance(e, Store)]
        if stores:
            self._pending += stores
            if self.faults.retry_at is None and not self._in_flight:
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

    def tick(self, now: float, wall: float) -> list[Send]:
        """Nothing to do on the loop's timer (a cluster node has leases)."""
        return []

    def cluster_status(self) -> dict[str, object] | None:
        """None: a single node."""
        return None

    def retry(self, now: float) -> list[Send]:
        """Retry a failed commit if it is due; the sends it releases."""
        if self.faults.retry_at is None or now < self.faults.retry_at or self._in_flight:
            return []
        self._commit(now)
        return self._release()

    def poll(self, now: float) -> list[Send]:
        """Pipelined mode: take the worker's outcomes (the loop calls this when
        ``worker.fileno()`` is readable); the sends they release."""
        if self.worker is None:
            return []
        for outcome in self.worker.results():
            self._outcome(outcome, now)
        if self._pending and not self._in_flight and self.faults.retry_at is None:
            self._commit(now)  # what gathered meanwhile: the next group commit
        return self._release()

    def retry_now(self, now: float, timeout: float = 5.0) -> list[Send]:
        """A last try before stopping: a failed commit at once; in pipelined
        mode, wait (up to ``timeout``) until everything pending is written."""
        if self.worker is not None:
            out: list[Send] = []
            if self.faults.retry_at is not None:
                self.faults.retry_at = now
                out += self.retry(now)
            elif self._pending and not self._in_flight:
                self._commit(now)
            while self._in_flight:
                outcome = self.worker.wait(timeout)
                if outcome is False:
                    break
                self._outcome(outcome, now)  # type: ignore[arg-type]
                if self._pending and not self._in_flight and self.faults.retry_at is None:
                    self._commit(now)
            return out + self._release()
        if self.faults.retry_at is not None:
            self.faults.retry_at = now
        return self.retry(now)

    def _commit(self, now: float) -> None:
        if self.worker is not None:
            self._in_flight, self._pending = self._pending, []
            change = self._next_wait
            self._next_wait = None
            if change is None:
                self.worker.submit(self._in_flight)
            else:
                self.worker.submit(self._in_flight, change[0], set_lock_wait=True)
            return
        try:
            self.sink.write_batch(self._pending)
        except self._errors as exc:
            self._failed(exc, now)
            return
        self._done(self._pending, now)
        self._pending = []

    def _outcome(self, outcome: BaseException | None, now: float) -> None:
        batch, self._in_flight = self._in_flight, []
        if outcome is None:
            self._done(batch, now)
        elif isinstance(outcome, self._errors):
            self._pending = batch + self._pending  # back in front, in order
            self._failed(outcome, now)
        else:
            raise outcome  # not a storage fault: a bug, as inline mode would raise

    def _set_lock_wait(self, seconds: float | None) -> None:
        if self.worker is not None:
            self._next_wait = (seconds,)
        elif self._lock_wait is not None:
            self._lock_wait(seconds)

    def _failed(self, exc: BaseException, now: float) -> None:
        if self.faults.failed(exc, now, len(self._pending)):
            self._set_lock_wait(RETRY_LOCK_WAIT)

    def _done(self, batch: list[Event], now: float) -> None:
        self.state.committed = batch[-1].id
        self.last_commit_at = now
        if self._on_commit is not None:
            self._on_commit(batch)
        if self.faults.succeeded(now):
            self._set_lock_wait(None)

    def _release(self) -> list[Send]:
        out: list[Send] = []
        held, committed = self._held, self.state.committed
        while held and held[0].reveals <= committed:
            out.append(held.popleft())
        return out
