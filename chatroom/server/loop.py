"""The socket loop: the only server code that does I/O.

Each turn: wait (selectors) for the UDP socket, the operator console, the signal
wake-up pipe or the next timer; drain every datagram that is ready (up to a
batch limit); feed each to the hub; commit every stored event of the batch in
one transaction; only then send. One commit per batch instead of per datagram is
what keeps storage off the hot path (docs/architecture.md), and sending after the
commit is what makes "a client was shown it" imply "it is on disk".
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, TextIO

from chatroom import control
from chatroom import protocol as p
from chatroom.server.commits import (
    Commits,
    Committer,
    CommitThread,
    EventSink,
    StorageFailure,
)
from chatroom.server.console_log import ConsoleLog
from chatroom.server.effects import Effect, Send, Store
from chatroom.server.hub import Hub
from chatroom.server.sendmany import SendMode, make_sender
from chatroom.server.status import Pulse, members, report

log = logging.getLogger("chatroom.server")


#: Most datagrams handled before a commit; bounds the latency a batch adds.
BATCH: int = 256
#: How often the room's timers run (retransmissions; idle checks once a second).
TICK: float = 0.1
#: Socket buffers: a burst of a few thousand datagrams should queue, not drop.
SOCKET_BUFFER: int = 4 * 1024 * 1024
#: After a light read (at most ``LIGHT`` datagrams, nothing stored: a
#: heartbeat or two) the next one waits this long, so that what arrives
#: meanwhile is read in the same wake-up (a NIC's interrupt moderation).
#: Being woken is most of what an idle server's heartbeats cost
#: (docs/architecture.md, "Large rooms"); a line that comes then waits at
#: most this long, and none does while lines flow or the server is busy.
MODERATION: float = 0.001
LIGHT: int = 4


def new_token() -> str:
    """A session id: 128 random bits, hex."""
    return secrets.token_hex(16)


def bind_udp(host: str, port: int) -> socket.socket:
    """A non-blocking UDP socket bound to host:port (IPv4 or IPv6 by the host)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


