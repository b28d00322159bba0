"""What the two processes share on the terminal, and how each writes to it.

The child (network process) prints incoming lines; the parent (keyboard process)
owns readline's input line, which may wrap over several rows. To keep the typed
text intact:

1. the parent publishes, in shared memory, how many rows the cursor is below
   the first row of the prompt: readline calls the parent's redisplay function
   (``rl_redisplay_function``) after every key, and it draws the line under the
   shared lock and then publishes the row (layout by display width: CJK takes
   two columns; readline's screen width, which follows SIGWINCH);
2. the child takes the lock, moves up that many rows and clears to the end of
   the screen (``ESC[nA CR ESC[J``), prints its lines, sets the row to 0, bumps
   the shared counter, releases the lock and sends SIGUSR1;
3. the parent's SIGUSR1 handler (Python's readline runs handlers while it waits
   for a key), or its redisplay function if a key comes first, sees the counter
   moved and has readline redraw the prompt and the typed text from scratch on
   the fresh line below (``rl_forced_update_display``);
4. after Enter the parent erases the echoed input (the message comes back from
   the server), but only under the lock and only if the child has printed
   nothing since the last redraw; otherwise the echoed line is no longer the one
   above the cursor and is left alone rather than erasing someone's message.

The lock is a POSIX semaphore from multiprocessing's fork context (no resource
tracker process); the counter and the row are 16 bytes of anonymous shared
memory. Every wait on the lock is bounded, so a process killed while holding it
cannot hang the other.
"""

from __future__ import annotations

import contextlib
import ctypes
import locale
import mmap
import multiprocessing
import os
import signal
import struct
from collections.abc import Callable, Iterator

LOCK_TIMEOUT = 0.3
CLEAR_LINE = "\r\x1b[K"
UP_AND_CLEAR = "\x1b[{n}A\r\x1b[J"
#: Beyond any real terminal: a garbled row count must not send the cursor far up.
MAX_ROWS = 10_000


def clear_input(rows_up: int) -> str:
    """From the cursor ``rows_up`` rows below the prompt's first row: back to that
    row's start and clear to the end of the screen (``ESC[0A`` would move up one)."""
    up = min(max(0, rows_up), MAX_ROWS)
    return (f"\x1b[{up}A" if up else "") + "\r\x1b[J"


