"""The server's database writer, in a process of its own.

    python -m storage.writer URL    # started by WriterProcess; jobs on stdin, outcomes on stdout

Why a process and not a thread: the server's loop thread is busy with Python
work between its system calls, and a commit on a second thread of the same
interpreter has to take the GIL back after every SQLite call. Measured under
the many-small-rooms load (bench/test_bench_smallrooms.py), a batch of 256 rows
took ~10 ms on the thread against ~2.4 ms alone, and the loop waited for its
sends meanwhile; in a process of its own the commit has a core to itself
(docs/architecture.md, "The writer process"). Small batches stay on the
thread (``SplitWriter``).

The loop still owns everything the commit decides (``Committer`` in
chatroom/server/commits.py): this process only writes what it is given, in
order, one batch at a time, and reports each outcome. What a batch shows is
sent only once its outcome says it is committed, so "a client was shown it"
still implies "it is on disk", also when the server is killed mid-batch.

The pipes carry little: a job is a header (``_JOB``: the payload's length, a
lock-wait change) and the batch's rows as ``marshal`` data (tuples of ints,
strings and None: ``marshal`` is the fastest codec the standard library has for
them); an outcome is a status byte and a message. The writer exits when its
stdin closes, so a server that dies, even by SIGKILL, leaves no writer behind.

The server launches its writer before it opens (and migrates) the database,
so that the two starts overlap: a chatroom serve took ~0.82 s to its banner
with the writer launched after, ~0.66-0.69 s with it launched before. Until
it reads ``GO`` the writer touches nothing (SQLite would create an empty
file); its first outcome then says whether it could open the database.
"""

from __future__ import annotations

import contextlib
import marshal
import select
import signal
import struct
import subprocess
import sys
import traceback
from collections.abc import Iterable
from typing import IO, Final, Protocol

from chatroom.events import Event
from storage.errors import StorageError
from storage.store import EventStore, row_from_event

#: A job's header: payload bytes, whether to change the lock wait, the new wait (s; <0: None).
_JOB: Final = struct.Struct("=I?d")
#: An outcome's header: status, message bytes.
_OUTCOME: Final = struct.Struct("=BI")
OK: Final = 0
FAILED: Final = 1  # a StorageError: the batch rolled back; the loop retries it
BROKEN: Final = 2  # anything else: a bug, raised in the loop as inline mode would
#: Batches smaller than this are committed on the server's commit thread
#: (``SplitWriter`` says why). Measured: single lines and make test's quick
#: fan-out rounds (batches of 40) did better on the thread (0.22-0.36x the bare
#: relay against 0.17-0.28x at N = 10), many small rooms (batches of 256) in the
#: process (+12-32%); 32 first, then 64 once the batches of 40 were seen.
SMALL_BATCH: Final = 64
#: How long a new writer may take to open the database (imports included).
READY_TIMEOUT: Final = 30.0
#: What the server sends a launched writer once the database is ready for it
#: (migrated): only then may the writer open it.
GO: Final = b"G"