class Server:
    """Runs a Hub on a UDP socket until stopped by a signal or ``stop()``."""

    def __init__(
        self,
        hub: Hub,
        sock: socket.socket,
        sink: EventSink,
        *,
        storage_errors: tuple[type[Exception], ...] = (StorageFailure,),
        lock_wait: Callable[[float | None], None] | None = None,
        send_mode: SendMode = "auto",
        send_threads: int | None = None,
        pipeline: EventSink | None = None,
        console: TextIO | None = None,
        control: socket.socket | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        activity: ConsoleLog | None = None,
        database: str = "",
        database_bytes: Callable[[], int | None] | None = None,
        commits: Commits | None = None,
    ) -> None:
        """``pipeline``: commit each batch on a second thread through this sink
        (``sink`` itself, or storage/writer.py's writer process) while the next
        batch is handled; None: inline. ``commits``: where effects go instead of
        the group Committer over ``sink`` (a cluster node: chatroom/cluster/node.py)."""
        self.hub = hub
        self.sock = sock
        self.sink = sink
        #: Joins, leaves and a summary a minute on the terminal (console_log.py).
        self.activity = activity
        on_commit = activity.committed if activity is not None else None
        if commits is None:
            worker = CommitThread(pipeline) if pipeline is not None else None
            commits = Committer(
                sink, hub.storage, storage_errors, lock_wait, on_commit, worker=worker
            )
        self.commits: Commits = commits
        self.sender = make_sender(sock, self._wait_writable, send_mode, send_threads)
        self.console = console
        self.control = control
        self._clock = clock
        self._wall = wall
        #: For chatroom status: where events go, and how big that has grown.
        self.database = database
        self._database_bytes = database_bytes
        self._started = clock()
        self.pulse = Pulse(self._started)
        self._stopping = False
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()[:2]
        return str(host), int(port)

    def stop(self) -> None:
        """Ask the loop to finish its turn, announce the shutdown and return."""
        self._stopping = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def install_signal_handlers(self) -> None:
        def handler(signum: int, frame: FrameType | None) -> None:
            self.stop()

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)

    # ------------------------------------------------------------------ loop

    def serve_forever(self) -> None:
        self._sel.register(self.sock, selectors.EVENT_READ, "udp")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        if self.console is not None:
            self._sel.register(self.console, selectors.EVENT_READ, "console")
        if self.control is not None:
            self._sel.register(self.control, selectors.EVENT_READ, "control")
        if self.commits.worker is not None:
            self._sel.register(self.commits.worker, selectors.EVENT_READ, "commit")
        next_tick = self._clock() + TICK
        quiet = False
        try:
            while not self._stopping:
                wake = next_tick
                if (retry := self.commits.retry_at) is not None:
                    wake = min(wake, retry)
                timeout = max(0.0, wake - self._clock())
                for key, _ in self._sel.select(timeout):
                    if key.data == "udp":
                        if quiet:
                            time.sleep(MODERATION)
                        quiet = self._drain()
                    elif key.data == "console":
                        self._console_line()
                    elif key.data == "control":
                        self._control_request()
                    elif key.data == "commit":
                        self._send_all(self.commits.poll(self._clock()))
                    else:
                        with contextlib.suppress(OSError):
                            os.read(self._wake_r, 512)
                now = self._clock()
                self._send_all(self.commits.retry(now))
                if now >= next_tick:
                    next_tick = now + TICK
                    self._apply(self.hub.on_timer(now, self._wall()))
                    self._send_all(self.commits.tick(now, self._wall()))
                    self.pulse.sample(now, self.hub.stats["events.message"])
                    if self.activity is not None:
                        self.activity.tick(now, self._wall())
            self._shutdown()
        finally:
            if self.commits.worker is not None:
                self.commits.worker.close()
            self.sender.close()
            self._sel.close()
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _drain(self) -> bool:
        """Handle what the socket holds (up to BATCH datagrams); True when
        that was a light read (see MODERATION)."""
        effects: list[Effect] = []
        handled = 0
        for handled in range(BATCH):  # noqa: B007 - the count is the result
            try:
                data, addr = self.sock.recvfrom(p.MAX_DATAGRAM + 1)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # e.g. ICMP port unreachable surfaced as ECONNREFUSED
                log.debug("recvfrom: %s", exc)
                continue
            try:
                effects += self.hub.handle(data, addr[:2], self._clock(), self._wall())
            except Exception:  # last resort: one bad datagram never stops the room
                self.hub.stats["errors.internal"] += 1
                log.exception("internal error handling a datagram from %s", addr)
        self._apply(effects)
        return handled <= LIGHT and not any(isinstance(e, Store) for e in effects)

    def _console_line(self) -> None:
        assert self.console is not None
        line = self.console.readline()
        if not line:  # EOF on the console: keep serving without it
            self._sel.unregister(self.console)
            self.console = None
            return
        if not line.strip():
            return
        problem = self.hub.announcement_problem(line)
        if problem is not None:
            print(f"chatroom: not announced: {problem}", flush=True)
            return
        self._apply(self.hub.announce(line, self._clock(), self._wall()))
        print(f"chatroom: announced to {self.hub.online()} user(s)", flush=True)

    def _control_request(self) -> None:
        """One request on the local control socket (``chatroom announce``)."""
        assert self.control is not None
        try:
            conn, _ = self.control.accept()
        except (BlockingIOError, InterruptedError):
            return
        with conn:
            try:
                if control.peer_uid(conn) != os.getuid():
                    conn.sendall(b"ERR not the server's user\n")
                    return
                verb, _, text = control.read_request(conn).partition(" ")
                conn.sendall(self._control_answer(verb, text).encode() + b"\n")
            except OSError as exc:
                log.warning("control request failed: %s", exc)

    def _control_answer(self, verb: str, text: str) -> str:
        match verb:
            case control.ANNOUNCE:
                problem = self.hub.announcement_problem(text)
                if problem is not None:
                    return f"ERR {problem}"
                self._apply(self.hub.announce(text, self._clock(), self._wall()))
                return f"OK {self.hub.online()}"
            case control.STATUS:
                return "OK " + json.dumps(self.status(), ensure_ascii=False)
            case control.WHO:
                room, why = p.check_room(text.strip() or p.LOBBY)
                if why is not None:
                    return f"ERR not a room: {text}"
                return "OK " + json.dumps(members(self.hub, p.room_key(room)), ensure_ascii=False)
        return "ERR unknown request"

    def status(self) -> dict[str, Any]:
        """What ``chatroom status`` shows (chatroom/server/status.py)."""
        db_bytes = self._database_bytes() if self._database_bytes is not None else None
        return report(
            self.hub,
            self.commits,
            self.pulse,
            now=self._clock(),
            started=self._started,
            address=self.address,
            database=self.database,
            database_bytes=db_bytes,
        )

    def _apply(self, effects: list[Effect]) -> None:
        """Commit the batch's events, then send what they allow: never show what
        is not stored (commits.py)."""
        if effects:
            self._send_all(self.commits.apply(effects, self._clock()))

    def _send_all(self, sends: list[Send]) -> None:
        if sends:
            dropped = self.sender.send([(s.payload, s.addrs) for s in sends])
            if dropped:
                self.hub.stats["drop.sendbuf"] += dropped

    def _shutdown(self) -> None:
        """Tell everyone the server is going away. The notice is stored like any
        announcement; if the database still cannot be written (one last retry),
        everyone is told anyway, with a notice that is not stored, rather than
        left to find out at their next heartbeat."""
        now = self._clock()
        self._send_all(self.commits.retry_now(now))
        if not self.commits.announces_shutdown:
            # One node of a cluster: the chat goes on; its users are told (not
            # stored) and move to another node.
            self._send_all([e for e in self.hub.farewell() if isinstance(e, Send)])
        elif self.hub.storage.writable:
            self._apply(self.hub.shutdown(now, self._wall()))
            self._send_all(self.commits.retry_now(self._clock()))  # pipelined: wait for it
        else:
            self._send_all([e for e in self.hub.farewell() if isinstance(e, Send)])
            log.error(
                "stopped with %d event(s) not stored (%s)",
                self.commits.pending,
                self.commits.last_error,
            )

    def _wait_writable(self) -> bool:
        with selectors.DefaultSelector() as sel:
            sel.register(self.sock, selectors.EVENT_WRITE)
            return bool(sel.select(0.05))


def console_stream() -> TextIO | None:
    """stdin when it is a terminal, else None (a service manager, /dev/null, a pipe)."""
    try:
        return sys.stdin if sys.stdin is not None and sys.stdin.isatty() else None
    except (ValueError, OSError):
        return None
