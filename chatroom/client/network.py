"""The network process (the child of the fork): socket, session, screen.

It multiplexes three inputs with a selector: datagrams from the server, lines
from the keyboard process (a pipe), and the session's timers. What the session
returns is applied here: datagrams are sent, display outputs rendered and
printed (chatroom/client/terminal.py keeps the input line intact); what the
keyboard process needs is passed to it on a second pipe, one line each, the
first byte saying what: ``N`` the names of the people online and ``R`` the rooms
(tab-separated, for tab completion), ``P`` the prompt (the current room
changed). It is written before the lines that go with it are printed, so the
redraw their SIGUSR1 asks for shows the new prompt.

It exits, and is then reaped by the keyboard process, when:

* the keyboard process asks it to quit (``Q`` on the pipe): BYE, then exit 0;
* the pipe reaches end-of-file without ``Q``, or SIGTERM/SIGHUP arrives (the
  keyboard process died: ``prctl(PR_SET_PDEATHSIG, SIGTERM)`` backs up the pipe):
  one BYE attempt, and out within ``ORPHAN_GRACE`` seconds, well under 1 s.

Ctrl-C reaches both processes (one process group); this one ignores SIGINT and
lets the keyboard process decide.
"""

from __future__ import annotations

import ctypes
import os
import selectors
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from chatroom.client.effects import (
    CurrentRoom,
    Finished,
    LoggedIn,
    LoginRefused,
    NoAnswer,
    OnlineChanged,
    Output,
    RoomsChanged,
    Transmit,
    UseServer,
)
from chatroom.client.link import Link
from chatroom.client.render import Renderer
from chatroom.client.session import ClientSession
from chatroom.client.terminal import Screen

#: How long an orphaned network process may spend saying BYE.
ORPHAN_GRACE: Final = 0.5
#: Upper bound on one select() wait, so signals are looked at regularly.
MAX_WAIT: Final = 0.5
PR_SET_PDEATHSIG: Final = 1
#: Most bytes of names sent to the keyboard process at once (atomic pipe write).
NAMES_MAX: Final = 4000
#: What a line on the pipe to the keyboard process carries (its first byte).
NAMES: Final = b"N"
ROOMS: Final = b"R"
PROMPT: Final = b"P"


def set_parent_death_signal(sig: int) -> bool:
    """Linux: have the kernel send ``sig`` when our parent dies. False elsewhere."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


@dataclass
class NetworkProcess:
    link: Link
    session: ClientSession
    renderer: Renderer
    screen: Screen
    cmd_fd: int
    names_fd: int
    parent: int
    _cmd_buf: bytes = b""
    _orphaned: bool = False
    _quit_asked: bool = False
    _finished: bool = False
    _hard_deadline: float | None = None
    #: Messages for the keyboard process not written yet, by kind (the newest).
    _pending: dict[bytes, bytes] = field(default_factory=dict)
    _lines: list[str] = field(default_factory=list)

    def run(self, first: Sequence[Output] = ()) -> int:
        """``first``: what the session said right after logging in (before the fork)."""
        self._install_signals()
        set_parent_death_signal(signal.SIGTERM)
        if os.getppid() != self.parent:  # it died before prctl took effect
            self._orphaned = True
        self.link.sock.setblocking(False)
        os.set_blocking(self.names_fd, False)
        self._apply(list(first))
        self._flush()
        with selectors.DefaultSelector() as sel:
            sel.register(self.link.sock, selectors.EVENT_READ, "sock")
            sel.register(self.cmd_fd, selectors.EVENT_READ, "cmd")
            while not self._finished:
                now = time.monotonic()
                if self._orphaned and self._hard_deadline is None:
                    # BYE at once: waiting for our lines and the replay to be shown
                    # (a quit's flush) could outlast the grace, and the others would
                    # then learn of the leave only at the idle timeout.
                    self._hard_deadline = now + ORPHAN_GRACE
                    self._apply(self.session.quit(now, wait=False))
                if self._hard_deadline is not None and now >= self._hard_deadline:
                    break
                for key, _ in sel.select(self._wait(now)):
                    if key.data == "sock":
                        self._read_socket()
                    elif not self._read_commands():
                        sel.unregister(self.cmd_fd)
                self._apply(self.session.tick(time.monotonic(), time.time()))
                self._flush()
        self._flush()
        return 0

    # ------------------------------------------------------------------ plumbing

    def _install_signals(self) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_terminate)

    def _on_terminate(self, signum: int, frame: object) -> None:
        self._orphaned = True

    def _wait(self, now: float) -> float:
        limits = [MAX_WAIT]
        deadline = self.session.deadline()
        if deadline is not None:
            limits.append(deadline - now)
        if self._hard_deadline is not None:
            limits.append(self._hard_deadline - now)
        return max(0.0, min(limits))

    def _read_socket(self) -> None:
        for _ in range(256):  # drain what is ready, then let timers and keys run
            try:
                data = self.link.recv()
            except OSError:
                continue  # the server is away: the session's timers deal with it
            if data is None:
                return
            self._apply(self.session.receive(data, time.monotonic()))

    def _read_commands(self) -> bool:
        """Lines from the keyboard process. False at end-of-file."""
        try:
            chunk = os.read(self.cmd_fd, 65536)
        except InterruptedError:
            return True
        except OSError:
            chunk = b""
        if not chunk:
            if not self._quit_asked:
                self._orphaned = True  # the keyboard process is gone
            return False
        self._cmd_buf += chunk
        while b"\n" in self._cmd_buf:
            raw, self._cmd_buf = self._cmd_buf.split(b"\n", 1)
            now = time.monotonic()
            if raw == b"Q":
                self._quit_asked = True
                self._apply(self.session.quit(now))
            elif raw.startswith(b"L"):
                line = raw[1:].decode("utf-8", "replace")
                self._apply(self.session.typed(line, now))
        return True

    def _apply(self, outs: list[Output]) -> None:
        wall = time.time()
        for out in outs:
            match out:
                case Transmit(payload=data):
                    self.link.send(data)
                case UseServer(index=index):
                    self.link.use(index)  # the session moves to another server
                case OnlineChanged(names=names):
                    self._pending[NAMES] = _names_message(names)
                case RoomsChanged(rooms=rooms):
                    self._pending[ROOMS] = _names_message(rooms, ROOMS)
                case CurrentRoom(room=room):
                    prompt = self.renderer.prompt(room, self.session.name)
                    self._pending[PROMPT] = PROMPT + prompt.encode("utf-8") + b"\n"
                case Finished():
                    self._finished = True
                case LoggedIn() | LoginRefused() | NoAnswer():
                    pass
                case _:
                    self._lines += self.renderer.render(out, wall)

    def _flush(self) -> None:
        # The keyboard process first: the redraw the printing triggers then
        # shows the new prompt.
        for kind, message in list(self._pending.items()):
            try:
                os.write(self.names_fd, message)
                del self._pending[kind]
            except BlockingIOError:
                break  # the keyboard process is behind; try again next round
            except OSError:
                self._pending.clear()
                break
        if self._lines:
            lines, self._lines = self._lines, []
            self.screen.print_lines(lines)


def _names_message(names: tuple[str, ...], kind: bytes = NAMES) -> bytes:
    """One line for the keyboard process: ``kind`` and the tab-separated names
    (as many as fit in one atomic pipe write)."""
    out = kind
    for name in names:
        encoded = name.encode("utf-8") + b"\t"
        if len(out) + len(encoded) > NAMES_MAX:
            break
        out += encoded
    return out.rstrip(b"\t") + b"\n"
