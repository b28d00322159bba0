"""The keyboard process (the parent of the fork): readline in, lines to the pipe.

It reads lines with ``input()`` (GNU readline: history, editing, tab completion)
and writes each to the network process as ``L<line>\\n``; ``Q\\n`` asks it to
leave. It never touches the socket. Signals:

* SIGUSR1 — the network process printed above the input line: redraw the prompt
  and the typed text (terminal.py explains the protocol);
* SIGCHLD — the network process ended: reap it; if we did not ask it to, say so
  and exit 1;
* SIGINT (Ctrl-C; ``input`` raises KeyboardInterrupt), SIGTERM, SIGHUP, and
  EOF (Ctrl-D) — leave: ``Q``, wait for the network process to say BYE and
  exit, reap it (SIGTERM, then SIGKILL if it hangs), exit 0.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Final

from chatroom.client.commands import complete, is_quit
from chatroom.client.terminal import (
    CLEAR_LINE,
    UP_AND_CLEAR,
    SharedTerminal,
    forced_redisplay,
)
from chatroom.client.width import display_width

#: How long the network process gets to say BYE and exit before SIGTERM.
EXIT_WAIT: Final = 4.0


class ChildExited(Exception):
    """The network process ended without being asked to."""


class QuitRequested(Exception):
    """SIGTERM or SIGHUP: leave as if the user had typed /quit."""


class Keyboard:
    def __init__(
        self,
        child: int,
        cmd_fd: int,
        names_fd: int,
        shared: SharedTerminal,
        *,
        prompt: str,
        tty: bool,
        cursor: bool,
        say: Callable[[str], None],
        child_died_text: str,
    ) -> None:
        self.child = child
        self.cmd_fd = cmd_fd
        self.names_fd = names_fd
        self.shared = shared
        self.prompt = prompt
        self.tty = tty
        self.cursor = cursor
        self.say = say
        self.child_died_text = child_died_text
        self.names: list[str] = []
        self._names_buf = b""
        self._in_input = False
        self._seen = 0
        self._quitting = False
        self._status: int | None = None
        self._matches: list[str] = []

    # ------------------------------------------------------------------ main loop

    def run(self) -> int:
        try:
            signal.signal(signal.SIGCHLD, self._on_sigchld)
            signal.signal(signal.SIGUSR1, self._on_redraw)
            signal.signal(signal.SIGTERM, self._on_quit_signal)
            signal.signal(signal.SIGHUP, self._on_quit_signal)
            os.set_blocking(self.names_fd, False)
            if self.tty:
                self._setup_readline()
            self._on_sigchld(signal.SIGCHLD, None)  # it may have died already
            self._loop()
            self._quitting = True
        except ChildExited:
            self._quitting = True
            self._end_input_line()
            self.say(self.child_died_text)
            self._close()
            return 1
        except (QuitRequested, KeyboardInterrupt):
            self._quitting = True
            self._end_input_line()
        return self._shutdown()

    def _loop(self) -> None:
        while True:
            self._seen = self.shared.printed
            try:
                line = input(self.prompt if self.tty else "")
            except EOFError:  # Ctrl-D
                self._end_input_line()
                return
            finally:
                self._in_input = False
            if is_quit(line):
                self._erase_echo(line)
                return
            self._send(line)

    def _send(self, line: str) -> None:
        self._erase_echo(line)
        data = b"L" + line.encode("utf-8", "replace") + b"\n"
        try:
            _write_all(self.cmd_fd, data)
        except BrokenPipeError:
            raise ChildExited() from None

    # ------------------------------------------------------------------ leaving

    def _shutdown(self) -> int:
        """Ask the network process to leave, wait for it, reap it. Exit status 0."""
        self._quitting = True
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not strand it
        with contextlib.suppress(OSError):
            _write_all(self.cmd_fd, b"Q\n")
        if not self._wait_child(EXIT_WAIT):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.child, signal.SIGTERM)
            if not self._wait_child(1.0):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.child, signal.SIGKILL)
                self._wait_child(None)
        self._close()
        return 0

    def _wait_child(self, timeout: float | None) -> bool:
        """Reap the network process; True once it is reaped."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._status is None:
            try:
                pid, status = os.waitpid(self.child, 0 if deadline is None else os.WNOHANG)
            except ChildProcessError:
                pid, status = self.child, 0  # already reaped
            except InterruptedError:
                continue
            if pid == self.child:
                self._status = status
                break
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def _close(self) -> None:
        for fd in (self.cmd_fd, self.names_fd):
            with contextlib.suppress(OSError):
                os.close(fd)

    # ------------------------------------------------------------------ signals

    def _on_sigchld(self, signum: int, frame: object) -> None:
        if self._status is not None or self._quitting:
            return  # _wait_child reaps it
        try:
            pid, status = os.waitpid(self.child, os.WNOHANG)
        except ChildProcessError:
            pid, status = self.child, 0
        if pid == self.child:
            self._status = status
            raise ChildExited()

    def _on_quit_signal(self, signum: int, frame: object) -> None:
        if not self._quitting:
            raise QuitRequested()

    def _on_redraw(self, signum: int, frame: object) -> None:
        if self._in_input:
            self._redraw()

    def _redraw(self) -> None:
        self._seen = self.shared.printed
        self._read_names()
        with self.shared.locked():  # not in the middle of the child's next lines
            if self.cursor:
                # Normally a no-op (the child left the cursor at the start of an
                # empty line); if the prompt was drawn after the child printed,
                # this keeps it from being drawn twice.
                _write_out(CLEAR_LINE)
            if not forced_redisplay():
                import readline

                _write_out(self.prompt + readline.get_line_buffer())

    # ------------------------------------------------------------------ terminal

    def _pre_input(self) -> None:
        """Readline has shown the prompt: from now on, redraw after the child prints."""
        self._in_input = True
        if self.shared.printed != self._seen:
            self._redraw()  # it printed between our snapshot and the prompt

    def _erase_echo(self, line: str) -> None:
        """Remove the just-entered line from the screen (the server echoes it back as
        an event), unless the network process printed below it meanwhile."""
        if not (self.tty and self.cursor):
            return
        columns = os.get_terminal_size(sys.stdout.fileno()).columns if self.tty else 80
        width = display_width(self.prompt + line)
        rows = max(1, -(-width // max(1, columns)))
        with self.shared.locked():
            if self.shared.printed == self._seen:
                _write_out(UP_AND_CLEAR.format(n=rows))

    def _end_input_line(self) -> None:
        """After Ctrl-C/Ctrl-D/a signal: leave the prompt line tidy."""
        if self.tty:
            _write_out(CLEAR_LINE if self.cursor else "\n")

    def _setup_readline(self) -> None:
        import readline

        readline.set_completer_delims(" \t\n")
        readline.set_completer(self._complete)
        readline.parse_and_bind("tab: complete")
        readline.set_pre_input_hook(self._pre_input)

    def _complete(self, text: str, state: int) -> str | None:
        if state == 0:
            self._read_names()
            self._matches = complete(text, self.names)
        return self._matches[state] if state < len(self._matches) else None

    def _read_names(self) -> None:
        """Take the newest name list the network process sent, if any."""
        while True:
            try:
                chunk = os.read(self.names_fd, 65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                return
            if not chunk:
                break
            self._names_buf += chunk
        if b"\n" in self._names_buf:
            *complete_lines, self._names_buf = self._names_buf.split(b"\n")
            last = complete_lines[-1].decode("utf-8", "replace")
            self.names = [n for n in last.split("\t") if n]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_out(text: str) -> None:
    with contextlib.suppress(OSError):
        _write_all(sys.stdout.fileno(), text.encode("utf-8", "replace"))
