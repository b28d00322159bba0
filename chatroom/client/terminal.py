"""What the two processes share on the terminal, and how each writes to it.

The child (network process) prints incoming lines; the parent (keyboard process)
owns readline's input line. To keep the typed text intact:

1. the child takes the shared lock, clears the input line (``CR ESC[K``), prints
   its lines, bumps the shared counter, releases the lock and sends SIGUSR1;
2. the parent's SIGUSR1 handler (Python's readline runs handlers while it waits
   for a key) asks readline to redraw the prompt and the typed text on the fresh
   line below (``rl_forced_update_display``);
3. after Enter the parent erases the echoed input line (the message comes back
   from the server), but only under the lock and only if the child has printed
   nothing since the last redraw; otherwise the echoed line is no longer the one
   above the cursor and is left alone rather than erasing someone's message.

The lock is a POSIX semaphore from multiprocessing's fork context (no resource
tracker process); the counter is 8 bytes of anonymous shared memory. Every wait
on the lock is bounded, so a process killed while holding it cannot hang the
other.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import multiprocessing
import os
import signal
import struct
from collections.abc import Callable, Iterator

LOCK_TIMEOUT = 0.3
CLEAR_LINE = "\r\x1b[K"
UP_AND_CLEAR = "\x1b[{n}A\r\x1b[J"


class SharedTerminal:
    """Created before the fork; both processes use their copy."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("fork")
        self._lock = ctx.Lock()
        self._mem = mmap.mmap(-1, 8)

    @contextlib.contextmanager
    def locked(self) -> Iterator[bool]:
        """Hold the lock (or carry on unlocked after LOCK_TIMEOUT: a process that
        died holding it must not freeze the other). Yields whether it is held."""
        got = self._lock.acquire(timeout=LOCK_TIMEOUT)
        try:
            yield got
        finally:
            if got:
                self._lock.release()

    @property
    def printed(self) -> int:
        value: int = struct.unpack_from("Q", self._mem, 0)[0]
        return value

    def bump(self) -> None:
        struct.pack_into("Q", self._mem, 0, self.printed + 1)


class Screen:
    """The child's side: print lines above the input line, then have it redrawn."""

    def __init__(self, shared: SharedTerminal, fd: int, *, cursor: bool, parent: int) -> None:
        self.shared = shared
        self.fd = fd
        self.cursor = cursor
        self.parent = parent

    def print_lines(self, lines: list[str]) -> None:
        if not lines:
            return
        text = "\n".join(lines) + "\n"
        data = ((CLEAR_LINE if self.cursor else "") + text).encode("utf-8", "replace")
        with self.shared.locked():
            _write_all(self.fd, data)
            self.shared.bump()
        if self.cursor:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.parent, signal.SIGUSR1)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            continue
        except OSError:
            return  # the terminal is gone (hangup): nothing to show it on
        view = view[n:]


def forced_redisplay() -> bool:
    """Ask GNU readline to redraw prompt and line from scratch on the current
    line. False if this Python's readline does not offer it (libedit)."""
    func = _rl_forced_update_display()
    if func is None:
        return False
    func()
    return True


_RL_FUNC: list[Callable[[], object] | None] = []


def _rl_forced_update_display() -> Callable[[], object] | None:
    if not _RL_FUNC:
        func: Callable[[], object] | None = None
        try:
            import readline

            if "GNU readline" in (readline.__doc__ or ""):
                c_func = ctypes.CDLL(readline.__file__).rl_forced_update_display
                c_func.restype = ctypes.c_int
                c_func.argtypes = []
                func = c_func
        except (ImportError, OSError, AttributeError):
            func = None
        _RL_FUNC.append(func)
    return _RL_FUNC[0]