class SharedTerminal:
    """Created before the fork; both processes use their copy."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("fork")
        self._lock = ctx.Lock()
        self._mem = mmap.mmap(-1, 16)

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

    @property
    def input_rows(self) -> int:
        """How many rows the cursor is below the first row of the prompt (0 when
        there is no input line on the screen). Read and written under the lock."""
        value: int = struct.unpack_from("Q", self._mem, 8)[0]
        return value

    @input_rows.setter
    def input_rows(self, rows: int) -> None:
        struct.pack_into("Q", self._mem, 8, min(max(0, rows), MAX_ROWS))


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
        with self.shared.locked():
            if self.cursor:  # the input line, however many rows it wraps over
                text = clear_input(self.shared.input_rows) + text
                self.shared.input_rows = 0
            _write_all(self.fd, text.encode("utf-8", "replace"))
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


class GnuReadline:
    """The bits of GNU readline's C API that Python's module does not offer,
    through ctypes: the redisplay hook, the cursor position in the line, the
    screen width readline lays the line out for, a redraw from scratch, a new
    prompt for the line being read (the current room changed). ``load()``
    is None with libedit (or anything unexpected): the caller falls back."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._redisplay = lib.rl_redisplay
        self._redisplay.restype = None
        self._redisplay.argtypes = []
        self._forced = lib.rl_forced_update_display
        self._forced.restype = ctypes.c_int
        self._forced.argtypes = []
        self._size = lib.rl_get_screen_size
        self._size.restype = None
        self._size.argtypes = [ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)]
        self._hook = ctypes.c_void_p.in_dll(lib, "rl_redisplay_function")
        self._point = ctypes.c_int.in_dll(lib, "rl_point")
        self._buffer = ctypes.c_char_p.in_dll(lib, "rl_line_buffer")
        self._prompt = ctypes.c_char_p.in_dll(lib, "rl_display_prompt")
        self._set_prompt = lib.rl_set_prompt
        self._set_prompt.restype = ctypes.c_int
        self._set_prompt.argtypes = [ctypes.c_char_p]
        self._deprep = lib.rl_deprep_terminal
        self._deprep.restype = None
        self._deprep.argtypes = []
        self._prep = lib.rl_prep_terminal
        self._prep.restype = None
        self._prep.argtypes = [ctypes.c_int]
        try:  # readline's own choice (input-meta); 8-bit input otherwise (UTF-8)
            self._meta: ctypes.c_int | None = ctypes.c_int.in_dll(lib, "_rl_meta_flag")
        except ValueError:
            self._meta = None
        try:  # whether readline shows what is typed (it copies the terminal's ECHO)
            self._echoing: ctypes.c_int | None = ctypes.c_int.in_dll(lib, "_rl_echoing_p")
        except ValueError:
            self._echoing = None
        self._prompt_bytes = b""  # readline copies it; kept anyway
        self._callback: object = None  # keeps the C callback alive
        self._callback_of: Callable[[], None] | None = None
        self._callback_at: int | None = None
        self._encoding = locale.getpreferredencoding(False)

    @classmethod
    def load(cls) -> GnuReadline | None:
        if not _LOADED:
            try:
                import readline

                gnu = "GNU readline" in (readline.__doc__ or "")
                _LOADED.append(cls(ctypes.CDLL(readline.__file__)) if gnu else None)
            except (ImportError, OSError, AttributeError, ValueError):
                _LOADED.append(None)
        return _LOADED[0]

    def set_redisplay_function(self, func: Callable[[], None] | None) -> None:
        """readline calls ``func`` instead of ``rl_redisplay`` to show the line
        (after every key, and for a forced redraw); ``func`` calls ``redisplay``.
        None: readline's own again."""
        if func is None:
            self._hook.value = ctypes.cast(self._redisplay, ctypes.c_void_p).value
            return
        if self._callback_of != func:
            callback = ctypes.CFUNCTYPE(None)(func)
            self._callback, self._callback_of = callback, func
            self._callback_at = ctypes.cast(callback, ctypes.c_void_p).value
        self._hook.value = self._callback_at

    def redisplay(self) -> None:
        """readline's own redisplay: bring the screen up to date with the line."""
        self._redisplay()

    def forced_redisplay(self) -> None:
        """Forget what is on the screen and draw prompt and line on the current row
        (through the redisplay function)."""
        self._forced()

    def prepare_terminal(self) -> None:
        """Put the terminal back in readline's mode (no echo, a key at a time),
        whatever was done to it meanwhile: after Ctrl-Z and ``fg`` the shell has
        left it echoing whole lines. (readline's own SIGTSTP handling is not
        installed while Python's ``input()`` waits for a key.)"""
        self._deprep()  # forget that it was prepared: preparing again is a no-op
        self._prep(1 if self._meta is None else self._meta.value)
        self.show_typing()

    def show_typing(self) -> bool:
        """Make readline show the keys typed although the terminal does not echo
        (shell.py keeps the echo off, so that keys typed while readline is not
        reading are not echoed by the terminal and then again by readline).
        Readline copies the terminal's ECHO each time it prepares it: call this
        after. False where it cannot be done (the caller turns the echo on)."""
        if self._echoing is None:
            return False
        self._echoing.value = 1
        return True

    def columns(self) -> int:
        """The screen width readline lays the line out for (it follows SIGWINCH)."""
        rows, cols = ctypes.c_int(0), ctypes.c_int(0)
        self._size(ctypes.byref(rows), ctypes.byref(cols))
        return max(1, cols.value)

    def display_prompt(self) -> str:
        """The prompt readline shows now (a history search shows its own)."""
        return (self._prompt.value or b"").decode(self._encoding, "surrogateescape")

    def set_prompt(self, prompt: str) -> None:
        """Change the prompt of the line being read (shown at the next redraw)."""
        self._prompt_bytes = prompt.encode(self._encoding, "replace")
        self._set_prompt(self._prompt_bytes)

    def split_at_cursor(self) -> tuple[str, str]:
        """The line's text left and right of the cursor."""
        raw = self._buffer.value or b""
        point = min(max(0, self._point.value), len(raw))
        enc = self._encoding
        return (
            raw[:point].decode(enc, "surrogateescape"),
            raw[point:].decode(enc, "surrogateescape"),
        )


_LOADED: list[GnuReadline | None] = []
