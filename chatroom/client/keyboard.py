"""The keyboard process (the parent of the fork): readline in, lines to the pipe.

It reads lines with ``input()`` (GNU readline: history, editing, tab completion)
and writes each to the network process as ``L<line>\\n``; ``Q\\n`` asks it to
leave. It never touches the socket. Signals:

* SIGUSR1 — the network process printed above the input line: redraw the prompt
  and the typed text (terminal.py explains the protocol), with the new prompt
  if the current room changed (the network process sends it on the names pipe
  before printing);
* SIGCONT — ``fg`` after Ctrl-Z (both processes were stopped): the shell left
  the terminal echoing whole lines; give readline its mode back and draw the
  prompt and the typed text again;
* SIGCHLD — the network process ended: reap it; if we did not ask it to, say so
  and exit 1;
* SIGINT (Ctrl-C; ``input`` raises KeyboardInterrupt), SIGTERM, SIGHUP, and
  EOF (Ctrl-D) — leave: ``Q``, wait for the network process to say BYE and
  exit, reap it (SIGTERM, then SIGKILL if it hangs), exit 0.

With GNU readline, readline calls our redisplay function after every key: it
draws the line under the shared lock and publishes how many rows the cursor is
below the prompt's first row, so that the network process can clear a line that
wraps over several rows. Python code that runs for readline's C code (that
function, completion, the pre-input hook) must neither raise nor redraw: a
signal that interrupts it is handled a moment later, from a timer signal that
comes while readline waits for a key (``_on_signal``).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Final

from chatroom.client.commands import complete, is_quit
from chatroom.client.terminal import (
    CLEAR_LINE,
    UP_AND_CLEAR,
    GnuReadline,
    SharedTerminal,
    clear_input,
)
from chatroom.client.width import cursor_row, rows_of

#: How long the network process gets to say BYE and exit before SIGTERM (from
#: its last output: it may be showing the messages it waited for).
EXIT_WAIT: Final = 4.0
#: A signal that arrives while readline runs our code is handled this much later.
DEFER: Final = 0.005
#: The signals the keyboard process handles, in the order it handles them.
SIGNALS: Final = (
    signal.SIGCONT,
    signal.SIGUSR1,
    signal.SIGCHLD,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGINT,
    signal.SIGALRM,
)
#: readline's markers around invisible parts of a prompt.
_INVISIBLE = re.compile("\x01[^\x02]*\x02?")


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
        echo_again: Callable[[], None] = lambda: None,
    ) -> None:
        self.child = child
        #: Turns the terminal's echo back on before the first prompt (shell.py
        #: turned it off at the login, so that early typeahead is not echoed).
        self.echo_again = echo_again
        self.cmd_fd = cmd_fd
        self.names_fd = names_fd
        self.shared = shared
        self.prompt = prompt
        self.tty = tty
        self.cursor = cursor
        self.say = say
        self.child_died_text = child_died_text
        self.names: list[str] = []
        self.rooms: list[str] = []
        self._prompt_next: str | None = None
        self._reprompt = False
        self._names_buf = b""
        self._in_input = False
        self._seen = 0
        self._quitting = False
        self._status: int | None = None
        self._matches: list[str] = []
        self._rl: GnuReadline | None = None
        self._deferred: set[int] = set()
        self._raising = False
        self._lock_held = False
        self._columns = 0  # the screen width of the last draw
        self._bottom = 0  # the row of the line's end at the last draw

    # ------------------------------------------------------------------ main loop

    def run(self) -> int:
        try:
            handler = _signal_handler(self)
            for sig in SIGNALS:
                signal.signal(sig, handler)
            os.set_blocking(self.names_fd, False)
            if self.tty:
                self._setup_readline()
            if self._rl is None or not self._rl.show_typing():
                # Without GNU readline's help the terminal must echo (input()
                # reads a cooked line): keys typed before now stay unechoed.
                self.echo_again()
            self._on_signal(signal.SIGCHLD, None)  # it may have died already
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
            self._read_names()
            self._apply_prompt()
            self._seen = self.shared.printed
            if self._rl is not None and self.cursor:
                self._rl.set_redisplay_function(self._display)
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
        if not self._wait_child(EXIT_WAIT, while_printing=True):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.child, signal.SIGTERM)
            if not self._wait_child(1.0):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.child, signal.SIGKILL)
                self._wait_child(None)
        self._close()
        return 0

    def _wait_child(self, timeout: float | None, *, while_printing: bool = False) -> bool:
        """Reap the network process; True once it is reaped. ``while_printing``:
        the timeout counts from its last output (it is showing what it waited for)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        printed = self.shared.printed
        while self._status is None:
            if while_printing and timeout is not None and self.shared.printed != printed:
                printed = self.shared.printed
                deadline = time.monotonic() + timeout
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

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._deferred.add(signum)
        if _called_by_readline(frame):
            # An exception raised here would be lost in readline's C code, and a
            # redraw would cut into its own: come back when it waits for a key.
            signal.setitimer(signal.ITIMER_REAL, DEFER)
            return
        pending, self._deferred = self._deferred, set()
        for sig in SIGNALS:  # the redraw first: the others may raise
            if sig in pending:
                self._handle(sig)

    def _handle(self, signum: int) -> None:
        if signum == signal.SIGCONT:
            self._continued()
        elif signum == signal.SIGUSR1:
            if self._in_input:
                self._redraw()
        elif signum == signal.SIGCHLD:
            self._reap_unexpected()
        elif signum in (signal.SIGTERM, signal.SIGHUP):
            if not self._quitting:
                self._raise(QuitRequested())
        elif signum == signal.SIGINT:
            self._raise(KeyboardInterrupt())

    def _raise(self, exc: BaseException) -> None:
        """Leave ``input()`` with ``exc``. readline cleans up on its way out and
        redraws as it does: with readline's own function, for no Python code may
        run while the exception is pending (``_loop`` puts ours back)."""
        self._raising = True
        if self._rl is not None:
            self._rl.set_redisplay_function(None)
        raise exc

    def _reap_unexpected(self) -> None:
        if self._status is not None or self._quitting:
            return  # _wait_child reaps it
        try:
            pid, status = os.waitpid(self.child, os.WNOHANG)
        except ChildProcessError:
            pid, status = self.child, 0
        if pid == self.child:
            self._status = status
            self._raise(ChildExited())

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """The shared lock, taken once however deeply redraws nest."""
        if self._lock_held:
            yield
            return
        with self.shared.locked():
            self._lock_held = True
            try:
                yield
            finally:
                self._lock_held = False

    # ------------------------------------------------------------------ drawing

    def _display(self) -> None:
        """readline's redisplay function (and our redraw): draw the line, publish
        where the cursor is. If the network process printed since our last draw
        (the input line is gone, the cursor is at the start of a fresh line), the
        screen width changed or the prompt did, draw it from scratch instead."""
        rl = self._rl
        assert rl is not None
        with self._locked():
            printed, columns = self.shared.printed, rl.columns()
            reprompt, self._reprompt = self._reprompt, False
            if printed == self._seen and columns == self._columns and not reprompt:
                rl.redisplay()
                self._publish(rl, columns)
                return
            up = 0
            if printed == self._seen and columns == self._columns:
                up = self.shared.input_rows  # a new prompt: the line is where it was
            elif printed == self._seen:
                # Resized. A terminal that reflows wrapped rows has the cursor on
                # the new layout's row, one that does not (xterm) on the old:
                # the smaller never erases someone's message above the prompt.
                before, after = rl.split_at_cursor()
                now_at = cursor_row(self._prompt_shown() + before, after, columns)
                up = min(self.shared.input_rows, now_at)
            _write_out(clear_input(up))
            self._seen, self._columns = printed, columns
            self.shared.input_rows = 0
            rl.forced_redisplay()  # calls _display again: the first case

    def _publish(self, rl: GnuReadline, columns: int) -> None:
        before, after = rl.split_at_cursor()
        prompt = self._prompt_shown()
        self.shared.input_rows = cursor_row(prompt + before, after, columns)
        self._bottom = rows_of(prompt + before + after, columns) - 1
        self._columns = columns

    def _prompt_shown(self) -> str:
        """readline's prompt as shown (it differs during a history search)."""
        rl = self._rl
        return _INVISIBLE.sub("", rl.display_prompt()) if rl is not None else self.prompt

    def _apply_prompt(self) -> None:
        """Take the prompt the network process sent last (the current room)."""
        if self._prompt_next is None:
            return
        self.prompt, self._prompt_next = self._prompt_next, None
        if self._rl is not None and self._in_input:
            self._rl.set_prompt(self.prompt)
            self._reprompt = True  # the line is drawn again from its first row

    def _redraw(self) -> None:
        """The network process printed: have the prompt and typed text redrawn."""
        self._read_names()
        self._apply_prompt()
        if self._rl is not None and self.cursor:
            self._display()
            return
        self._seen = self.shared.printed
        if self._rl is not None:  # TERM=dumb: the lines went below the typed text
            self._rl.forced_redisplay()
            return
        # Without GNU readline: draw the prompt and the line ourselves (right unless
        # the cursor was moved inside the line).
        import readline

        line = readline.get_line_buffer()
        with self._locked():
            if self.cursor:
                _write_out(CLEAR_LINE)
            _write_out(self.prompt + line)
            if self.cursor:
                self._bottom = rows_of(self.prompt + line, _columns()) - 1
                self.shared.input_rows = self._bottom

    def _continued(self) -> None:
        """Continued after a stop: readline, waiting for a key, does not know that
        the shell had the terminal meanwhile (the first line typed would be echoed
        twice and could not be edited). The cursor is on a fresh row below what
        the shell printed: the prompt and the typed text are drawn there."""
        if self._rl is None or not self._in_input:
            return
        self._rl.prepare_terminal()
        if self.cursor:
            self._seen = -1  # as after the network process printed: from scratch, here
            self._display()
        else:
            self._rl.forced_redisplay()

    # ------------------------------------------------------------------ terminal

    def _pre_input(self) -> None:
        """Readline has shown the prompt: from now on, redraw after the child prints."""
        if self._rl is not None and self._rl.show_typing():
            # readline copied the terminal's (off) echo as it prepared it, and
            # so skipped drawing the prompt: draw it now.
            self._rl.forced_redisplay()
        self._in_input = True
        if self.shared.printed != self._seen:
            self._redraw()  # it printed between our snapshot and the prompt

    def _erase_echo(self, line: str) -> None:
        """Remove the just-entered line from the screen (the server echoes it back as
        an event), unless the network process printed below it meanwhile."""
        if not (self.tty and self.cursor):
            return
        columns = self._rl.columns() if self._rl is not None else _columns()
        with self._locked():
            if self.shared.printed == self._seen:
                _write_out(UP_AND_CLEAR.format(n=rows_of(self.prompt + line, columns)))
            self.shared.input_rows = 0  # the cursor is at the start of an empty row

    def _end_input_line(self) -> None:
        """After Ctrl-C/Ctrl-D/a signal: leave the prompt line tidy (readline left
        the cursor on the line's last row)."""
        if not self.tty:
            return
        if not self.cursor:
            _write_out("\n")
            return
        with self._locked():
            up = self._bottom if self.shared.printed == self._seen else 0
            _write_out(clear_input(up))
            self.shared.input_rows = 0

    def _setup_readline(self) -> None:
        import readline

        readline.set_completer_delims(" \t\n")
        readline.set_completer(self._complete)
        readline.parse_and_bind("tab: complete")
        readline.set_pre_input_hook(self._pre_input)
        self._rl = GnuReadline.load()  # _loop installs _display (with cursor control)

    def _complete(self, text: str, state: int) -> str | None:
        if state == 0:
            self._read_names()
            self._matches = complete(text, self.names + self.rooms)
        return self._matches[state] if state < len(self._matches) else None

    def _read_names(self) -> None:
        """Take the newest names, rooms and prompt the network process sent
        (network.py: one line each, its first byte says which). The prompt is
        applied by ``_apply_prompt``, never from readline's callbacks."""
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
            for raw in complete_lines:
                kind, text = raw[:1], raw[1:].decode("utf-8", "replace")
                if kind == b"N":
                    self.names = [n for n in text.split("\t") if n]
                elif kind == b"R":
                    self.rooms = [n for n in text.split("\t") if n]
                elif kind == b"P":
                    self._prompt_next = text


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _signal_handler(keyboard: Keyboard) -> Callable[[int, FrameType | None], None]:
    """The keyboard process's signal handler. Once a handler has raised to leave
    ``input()``, input() runs the handlers of signals still pending with that
    exception set: then any call would fail (SystemError) and replace it, and
    even returning from a bound method would (CPython checks a method's result,
    not a plain function's). So: a plain function that only reads a flag."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if keyboard._raising:
            return  # leaving: nothing is left to do
        keyboard._on_signal(signum, frame)

    return handler


#: The functions readline's C code calls (its redisplay function, the pre-input
#: hook, the completer), and what they call.
_READLINE_CALLS: Final = frozenset(
    {Keyboard._display.__code__, Keyboard._pre_input.__code__, Keyboard._complete.__code__}
)


def _called_by_readline(frame: FrameType | None) -> bool:
    """Is the code a signal interrupted running for readline's C code? (A flag
    set on entry would be too late: Python runs pending signal handlers as a
    function starts.)"""
    while frame is not None:
        if frame.f_code in _READLINE_CALLS:
            return True
        frame = frame.f_back
    return False


def _columns() -> int:
    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns
    except OSError:
        return 80


def _write_out(text: str) -> None:
    with contextlib.suppress(OSError):
        _write_all(sys.stdout.fileno(), text.encode("utf-8", "replace"))
