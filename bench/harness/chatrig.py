"""Fleets of chat clients for the dialect and flood benchmarks, one event loop each.

bench/test_bench_v2.py and bench/test_bench_flood.py drive a real ``chatroom serve``
process with many clients at once. Threads (tests/support/headless.py runs one per client)
would make the clients wait for each other's GIL slices, up to 5 ms each: the
latency measured would be the harness's. So every client of a fleet lives in one
single-threaded epoll loop in the benchmark process:

- ``V2Fleet``: N real v2 clients: the client's own state machine
  (chatroom/client/session.py, ``ClientSession``, default ``SessionConfig`` apart
  from history) over one real UDP socket each, as tests/support/headless.py does. A line
  is "typed" with ``session.typed``; what the session transmits goes to the socket;
  a ``ShowEvent`` is a delivery. Nothing in the protocol is bypassed: cookie login,
  window, acks, gap pulls, retransmissions, pacing are the product's code.
- ``ClassicFleet``: N classic-dialect clients as the course's client is: ``L name``,
  then ``C name text`` datagrams; every line received is a delivery.

Both send the text ``m <sender> <k> <t_ns>``, ``t_ns`` = ``time.time_ns()`` just
before the line is typed (v2) or sent (classic). Every socket has ``SO_TIMESTAMPNS``:
a delivery's latency is the kernel's arrival stamp of the datagram that made it
shown, minus ``t_ns`` (both CLOCK_REALTIME). For v2 that is the datagram that let
the client *show* the event: an event held behind a gap counts from the arrival of
the datagram that filled it. The loop's own processing time is thus left out of the
latency (it is in the throughput).

Also here: ``cpu_seconds`` (a process's user+system CPU time, from /proc), the
loss proxy as a process (testkit/lossy_proxy.py) and
``udp_drops`` (the kernel's drop counter of the server's socket).
"""

from __future__ import annotations

import contextlib
import json
import random
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from bench.harness.measure import RoundStats, kernel_stamp, stamped_socket
from bench.harness.relay import ROOT
from chatroom.client.effects import LoggedIn, LoginRefused, NoAnswer, Output, ShowEvent, Transmit
from chatroom.client.session import ClientSession, SessionConfig
from chatroom.registry import Address

# ---------------------------------------------------------------------------- processes


