"""A headless v2 client for tests: the real client session state machine
(chatroom/client/session.py) over a real UDP socket, in a thread, without a
terminal. It records every event the user would have been shown.

Also runnable as a process (``python -m tests.support.headless HOST PORT NAME``) for
tests that SIGKILL or SIGSTOP a client: it says each stdin line and prints each
shown event as ``EV <id> <kind> <name> <text>`` and notices as ``NOTICE <key>``.
"""

from __future__ import annotations

import contextlib
import os
import queue
import random
import selectors
import socket
import sys
import threading
import time
from collections.abc import Callable

from chatroom import protocol as p
from chatroom.client.effects import (
    Finished,
    LoggedIn,
    LoginRefused,
    NoAnswer,
    Notice,
    Output,
    ShowEvent,
    ShowPresence,
    Transmit,
)
from chatroom.client.session import ClientSession, SessionConfig
from chatroom.events import Event


class Headless:
    """One client. ``shown`` is what its user saw, in order."""

    def __init__(
        self,
        server: tuple[str, int],
        name: str,
        *,
        history: int = 0,
        seed: int = 0,
        config: SessionConfig | None = None,
        on_output: Callable[[Output], None] | None = None,
    ) -> None:
        self.server = server
        self.name = name
        cfg = config or SessionConfig(history=history, first_login_timeout=30.0)
        self.session = ClientSession(name, random.Random(seed), cfg)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.shown: list[Event] = []
        self.history: list[Event] = []
        self.notices: list[str] = []
        #: A large room's joins and leaves, told together (SUM).
        self.presence: list[p.Summary] = []
        self.logged_in = threading.Event()
        self.finished = threading.Event()
        self.refused: str | None = None
        self._on_output = on_output
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._wake_r, self._wake_w = os.pipe()
        self._lock = threading.RLock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ API

    def say(self, text: str) -> None:
        self._lines.put(text)
        os.write(self._wake_w, b"x")

    def quit(self, timeout: float = 5.0) -> None:
        self._lines.put(None)
        os.write(self._wake_w, b"x")
        self.finished.wait(timeout)

    def close(self) -> None:
        self.finished.set()
        os.write(self._wake_w, b"x")
        self._thread.join(5)
        self.sock.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def texts(self, kind: str = "message") -> list[tuple[str, str]]:
        with self._lock:
            return [(e.name, e.text) for e in self.shown if e.kind == kind]

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if predicate():
                    return True
            time.sleep(0.02)
        with self._lock:
            return predicate()

    # ------------------------------------------------------------------ loop

    def _apply(self, outputs: list[Output]) -> None:
        for out in outputs:
            if self._on_output is not None:
                self._on_output(out)
            match out:
                case Transmit(payload=payload):
                    with contextlib.suppress(OSError):
                        self.sock.sendto(payload, self.server)
                case ShowEvent(event=event, history=True):
                    with self._lock:
                        self.history.append(event)
                case ShowEvent(event=event):
                    with self._lock:
                        self.shown.append(event)
                case Notice(key=key):
                    with self._lock:
                        self.notices.append(key)
                case ShowPresence(summary=summary):
                    with self._lock:
                        self.presence.append(summary)
                case LoggedIn():
                    self.logged_in.set()
                case LoginRefused(code=code):
                    self.refused = code
                    self.finished.set()
                case NoAnswer() | Finished():
                    self.finished.set()
                case _:
                    pass

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ, "udp")
        sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._apply(self.session.login(self.name, time.monotonic()))
        try:
            while not self.finished.is_set():
                deadline = self.session.deadline()
                timeout = 0.5 if deadline is None else max(0.0, deadline - time.monotonic())
                for key, _ in sel.select(min(timeout, 0.5)):
                    if key.data == "udp":
                        self._drain()
                    else:
                        os.read(self._wake_r, 4096)
                        self._typed()
                now = time.monotonic()
                deadline = self.session.deadline()
                if deadline is not None and now >= deadline:
                    self._apply(self.session.tick(now))
        finally:
            sel.close()

    def _drain(self) -> None:
        while True:
            try:
                data, _ = self.sock.recvfrom(p.MAX_DATAGRAM + 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self._apply(self.session.receive(data, time.monotonic()))

    def _typed(self) -> None:
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                return
            if line is None:
                self._apply(self.session.quit(time.monotonic()))
            else:
                self._apply(self.session.typed(line, time.monotonic()))


def main() -> None:
    """Process mode: stdin lines are said; shown events go to stdout."""
    host, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]

    def show(out: Output) -> None:
        match out:
            case ShowEvent(event=e, history=False):
                print(f"EV {e.id} {e.kind} {e.name} {e.text}", flush=True)
            case Notice(key=key):
                print(f"NOTICE {key}", flush=True)
            case LoggedIn():
                print("LOGGEDIN", flush=True)
            case _:
                pass

    client = Headless((host, port), name, on_output=show)
    for line in sys.stdin:
        client.say(line.rstrip("\n"))
    client.quit()
    client.close()


if __name__ == "__main__":
    main()