class WriterProcess:
    """An event sink (``write_batch``, ``set_lock_wait``) that writes through
    ``python -m storage.writer``. It blocks for each outcome, so it is meant to
    be the sink of the server's commit thread (chatroom/server/commits.py,
    ``CommitThread``): that thread waits here, in a system call, without the
    GIL, while the writer process does the work on a core of its own.

    A writer that dies (killed, out of memory) fails the batch it had with a
    ``StorageError``, which the server retries with back-off as any failed
    commit; the retry starts a new writer."""

    def __init__(self, url: str, *, pass_fds: tuple[int, ...] = ()) -> None:
        """``pass_fds``: descriptors the writer holds while it runs (the server's
        writer lock: storage/writer_lock.py, ``inheritable``)."""
        self._url = url
        self._pass_fds = pass_fds
        self._proc: subprocess.Popen[bytes] | None = None
        #: The lock wait the writer should use (None: the engine's default), and
        #: whether the writer has it (a new writer has the default).
        self._lock_wait: float | None = None
        self._told = True
        #: Whether the running writer has the database open (``launch`` does not).
        self._ready = False

    def launch(self) -> None:
        """Start the writer's interpreter now, without letting it open the
        database: its start (~0.3 s, most of it importing its libraries) then
        overlaps the server's own (opening and migrating the database), and
        ``start`` only has to wait for the rest."""
        if self._proc is None:
            self._proc = self._popen()
            self._ready = False

    def start(self) -> None:
        """Let the writer open the database (launching it first if need be)
        and wait until it has, so that the first batches do not wait for it;
        StorageError if it cannot."""
        self._writer()

    def _writer(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            self._stop()
            self._proc = self._popen()
            self._ready = False
            self._told = self._lock_wait is None
        if not self._ready:
            self._open(self._proc)
            self._ready = True
        return self._proc

    def _popen(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "storage.writer", self._url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            pass_fds=self._pass_fds,
            # Not in the terminal's process group: Ctrl-C is the server's to
            # handle; the writer stops when the server closes its stdin.
            start_new_session=True,
        )

    def _open(self, proc: subprocess.Popen[bytes]) -> None:
        """Tell a launched writer to open the database; return once it says
        it is ready (its first outcome)."""
        assert proc.stdin is not None and proc.stdout is not None
        with contextlib.suppress(OSError):  # it died: its outcome says how
            proc.stdin.write(GO)
            proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], READY_TIMEOUT)
        head = _read_exactly(proc.stdout, _OUTCOME.size) if ready else None
        if head is not None:
            status, size = _OUTCOME.unpack(head)
            message = (_read_exactly(proc.stdout, size) or b"").decode(errors="replace")
            if status == OK:
                return
        elif ready:
            message = f"it exited (exit status {proc.wait(5.0)})"
        else:
            message = f"no answer within {READY_TIMEOUT:g} s"
        self._proc = proc
        self._stop(timeout=1.0)
        raise StorageError(f"the database writer did not start: {message}")

    def set_lock_wait(self, seconds: float | None) -> None:
        """Applied by the writer before the next batch (and kept across a restart)."""
        self._told = self._told and seconds == self._lock_wait
        self._lock_wait = seconds

    def write_batch(self, events: Iterable[Event]) -> None:
        payload = marshal.dumps([row_from_event(e) for e in events])
        proc = self._writer()
        assert proc.stdin is not None and proc.stdout is not None
        change = not self._told
        wait = -1.0 if self._lock_wait is None else self._lock_wait
        try:
            proc.stdin.write(_JOB.pack(len(payload), change, wait) + payload)
            proc.stdin.flush()
            head = _read_exactly(proc.stdout, _OUTCOME.size)
            if head is None:
                raise OSError("no answer")
            status, size = _OUTCOME.unpack(head)
            message = (_read_exactly(proc.stdout, size) or b"").decode(errors="replace")
        except OSError as exc:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(1.0)  # it may be exiting: say how it ended
            code = proc.poll()
            why = f"exit status {code}" if code is not None else str(exc)
            raise StorageError(f"the database writer stopped ({why})") from exc
        self._told = True
        if status == FAILED:
            raise StorageError(message)
        if status != OK:
            raise RuntimeError(f"the database writer failed:\n{message}")

    def close(self, timeout: float = 5.0) -> None:
        """Let the writer finish, then stop it."""
        self._stop(timeout)

    def _stop(self, timeout: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


class SplitWriter:
    """The server's commit sink: a batch of fewer than ``SMALL_BATCH`` events
    is written on the calling thread (the commit thread) through ``store``,
    a larger one in the writer process.

    Why both: handing a batch to another process costs a few hundred
    microseconds of CPU however small it is (pipes, two wake-ups, a process
    whose caches went cold since its last batch), which a quiet server pays
    for every line: one message to 300 members cost 5.4-5.9 µs of CPU per
    recipient with the commit on the thread, 5.7-6.8 with it in the process.
    A large batch is where the thread's commit fights the busy loop for the
    GIL and the process wins (many small rooms: +32% deliveries/s). One batch
    is in flight at a time (the Committer waits for each outcome), so the
    two never write at once, and the order of the commits is the order of
    the batches."""

    def __init__(self, store: EventSink, writer: WriterProcess, small: int | None = None) -> None:
        self._store = store
        self._writer = writer
        self._small = SMALL_BATCH if small is None else small

    def write_batch(self, events: Iterable[Event]) -> None:
        batch = events if isinstance(events, list) else list(events)
        if len(batch) < self._small:
            self._store.write_batch(batch)
        else:
            self._writer.write_batch(batch)

    def set_lock_wait(self, seconds: float | None) -> None:
        self._store.set_lock_wait(seconds)
        self._writer.set_lock_wait(seconds)

    def prepare(self) -> None:
        """Called on the commit thread as it starts: open the store's writer
        connection there, so that the first small batch (a quiet server's
        first line) does not pay for it."""
        self._store.open_writer()


class EventSink(Protocol):
    """What ``SplitWriter`` writes small batches through (storage.store.EventStore)."""

    def write_batch(self, events: Iterable[Event]) -> None: ...
    def set_lock_wait(self, seconds: float | None) -> None: ...
    def open_writer(self) -> None: ...


# ---------------------------------------------------------------------------- the writer


def _read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    data = stream.read(size)
    return data if len(data) == size else None


def _reply(out: IO[bytes], status: int, message: str = "") -> None:
    data = message.encode()
    out.write(_OUTCOME.pack(status, len(data)) + data)
    out.flush()


def serve_jobs(url: str, jobs: IO[bytes], out: IO[bytes]) -> None:
    """Write each job's rows to ``url`` and report, until ``jobs`` ends."""
    if jobs.read(len(GO)) != GO:
        return  # the server stopped before the database was ready
    store = EventStore.for_writing(url)
    try:
        try:
            store.open_writer()  # a database it cannot open fails here
        except StorageError as exc:
            _reply(out, FAILED, str(exc))
            return
        _reply(out, OK)  # ready: the server starts serving once it reads this
        while (head := _read_exactly(jobs, _JOB.size)) is not None:
            size, change_wait, wait = _JOB.unpack(head)
            payload = _read_exactly(jobs, size)
            if payload is None:
                return
            try:
                if change_wait:
                    store.set_lock_wait(None if wait < 0 else wait)
                store.write_rows(marshal.loads(payload))
            except StorageError as exc:
                _reply(out, FAILED, str(exc))
            except Exception:
                _reply(out, BROKEN, traceback.format_exc())
            else:
                _reply(out, OK)
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m storage.writer URL (started by chatroom serve)", file=sys.stderr)
        return 2
    # The server decides when to stop: it closes our stdin (run by hand, Ctrl-D).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(BrokenPipeError):  # the server is gone
        serve_jobs(args[0], sys.stdin.buffer, sys.stdout.buffer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