class Flooder:
    """bench/procs/flooder.py in its own process, toggled through its stdin."""

    def __init__(self, server: Address, dialect: str, name: str) -> None:
        cmd = [sys.executable, "-m", "bench.procs.flooder", server[0], str(server[1])]
        cmd += [dialect, name]
        self.dialect, self.name = dialect, name
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self._ready = False

    def wait_ready(self) -> Flooder:
        """Wait until it has logged in (start several, then wait for each)."""
        if not self._ready:
            if self._line(30.0) != "ready":
                raise RuntimeError(f"flooder {self.name} did not log in: {self._stderr()}")
            self._ready = True
        return self

    def _line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        if not select.select([self.proc.stdout], [], [], timeout)[0]:
            return ""
        return self.proc.stdout.readline().decode().strip()

    def _stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return ""
        return self.proc.stderr.read().decode(errors="replace")

    def _send(self, line: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line)
        self.proc.stdin.flush()

    def go(self, rate: float = 0) -> None:
        """Flood at ``rate`` datagrams/s (0: as fast as it can)."""
        self._send(b"go %d\n" % rate)

    def stop(self) -> dict[str, int]:
        """Pause; the counters so far."""
        self._send(b"stop\n")
        line = self._line(10.0)
        return dict(json.loads(line)) if line.startswith("{") else {}

    def close(self) -> None:
        """End of input: it says goodbye and exits; reaped here (killed if it hangs)."""
        with contextlib.suppress(OSError, ValueError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> Flooder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------- results


def message_text(sender: int, k: int) -> str:
    return f"m {sender} {k} {time.time_ns()}"


def parse_text(text: bytes) -> tuple[int, int, int] | None:
    """(sender, k, t_ns) from a line ending in ``m <sender> <k> <t_ns>``."""
    parts = text.rsplit(b" ", 3)
    if len(parts) != 4 or not (parts[0] == b"m" or parts[0].endswith(b" m")):
        return None
    try:
        return int(parts[1]), int(parts[2]), int(parts[3])
    except ValueError:
        return None


@dataclass
class Deliveries:
    """Every delivery of a fleet, for the current phase."""

    n: int
    latencies_ns: list[int] = field(default_factory=list)
    seen: set[tuple[int, int, int]] = field(default_factory=set)
    duplicates: int = 0
    first_send_ns: int = 0
    last_arrival_ns: int = 0
    #: Deliveries per receiving client.
    by_receiver: list[int] = field(default_factory=list)
    #: Every delivery: (receiver, sender, k, latency_ns).
    rows: list[tuple[int, int, int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.by_receiver = [0] * self.n

    def add(self, receiver: int, sender: int, k: int, sent_ns: int, arrival_ns: int) -> None:
        key = (receiver, sender, k)
        if key in self.seen:
            self.duplicates += 1
            return
        self.seen.add(key)
        self.by_receiver[receiver] += 1
        self.latencies_ns.append(arrival_ns - sent_ns)
        self.rows.append((receiver, sender, k, arrival_ns - sent_ns))
        self.last_arrival_ns = max(self.last_arrival_ns, arrival_ns)

    @property
    def count(self) -> int:
        return len(self.latencies_ns)


# ---------------------------------------------------------------------------- v2


@dataclass(eq=False)
class V2Client:
    index: int
    name: str
    session: ClientSession
    sock: socket.socket
    deadline: float | None = None
    logged_in: bool = False
    #: Lines this client still has to type in the current round.
    backlog: int = 0
    typed: int = 0


class V2Fleet:
    """N real v2 clients (``ClientSession``) in one epoll loop, optionally with
    ``classic`` classic-dialect clients in the same loop (indices N, N+1, ...)."""

    def __init__(
        self,
        n: int,
        target: Address,
        *,
        classic: int = 0,
        prefix: str = "v",
        seed: int = 0,
        config: SessionConfig | None = None,
    ) -> None:
        self.target = target
        cfg = config or SessionConfig(history=0, first_login_timeout=30.0)
        self.clients: list[V2Client] = []
        self.classic: list[socket.socket] = []
        self.classic_names = [f"c{prefix}{i:02d}" for i in range(n, n + classic)]
        self._classic_sent = [0] * classic
        self._ep = select.epoll()
        self._by_fd: dict[int, V2Client] = {}
        self._classic_fd: dict[int, int] = {}
        self.deliveries = Deliveries(n + classic)
        self.sends = 0
        self.pulls = 0
        #: Datagrams received that are nobody's ``m`` line (e.g. a flooder's).
        self.other = 0
        self._inputs = 0
        self._classic_ok: set[int] = set()  # classic logins still waiting for OK
        #: Called once per loop turn with ``now``; returns when it next wants to be.
        self.on_idle: Callable[[float], float | None] | None = None
        try:
            for i in range(n):
                rng = random.Random(seed * 1000 + i)
                session = ClientSession("", rng, cfg)
                client = V2Client(i, f"{prefix}{i:02d}", session, stamped_socket())
                self.clients.append(client)
                self._by_fd[client.sock.fileno()] = client
                self._ep.register(client.sock.fileno(), select.EPOLLIN)
            for j in range(classic):
                sock = stamped_socket()
                self.classic.append(sock)
                self._classic_fd[sock.fileno()] = j
                self._ep.register(sock.fileno(), select.EPOLLIN)
        except BaseException:
            self.close()
            raise

    @property
    def size(self) -> int:
        return len(self.clients) + len(self.classic)

    def close(self) -> None:
        self._ep.close()
        for c in self.clients:
            c.sock.close()
        for sock in self.classic:
            sock.close()

    def __enter__(self) -> V2Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------- driving

    def login(self, timeout: float = 30.0) -> None:
        now = time.monotonic()
        for c in self.clients:
            self._apply(c, c.session.login(c.name, now), 0)
        pending = set(range(len(self.classic)))
        self._classic_ok = pending
        retry = [0.0]

        def relogin(now: float) -> float | None:
            if not pending:
                return None
            if now >= retry[0]:  # the OK may be lost: L again (the server says OK again)
                retry[0] = now + 0.2
                for j in pending:
                    self.classic[j].sendto(f"L {self.classic_names[j]}".encode(), self.target)
            return retry[0]

        self.on_idle = relogin
        try:
            ok = self.run_until(
                lambda: not pending and all(c.logged_in for c in self.clients), timeout
            )
        finally:
            self.on_idle = None
        if not ok:
            missing = [c.name for c in self.clients if not c.logged_in]
            missing += [self.classic_names[j] for j in pending]
            raise RuntimeError(f"login did not complete: {missing}")
        # Everyone's join events: let them all arrive, so a round starts quiet.
        self.settle()

    def settle(self, quiet: float = 0.3, timeout: float = 30.0) -> None:
        """Run until nothing is outstanding and ``quiet`` seconds pass without input."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            before = self._inputs
            self.run_until(lambda: False, quiet)
            if self._inputs == before and all(not c.session.outbox for c in self.clients):
                return

    def say(self, index: int, now: float) -> None:
        """Client ``index`` types (v2) or sends (classic) its next ``m`` line."""
        if index < len(self.clients):
            c = self.clients[index]
            c.typed += 1
            self._apply(c, c.session.typed(message_text(index, c.typed), now), 0)
            return
        j = index - len(self.clients)
        self._classic_sent[j] += 1
        line = f"C {self.classic_names[j]} {message_text(index, self._classic_sent[j])}"
        with contextlib.suppress(OSError):
            self.classic[j].sendto(line.encode(), self.target)

    def run_until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Drive every client until ``done()`` or ``timeout`` seconds."""
        end = time.monotonic() + timeout
        poll, by_fd, classic_fd = self._ep.poll, self._by_fd, self._classic_fd
        hook_at = self.on_idle(time.monotonic()) if self.on_idle is not None else None
        while not done():
            now = time.monotonic()
            if now >= end:
                return False
            wake = end if hook_at is None else min(end, hook_at)
            for c in self.clients:
                if c.deadline is not None and c.deadline < wake:
                    wake = c.deadline
            for fd, _ in poll(max(0.0, wake - now)):
                client = by_fd.get(fd)
                if client is not None:
                    self._drain(client)
                else:
                    self._read_classic(classic_fd[fd])
            now = time.monotonic()
            for c in self.clients:
                if c.deadline is not None and now >= c.deadline:
                    self._apply(c, c.session.tick(now), 0)
            if self.on_idle is not None:
                hook_at = self.on_idle(now)
        return True

    def _drain(self, c: V2Client) -> None:
        recvmsg, receive = c.sock.recvmsg, c.session.receive
        while True:
            try:
                data, anc, _flags, _addr = recvmsg(2048, 64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            self._inputs += 1
            self._apply(c, receive(data, time.monotonic()), kernel_stamp(anc))

    def _read_classic(self, j: int) -> None:
        sock = self.classic[j]
        index = len(self.clients) + j
        while True:
            try:
                data, anc, _flags, _addr = sock.recvmsg(2048, 64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            self._inputs += 1
            if data == b"OK":
                self._classic_ok.discard(j)
                continue
            parsed = parse_text(data)
            if parsed is None:
                self.other += 1
                continue
            sender, k, sent = parsed
            self.deliveries.add(index, sender, k, sent, kernel_stamp(anc))

    def _apply(self, c: V2Client, outputs: list[Output], arrival_ns: int) -> None:
        sendto = c.sock.sendto
        for out in outputs:
            if isinstance(out, Transmit):
                payload = out.payload
                if payload.startswith(b"v2 SAY "):
                    self.sends += 1
                elif payload.startswith(b"v2 PULL "):
                    self.pulls += 1
                with contextlib.suppress(OSError):
                    sendto(payload, self.target)
            elif isinstance(out, ShowEvent):
                ev = out.event
                if ev.kind != "message" or out.history or ev.name == c.name:
                    continue
                parsed = parse_text(ev.text.encode())
                if parsed is None:
                    self.other += 1
                    continue
                sender, k, sent = parsed
                self.deliveries.add(c.index, sender, k, sent, arrival_ns or time.time_ns())
            elif isinstance(out, LoggedIn):
                c.logged_in = True
            elif isinstance(out, LoginRefused | NoAnswer):
                raise RuntimeError(f"{c.name}: login failed: {out}")
        c.deadline = c.session.deadline()

    def reset(self) -> Deliveries:
        """Start a new phase: fresh delivery records and counters."""
        self.deliveries = Deliveries(self.size)
        self.sends = self.pulls = self.other = 0
        return self.deliveries

    # -------------------------------------------------------------- a throughput round

    def round(
        self, per_sender: int, senders: Iterable[int] | None = None, timeout: float = 120.0
    ) -> RoundStats:
        """Every sender (v2 clients only) types ``per_sender`` lines, each as soon as
        the client's window lets it send (its outbox is empty), until every other
        client showed every line."""
        indices = range(len(self.clients)) if senders is None else senders
        chosen = [self.clients[i] for i in indices]
        rec = self.reset()
        n = self.size
        expected = per_sender * len(chosen) * (n - 1)

        stored_ns = [0]
        busy = set(chosen)

        def feed(now: float) -> None:
            for c in chosen:
                if c.session.outbox:
                    continue
                if c.backlog:
                    c.backlog -= 1
                    self.say(c.index, now)
                elif c in busy:  # its last line is acknowledged (stored)
                    busy.discard(c)
                    stored_ns[0] = time.time_ns()

        self.on_idle = lambda now: feed(now)
        rec.first_send_ns = time.time_ns()
        for c in chosen:
            c.backlog = per_sender
        feed(time.monotonic())
        try:
            self.run_until(lambda: rec.count >= expected, timeout)
        finally:
            self.on_idle = None
            for c in chosen:
                c.backlog = 0
        stats = RoundStats(
            "v2",
            n,
            per_sender * len(chosen),
            expected,
            rec.count,
            rec.duplicates,
            (rec.last_arrival_ns - rec.first_send_ns) / 1e9,
            sorted(rec.latencies_ns),
            sends=self.sends,
            pulls=self.pulls,
            stored_seconds=(stored_ns[0] - rec.first_send_ns) / 1e9 if not busy else 0.0,
        )
        self.settle(quiet=0.1)
        return stats


# ---------------------------------------------------------------------------- classic


class ClassicFleet:
    """N classic-dialect clients (``L``/``C``, plain lines back) in one epoll loop."""

    def __init__(self, n: int, target: Address, *, prefix: str = "c") -> None:
        self.target = target
        self.names = [f"{prefix}{i:02d}" for i in range(n)]
        self.socks: list[socket.socket] = []
        self._ep = select.epoll()
        self._index: dict[int, int] = {}
        self.deliveries = Deliveries(n)
        #: Highest k + 1 of each sender seen by its observer (the next client).
        self.done: list[int] = [0] * n
        try:
            for i in range(n):
                sock = stamped_socket()
                self.socks.append(sock)
                self._index[sock.fileno()] = i
                self._ep.register(sock.fileno(), select.EPOLLIN)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self._ep.close()
        for sock in self.socks:
            sock.close()

    def __enter__(self) -> ClassicFleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def login(self, timeout: float = 30.0) -> None:
        """``L name`` from each client, retried every 0.2 s until ``OK`` (it may be lost)."""
        pending = set(range(len(self.socks)))
        end = time.monotonic() + timeout
        while pending and time.monotonic() < end:
            for i in pending:
                self.socks[i].sendto(f"L {self.names[i]}".encode(), self.target)
            stop = time.monotonic() + 0.2
            while pending and time.monotonic() < stop:
                for fd, _ in self._ep.poll(max(0.0, stop - time.monotonic())):
                    i = self._index[fd]
                    for data, _ in self._read(i):
                        if data == b"OK":
                            pending.discard(i)
        if pending:
            raise RuntimeError(f"classic login did not complete: {sorted(pending)}")
        self.settle()

    def settle(self, quiet: float = 0.3) -> None:
        """Read and discard until ``quiet`` seconds pass without a datagram."""
        while self._ep.poll(quiet):
            for i in range(len(self.socks)):
                self._read(i)

    def _read(self, i: int) -> list[tuple[bytes, int]]:
        sock = self.socks[i]
        rows: list[tuple[bytes, int]] = []
        while True:
            try:
                data, anc, _flags, _addr = sock.recvmsg(2048, 64)
            except (BlockingIOError, InterruptedError):
                return rows
            except OSError:
                continue
            rows.append((data, kernel_stamp(anc)))

    def send(self, i: int, k: int) -> None:
        line = f"C {self.names[i]} m {i} {k} {time.time_ns()}".encode()
        with contextlib.suppress(OSError):
            self.socks[i].sendto(line, self.target)

    def poll(self, timeout: float) -> int:
        """Read whatever arrives within ``timeout``; record deliveries. Returns how many."""
        got = 0
        n = len(self.socks)
        rec = self.deliveries
        for fd, _ in self._ep.poll(timeout):
            i = self._index[fd]
            for data, stamp in self._read(i):
                parsed = parse_text(data)
                if parsed is None:
                    continue
                sender, k, sent = parsed
                got += 1
                rec.add(i, sender, k, sent, stamp)
                if (sender + 1) % n == i and k + 1 > self.done[sender]:
                    self.done[sender] = k + 1
        return got

    def reset(self) -> Deliveries:
        self.deliveries = Deliveries(len(self.socks))
        self.done = [0] * len(self.socks)
        return self.deliveries

    def round(
        self,
        per_sender: int,
        window: int,
        senders: Iterable[int] | None = None,
        stall: float = 0.05,
        timeout: float = 120.0,
    ) -> RoundStats:
        """Each sender sends ``per_sender`` lines with at most ``window`` in flight:
        a line leaves flight when the next client (the sender's observer) has it or
        a later one of the same sender, or after ``stall`` seconds without progress
        (it was lost: classic has no retransmission). Ends ``stall`` after the last
        arrival once everything is sent."""
        chosen = list(range(len(self.socks))) if senders is None else list(senders)
        rec = self.reset()
        n = len(self.socks)
        sent = dict.fromkeys(chosen, 0)
        progress = dict.fromkeys(chosen, time.monotonic())
        seen = dict.fromkeys(chosen, 0)
        stalls = 0
        rec.first_send_ns = time.time_ns()
        end = time.monotonic() + timeout
        quiet_since = time.monotonic()
        while time.monotonic() < end:
            now = time.monotonic()
            for i in chosen:
                if self.done[i] != seen[i]:
                    seen[i] = self.done[i]
                    progress[i] = now
                elif sent[i] > self.done[i] and now - progress[i] > stall:
                    stalls += 1
                    self.done[i] = seen[i] = sent[i]
                    progress[i] = now
                limit = min(per_sender, self.done[i] + window)
                while sent[i] < limit:
                    self.send(i, sent[i])
                    sent[i] += 1
            if self.poll(stall / 2):
                quiet_since = time.monotonic()
            if all(s == per_sender for s in sent.values()):
                if rec.count >= per_sender * len(chosen) * (n - 1):
                    break
                if time.monotonic() - quiet_since > stall:
                    break
        return RoundStats(
            "classic",
            n,
            per_sender * len(chosen),
            per_sender * len(chosen) * (n - 1),
            rec.count,
            rec.duplicates,
            (rec.last_arrival_ns - rec.first_send_ns) / 1e9,
            sorted(rec.latencies_ns),
            sends=sum(sent.values()),
            stalls=stalls,
        )
