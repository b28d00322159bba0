"""The cluster benchmark's rig: real nodes, lean v2 clients, CPU meters (issue 14).

bench/test_bench_cluster.py compares a cluster of ``chatroom serve --cluster``
nodes with the single node it replaces. What it needs, usable from a REPL too::

    with Deployment(tmp) as dep:
        a, b = dep.servers["a"].addr, dep.servers["b"].addr
        fleet = Fleet([Place("s", a, "a"), Place("r", a, "a"), Place("x", b, "b")])
        fleet.login()
        phase = fleet.run([0], 100, rate=200)  # 100 lines from "s" at 200/s
        fleet.bye()
        fleet.close()

- ``Deployment``: every server of one comparison, started once: a single node on
  SQLite, a single node on PostgreSQL (no ``--cluster``), a cluster of one node,
  and a cluster of two nodes A and B. Each PostgreSQL server gets a database of its
  own, created for the run from the admin database (``CREATE DATABASE``) and
  dropped after it (``WITH (FORCE)``); each cluster a unique ``--cluster-name``,
  whose Redis keys (``chatroom:<name>:*``) are deleted after it. The databases are
  migrated once and copied; the servers start in parallel and stop in parallel: on
  2 cores, five sequential start-ups would be most of the quick run's 40 s.
- ``Fleet``: lean but protocol-correct v2 clients (as bench/harness/v2load.py: cookie
  login, SAY with a window, retried until ACKED, cumulative ACKs every 16 events
  or 50 ms after the first unacknowledged one), each on the node it is placed on,
  all in one epoll loop in this process. One process sends and receives, so a
  one-way latency is one clock's difference: ``time.time_ns()`` written into the
  text just before the SAY, and the kernel's arrival stamp (``SO_TIMESTAMPNS``)
  of the EV at the receiver. An EV carries its room position: the checks compare
  the order every receiver was given with the order each sender sent in.
- ``Meter``: CPU time over a phase, from ``/proc/<pid>/stat`` (utime + stime, all
  threads; psutil is not a dependency): each node, the PostgreSQL backends that
  serve our databases (found by the database name in their process title), and
  the machine's Redis (shared with anyone else using it: context, not a figure to
  trust alone).

Its results are rendered by bench/report/cluster.py.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import secrets
import select
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.harness.chatrig import message_text, parse_text
from bench.harness.measure import kernel_stamp, machine_busy, percentile, stamped_socket
from bench.harness.relay import ROOT, Relay
from chatroom.events import LOBBY
from chatroom.protocol.codec import encode_client, parse_server
from chatroom.protocol.frames import Cookie, Login, Refused, Welcome
from chatroom.registry import Address
from storage import migrations
from testkit.processes import chatroom_cmd

#: The machines' services (the same variables as the test suite's).
PG_ADMIN = os.environ.get("CHATROOM_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1/test")
REDIS_URL = os.environ.get("CHATROOM_TEST_REDIS", "redis://127.0.0.1:6379/0")
#: Every database this rig creates is called ``chatroom_bench_<pid>_<n>``; one
#: left behind by a run that died (its pid gone) is dropped by the next run.
DB_PREFIX = f"chatroom_bench_{os.getpid()}_"
_LEFTOVER = re.compile(r"chatroom_bench_(\d+)_\d+$")
#: The nodes' idle timeout, which is also the lease of names and nodes: long
#: enough that a fleet waiting for the other rows' phases is never evicted.
IDLE_TIMEOUT = 60.0
SERVER_ARGS = ("--rate-limit", "off", "--max-sessions-per-ip", "0", "--idle-timeout")
CLK_TCK = os.sysconf("SC_CLK_TCK")

#: The real client's cumulative-ACK cadence (``SessionConfig.ack_every``); the
#: delay is shorter than its 200 ms, so that a phase's tail is acknowledged soon.
ACK_EVERY = 16
ACK_DELAY = 0.05
#: A SAY unanswered this long is sent again (stored once: the server and the
#: database dedupe by (session, seq)). At 0% loss on loopback it never fires.
SAY_RETRY = 1.0

_db_names = itertools.count(1)


# ---------------------------------------------------------------------------- CPU


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (every thread) so far; 0.0 if
    it is gone. /proc/<pid>/stat counts in clock ticks (10 ms): phases are long
    enough (seconds, or thousands of messages) for that not to matter."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return 0.0
    # The command name (field 2) may hold spaces; everything after its ")" splits.
    fields = raw[raw.rfind(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime: fields 14, 15


def _cmdline(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def pg_backends(databases: Iterable[str]) -> list[int]:
    """PostgreSQL backends connected to one of ``databases``: their process title
    is ``postgres: <cluster>: <user> <database> <client> <state>``."""
    wanted = {db.encode() for db in databases}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        title = _cmdline(entry.name).replace(b"\0", b" ")
        if title.startswith(b"postgres: "):
            words = title.split()
            if len(words) > 3 and words[3] in wanted:
                found.append(int(entry.name))
    return found


def redis_pid(url: str) -> int | None:
    """The redis-server process listening on ``url``'s port, if it runs here."""
    port = str(urlsplit(url).port or 6379).encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            line = _cmdline(entry.name)
            if line.startswith(b"redis-server") and line.split(b"\0")[0].endswith(b":" + port):
                return int(entry.name)
    return None


@dataclass
class Usage:
    """CPU seconds used over one phase, by whom."""

    wall: float
    nodes: dict[str, float]
    postgres: float
    redis: float
    clients: float  # this process: the fleets
    machine_busy: float  # share of all cores busy (anyone's work)

    @property
    def node_total(self) -> float:
        return sum(self.nodes.values())


class Meter:
    """CPU time of the nodes under test, of their PostgreSQL backends and of Redis,
    between ``__init__`` and ``stop``."""

    def __init__(
        self, nodes: dict[str, int], databases: Sequence[str], redis_at: int | None
    ) -> None:
        self.nodes, self.databases, self.redis_at = nodes, databases, redis_at
        self._t0 = time.monotonic()
        self._busy0 = machine_busy()
        self._nodes0 = {k: proc_cpu(pid) for k, pid in nodes.items()}
        self._pg0 = {pid: proc_cpu(pid) for pid in pg_backends(databases)}
        self._redis0 = proc_cpu(redis_at) if redis_at else 0.0
        self._clients0 = proc_cpu(os.getpid())

    def stop(self) -> Usage:
        nodes = {k: proc_cpu(pid) - self._nodes0[k] for k, pid in self.nodes.items()}
        # A backend that came during the phase counts whole (its start is part of
        # the work); one that left during it is missed (the pools keep theirs).
        pg = sum(proc_cpu(pid) - self._pg0.get(pid, 0.0) for pid in pg_backends(self.databases))
        red = (proc_cpu(self.redis_at) - self._redis0) if self.redis_at else 0.0
        busy1 = machine_busy()
        total = busy1[1] - self._busy0[1]
        busy = (busy1[0] - self._busy0[0]) / total if total > 0 else 0.0
        clients = proc_cpu(os.getpid()) - self._clients0
        return Usage(time.monotonic() - self._t0, nodes, pg, red, clients, busy)


# ---------------------------------------------------------------------------- services


class Databases:
    """PostgreSQL databases of this run, made from the admin database and dropped."""

    def __init__(self, admin_url: str = PG_ADMIN) -> None:
        self.admin_url = admin_url
        self._engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self.names: list[str] = []
        try:
            self._drop_leftovers()
        except Exception as exc:
            self._engine.dispose()
            raise RuntimeError(f"PostgreSQL at {admin_url} is not usable: {exc}") from exc

    def _drop_leftovers(self) -> None:
        with self._engine.connect() as conn:
            rows = conn.execute(
                text("SELECT datname FROM pg_database WHERE datname LIKE 'chatroom_bench_%'")
            ).scalars()
            for name in list(rows):
                m = _LEFTOVER.match(name)
                if m and not Path(f"/proc/{m.group(1)}").exists():
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def create(self, template: str = "template0") -> str:
        """A new database, a copy of ``template``; its URL."""
        name = f"{DB_PREFIX}{next(_db_names)}"
        with self._engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        self.names.append(name)
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def create_migrated(self, count: int) -> list[str]:
        """``count`` new databases at the newest schema. The migrations run once,
        here, and the others are copies (``CREATE DATABASE ... TEMPLATE``, a fraction
        of a second): each server migrating its own would cost a second of CPU
        apiece while the others start on the same two cores."""
        first = self.create()
        migrations.upgrade(first)  # closes its connections: the copies can be made
        base = make_url(first).database or ""
        return [first, *(self.create(template=base) for _ in range(count - 1))]

    def close(self) -> None:
        """Drop them all, side by side: each DROP DATABASE waits for a checkpoint,
        and concurrent ones share it."""

        def drop(name: str) -> None:
            with self._engine.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

        try:
            with ThreadPoolExecutor(max_workers=max(1, len(self.names))) as pool:
                for done in [pool.submit(drop, name) for name in self.names]:
                    done.result()
        finally:
            self.names = []
            self._engine.dispose()


def forget_cluster(url: str, name: str) -> None:
    """Delete a cluster's keys (``chatroom:<name>:*``) from the broker."""
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"chatroom:{name}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def serve_cmd(db: str, *extra: str) -> list[str]:
    """``chatroom serve`` on 127.0.0.1, port 0, with the benchmark's settings."""
    cmd = chatroom_cmd("serve", "--host", "127.0.0.1", "--port", "0")
    return [*cmd, "-q", "--db", db, *SERVER_ARGS, str(IDLE_TIMEOUT), *extra]


def start_all(named: Sequence[tuple[str, list[str]]]) -> list[Relay]:
    """Start every command at once, then wait for each one's banner. On any
    failure every process started is killed and reaped before raising."""
    procs: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        for name, cmd in named:
            proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            procs.append((name, proc))
        return [Relay.started(name, proc, timeout=60.0) for name, proc in procs]
    except BaseException:
        stop_all([Relay(name, proc, ("", 0)) for name, proc in procs], timeout=0.0)
        raise


def stop_all(relays: Sequence[Relay], timeout: float = 20.0) -> None:
    """SIGTERM to every process first, then reap each (SIGKILL after ``timeout``;
    ``timeout`` 0: SIGKILL at once, for a start that failed): the clean stops,
    a second or more each on a busy machine, run side by side."""
    for r in relays:
        if r.proc.poll() is None:
            with contextlib.suppress(OSError):
                r.proc.send_signal(signal.SIGTERM if timeout > 0 else signal.SIGKILL)
    deadline = time.monotonic() + timeout
    for r in relays:
        try:
            r.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            r.proc.kill()
            r.proc.wait(10)
        if r.proc.stdout is not None:
            with contextlib.suppress(OSError, ValueError):
                r.banner += r.proc.stdout.read() or b""
            r.proc.stdout.close()


class Deployment:
    """Every server the benchmark compares, on one machine, at the same time.

    ``sqlite`` and ``pg``: single nodes (no ``--cluster``) on SQLite and on the
    PostgreSQL server the clusters use; ``one``: a cluster of one node; ``a`` and
    ``b``: a cluster of two. Each PostgreSQL server has its own database, so the
    rows never share a table, and each cluster its own name."""

    def __init__(self, tmp: Path, admin_url: str = PG_ADMIN, broker_url: str = REDIS_URL) -> None:
        self.tmp, self.admin_url, self.broker_url = tmp, admin_url, broker_url
        tag = f"bench-{os.getpid()}-{secrets.token_hex(3)}"
        self.clusters = {"one": f"{tag}-one", "two": f"{tag}-two"}
        self.dbs: Databases | None = None
        self.databases: dict[str, str] = {}  # server -> database name
        self.servers: dict[str, Relay] = {}
        self.redis_pid: int | None = None

    def __enter__(self) -> Deployment:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        check = redis.Redis.from_url(self.broker_url, socket_timeout=5)
        try:
            check.ping()
        except (redis.RedisError, OSError) as exc:
            raise RuntimeError(f"Redis at {self.broker_url} is not reachable: {exc}") from exc
        finally:
            check.close()
        self.redis_pid = redis_pid(self.broker_url)
        self.dbs = Databases(self.admin_url)
        urls = dict(zip(("pg", "one", "two"), self.dbs.create_migrated(3), strict=True))
        self.databases = {label: make_url(url).database or "" for label, url in urls.items()} | {
            "a": make_url(urls["two"]).database or "",
            "b": make_url(urls["two"]).database or "",
        }

        def node(label: str) -> list[str]:
            name = self.clusters[label]
            return serve_cmd(urls[label], "--cluster", self.broker_url, "--cluster-name", name)

        # All at once, A and B too: nodes of a cluster may start together.
        started = start_all(
            [
                ("sqlite", serve_cmd(str(self.tmp / "single.db"))),
                ("pg", serve_cmd(urls["pg"])),
                ("one", node("one")),
                ("a", node("two")),
                ("b", node("two")),
            ]
        )
        self.servers = {r.name: r for r in started}

    def close(self) -> None:
        try:
            stop_all(list(self.servers.values()))
        finally:
            try:
                for name in self.clusters.values():
                    with contextlib.suppress(redis.RedisError, OSError):
                        forget_cluster(self.broker_url, name)
            finally:
                if self.dbs is not None:
                    self.dbs.close()
                    self.dbs = None

    def meter(self, servers: Sequence[str]) -> Meter:
        """A CPU meter over ``servers`` (labels), their databases and Redis."""
        dbs = sorted({self.databases[s] for s in servers if s in self.databases})
        return Meter({s: self.servers[s].proc.pid for s in servers}, dbs, self.redis_pid)

    def alive(self) -> list[str]:
        """Why each server that exited did (empty: all are running)."""
        return [
            f"{name} exited {r.proc.returncode}: {r.banner.decode(errors='replace')}"
            for name, r in self.servers.items()
            if r.proc.poll() is not None
        ]


# ---------------------------------------------------------------------------- clients


class Place(NamedTuple):
    """Where a client of a ``Fleet`` is: its name, its node's address, a label for
    that node (same-node vs cross-node deliveries) and the one room it is in."""

    name: str
    target: Address
    node: str
    room: str = LOBBY


@dataclass(eq=False)
class Peer:
    """One lean v2 client, on the node at ``target``, in one room."""

    index: int
    name: str
    node: str
    room: str
    target: Address
    sock: socket.socket
    nonce: str
    #: How its frames name the room: nothing for #lobby (docs/protocol.md).
    chan: bytes = b""
    sid: str = ""
    say_prefix: bytes = b""
    ack_prefix: bytes = b""
    seq: int = 0
    #: seq -> (the SAY as sent, when it was last sent): retried until ACKED.
    inflight: dict[int, tuple[bytes, float]] = field(default_factory=dict)
    backlog: int = 0
    upto: int = 0  # highest position of its room below which every event arrived
    above: set[int] = field(default_factory=set)  # positions above a gap
    unacked: int = 0
    ack_at: float | None = None


@dataclass
class Phase:
    """What one phase of a fleet sent and what arrived where."""

    senders: list[int]
    messages: int
    expected: int  # deliveries owed: each message to every other client
    #: sender -> the ks it sent, in order (k = the SAY's seq).
    sent: dict[int, list[int]] = field(default_factory=dict)
    #: (receiver, sender, k, position, latency_ns) per delivery.
    rows: list[tuple[int, int, int, int, int]] = field(default_factory=list)
    #: (sender, k) -> position, from the sender's ACKED.
    acked: dict[tuple[int, int], int] = field(default_factory=dict)
    keys: set[tuple[int, int, int]] = field(default_factory=set)
    duplicates: int = 0
    resent: int = 0  # SAYs sent again (no ACKED within SAY_RETRY)
    errors: list[bytes] = field(default_factory=list)
    first_send_ns: int = 0
    last_arrival_ns: int = 0
    timed_out: bool = False
    usage: Usage | None = None

    @property
    def delivered(self) -> int:
        return len(self.rows)

    @property
    def seconds(self) -> float:
        return max(0.0, (self.last_arrival_ns - self.first_send_ns) / 1e9)

    @property
    def deliveries_per_s(self) -> float:
        return self.delivered / self.seconds if self.seconds else 0.0

    @property
    def messages_per_s(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0


class Fleet:
    """Lean v2 clients in one epoll loop, placed as ``placement`` says, each in one
    room (the room it logs in to). ``run`` is one phase: some of them send, every
    other client in the sender's room receives."""

    def __init__(self, placement: Sequence[Place]) -> None:
        self._ep = select.epoll()
        self.peers: list[Peer] = []
        self._by_fd: dict[int, Peer] = {}
        self.phase: Phase | None = None
        try:
            for i, (name, target, node, room) in enumerate(placement):
                peer = Peer(i, name, node, room, target, stamped_socket(), f"n{i}")
                peer.chan = b"" if room == LOBBY else room.encode() + b" "
                self.peers.append(peer)
                self._by_fd[peer.sock.fileno()] = peer
                self._ep.register(peer.sock.fileno(), select.EPOLLIN)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self._ep.close()
        for peer in self.peers:
            peer.sock.close()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------- login, bye

    def login(self, timeout: float = 30.0) -> None:
        """Cookie login of every peer (LOGIN, COOKIE, LOGIN, WELCOME), retried every
        0.5 s; then read until the joins have all arrived."""
        cookies: dict[int, str | None] = {p.index: None for p in self.peers}
        pending = {p.index for p in self.peers}
        end = time.monotonic() + timeout
        while pending and time.monotonic() < end:
            for i in pending:
                p = self.peers[i]
                p.sock.sendto(encode_client(self._login(p, cookies[i])), p.target)
            stop = time.monotonic() + 0.5
            while pending and time.monotonic() < stop:
                for fd, _ in self._ep.poll(max(0.0, stop - time.monotonic())):
                    p = self._by_fd[fd]
                    for data, stamp in self._recv(p):
                        f = parse_server(data)
                        if isinstance(f, Cookie) and f.nonce == p.nonce:
                            cookies[p.index] = f.cookie
                            p.sock.sendto(encode_client(self._login(p, f.cookie)), p.target)
                        elif isinstance(f, Welcome) and f.nonce == p.nonce and not p.sid:
                            p.sid, p.upto = f.sid, f.last_id
                            p.say_prefix = f"v2 SAY {f.sid} ".encode() + p.chan
                            p.ack_prefix = f"v2 ACK {f.sid} ".encode() + p.chan
                            pending.discard(p.index)
                        elif isinstance(f, Refused):
                            raise RuntimeError(f"{p.name}: login refused: {f}")
                        elif p.sid:
                            self._handle(p, data, stamp, time.monotonic())
        if pending:
            raise RuntimeError(f"login did not complete: {[self.peers[i].name for i in pending]}")
        self.settle(quiet=0.1)

    @staticmethod
    def _login(p: Peer, cookie: str | None) -> Login:
        return Login(p.nonce, p.name, None, cookie, None if p.room == LOBBY else p.room)

    def settle(self, quiet: float = 0.3, timeout: float = 10.0) -> None:
        """Take (and acknowledge) whatever arrives until ``quiet`` seconds pass
        without input (joins of other peers, possibly on other nodes)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end and self._ep.poll(quiet):
            now = time.monotonic()
            for p in self.peers:
                for data, stamp in self._recv(p):
                    self._handle(p, data, stamp, now)
        self._flush_acks(time.monotonic(), force=True)

    def bye(self, timeout: float = 2.0) -> None:
        """``BYE`` from every peer, retried until answered (or ``timeout``)."""
        pending = {p.index for p in self.peers if p.sid}
        end = time.monotonic() + timeout
        while pending and time.monotonic() < end:
            for i in pending:
                p = self.peers[i]
                with contextlib.suppress(OSError):
                    p.sock.sendto(f"v2 BYE {p.sid}".encode(), p.target)
            stop = time.monotonic() + 0.25
            while pending and time.monotonic() < stop:
                for fd, _ in self._ep.poll(max(0.0, stop - time.monotonic())):
                    p = self._by_fd[fd]
                    if any(data == b"v2 BYE" for data, _ in self._recv(p)):
                        pending.discard(p.index)

    # -------------------------------------------------------------- a phase

    def run(
        self,
        senders: Sequence[int],
        per_sender: int,
        *,
        rate: float = 0.0,
        window: int = 16,
        timeout: float | None = None,
    ) -> Phase:
        """Each of ``senders`` sends ``per_sender`` lines: paced at ``rate`` lines/s
        in total (round robin over the senders), or, with ``rate`` 0, as fast as
        ``window`` unacknowledged lines per sender allow. Ends when every other
        peer has every line and every sender its ACKEDs, or at ``timeout`` (by
        default 10 s more than the lines need at ``rate``, or at 100 lines/s)."""
        total = per_sender * len(senders)
        owed = per_sender * sum(len(self.audience(s)) for s in senders)
        phase = Phase(list(senders), total, owed)
        phase.sent = {s: [] for s in senders}
        self.phase = phase
        chosen = [self.peers[s] for s in senders]
        for p in chosen:
            p.backlog = per_sender
        poll, by_fd, recv, handle = self._ep.poll, self._by_fd, self._recv, self._handle
        start = time.monotonic()
        if timeout is None:
            timeout = 10.0 + total / (rate or 100.0)
        end = start + timeout
        next_retry = start + SAY_RETRY / 4
        j = 0  # paced: the next line's number
        while True:
            now = time.monotonic()
            if rate:
                while j < total and start + j / rate <= now:
                    self._say(chosen[j % len(chosen)], now)
                    j += 1
            else:
                for p in chosen:
                    while p.backlog and len(p.inflight) < window:
                        self._say(p, now)
            if phase.delivered >= phase.expected and not any(
                p.backlog or p.inflight for p in chosen
            ):
                break
            if now >= end:
                phase.timed_out = True
                break
            wake = min(end, next_retry)
            if rate and j < total:
                wake = min(wake, start + j / rate)
            for p in self.peers:
                if p.ack_at is not None and p.ack_at < wake:
                    wake = p.ack_at
            for fd, _ in poll(max(0.0, wake - now)):
                p = by_fd[fd]
                arrived = time.monotonic()
                for data, stamp in recv(p):
                    handle(p, data, stamp, arrived)
            now = time.monotonic()
            self._flush_acks(now)
            if now >= next_retry:
                next_retry = now + SAY_RETRY / 4
                self._retry(chosen, now)
        for p in chosen:
            p.backlog = 0
        self._flush_acks(time.monotonic(), force=True)
        return phase

    def audience(self, sender: int) -> list[int]:
        """Who receives ``sender``'s lines: every other client in its room."""
        room = self.peers[sender].room
        return [p.index for p in self.peers if p.room == room and p.index != sender]

    def _say(self, p: Peer, now: float) -> None:
        phase = self.phase
        assert phase is not None
        p.backlog -= 1
        p.seq += 1
        line = p.say_prefix + f"{p.seq} {message_text(p.index, p.seq)}".encode()
        if not phase.first_send_ns:
            phase.first_send_ns = time.time_ns()
        phase.sent[p.index].append(p.seq)
        p.inflight[p.seq] = (line, now)
        with contextlib.suppress(OSError):
            p.sock.sendto(line, p.target)

    def _retry(self, chosen: Iterable[Peer], now: float) -> None:
        phase = self.phase
        assert phase is not None
        for p in chosen:
            for seq, (line, at) in list(p.inflight.items()):
                if now - at >= SAY_RETRY:
                    p.inflight[seq] = (line, now)
                    phase.resent += 1
                    with contextlib.suppress(OSError):
                        p.sock.sendto(line, p.target)

    # -------------------------------------------------------------- receiving

    def _recv(self, p: Peer) -> list[tuple[bytes, int]]:
        rows: list[tuple[bytes, int]] = []
        while True:
            try:
                data, anc, _flags, _addr = p.sock.recvmsg(2048, 64)
            except (BlockingIOError, InterruptedError):
                return rows
            except OSError:
                continue
            rows.append((data, kernel_stamp(anc)))

    def _handle(self, p: Peer, data: bytes, stamp: int, now: float) -> None:
        phase = self.phase
        if data.startswith(b"v2 EV "):
            # v2 EV [<chan>] <position> <ts_ms> <kind> <name> <text>; a frame of
            # #lobby names no conversation (docs/protocol.md).
            if not data.startswith(b"v2 EV " + p.chan):
                if phase is not None:
                    phase.errors.append(data[:80])  # a conversation it is not in
                return
            parts = (b"v2 EV " + data[6 + len(p.chan) :]).split(b" ", 6)
            if len(parts) != 7:
                if phase is not None:
                    phase.errors.append(data[:80])
                return
            pos = int(parts[2])
            if not self._take(p, pos, now) or parts[4] != b"message" or phase is None:
                return
            parsed = parse_text(parts[6])
            if parsed is None:
                return
            sender, k, sent_ns = parsed
            if sender == p.index:  # its own line as an EV (its ACKED was lost)
                p.inflight.pop(k, None)
                phase.acked[(sender, k)] = pos
                return
            key = (p.index, sender, k)
            if key in phase.keys:
                phase.duplicates += 1  # the same line at a second position
                return
            phase.keys.add(key)
            phase.rows.append((p.index, sender, k, pos, stamp - sent_ns))
            phase.last_arrival_ns = max(phase.last_arrival_ns, stamp)
        elif data.startswith(b"v2 ACKED "):
            parts = data.split(b" ")  # v2 ACKED <seq> [<chan>] <position> [<ts_ms>]
            if p.chan:
                del parts[3]
            seq, pos = int(parts[2]), int(parts[3])
            p.inflight.pop(seq, None)
            if len(parts) == 5:  # also the sender's copy of the event
                self._take(p, pos, now)
            if phase is not None:
                phase.acked[(p.index, seq)] = pos
        elif data.startswith((b"v2 ERR ", b"v2 REJECTED ")) and phase is not None:
            phase.errors.append(data[:80])

    def _take(self, p: Peer, pos: int, now: float) -> bool:
        """Count position ``pos`` for the cumulative ACK; False if already taken
        (a retransmission)."""
        if pos <= p.upto or pos in p.above:
            return False
        if pos == p.upto + 1:
            p.upto = pos
            while p.upto + 1 in p.above:
                p.upto += 1
                p.above.discard(p.upto)
        else:
            p.above.add(pos)
        p.unacked += 1
        if p.unacked >= ACK_EVERY:
            self._ack(p)
        elif p.ack_at is None:
            p.ack_at = now + ACK_DELAY
        return True

    def _ack(self, p: Peer) -> None:
        p.unacked = 0
        p.ack_at = None
        with contextlib.suppress(OSError):
            p.sock.sendto(p.ack_prefix + str(p.upto).encode(), p.target)

    def _flush_acks(self, now: float, force: bool = False) -> None:
        for p in self.peers:
            if p.unacked and (force or (p.ack_at is not None and now >= p.ack_at)):
                self._ack(p)


# ---------------------------------------------------------------------------- checks


def problems(fleet: Fleet, phase: Phase) -> list[str]:
    """What is wrong with a phase (empty: all is well): every other client in a
    sender's room must have had each of its lines exactly once, in the order it
    sent them, and every copy of a line (and its sender's ACKED) must name one
    position: the same order of the room on every node."""
    out: list[str] = []
    if phase.timed_out:
        out.append(f"timed out with {phase.delivered} of {phase.expected} deliveries")
    if phase.duplicates:
        out.append(f"{phase.duplicates} line(s) delivered at a second position")
    if phase.errors:
        out.append(f"errors: {phase.errors[:3]}")
    got: dict[tuple[int, int], list[tuple[int, int]]] = {}
    where: dict[tuple[int, int], set[int]] = {}
    for r, s, k, pos, _ in phase.rows:
        got.setdefault((r, s), []).append((pos, k))
        where.setdefault((s, k), set()).add(pos)
    for (s, k), pos in phase.acked.items():
        where.setdefault((s, k), set()).add(pos)
    for s, ks in phase.sent.items():
        for r in fleet.audience(s):
            order = [k for _, k in sorted(got.get((r, s), []))]
            if order != ks:
                missing = len(set(ks) - set(order))
                out.append(
                    f"receiver {r} from sender {s}: {len(order)} of {len(ks)} lines, "
                    f"{missing} missing, in order: {order == sorted(order)}"
                )
    split = [(sk, sorted(pos)) for sk, pos in where.items() if len(pos) > 1]
    if split:
        out.append(f"{len(split)} line(s) at different positions on different nodes: {split[:3]}")
    return out


# ---------------------------------------------------------------------------- figures


def latency_us(values: Sequence[int], q: float) -> float:
    """The q-quantile of latencies in ns, in µs (0.0 for none)."""
    return round(percentile(sorted(values), q) / 1e3, 1)


def phase_latencies(fleet: Fleet, phase: Phase) -> tuple[list[int], list[int]]:
    """(same-node, cross-node) latencies of a phase's deliveries."""
    same: list[int] = []
    cross: list[int] = []
    nodes = [p.node for p in fleet.peers]
    for r, s, _k, _pos, lat in phase.rows:
        (same if nodes[r] == nodes[s] else cross).append(lat)
    return same, cross


def _us(seconds: float, count: int) -> float:
    return round(seconds / count * 1e6, 1) if count else float("nan")


def cpu_figures(phases: Sequence[Phase]) -> dict[str, Any]:
    """CPU per message (stored line) and per delivery, pooled over phases: each
    node, all nodes, PostgreSQL's backends, Redis."""
    messages = sum(p.messages for p in phases)
    deliveries = sum(p.delivered for p in phases)
    usages = [p.usage for p in phases if p.usage is not None]
    nodes: dict[str, float] = {}
    for u in usages:
        for k, v in u.nodes.items():
            nodes[k] = nodes.get(k, 0.0) + v
    node_total = sum(nodes.values())
    wall = sum(u.wall for u in usages)
    return {
        "node_us_per_msg": _us(node_total, messages),
        "node_us_per_delivery": _us(node_total, deliveries),
        "per_node_us_per_msg": {k: _us(v, messages) for k, v in nodes.items()},
        "pg_us_per_msg": _us(sum(u.postgres for u in usages), messages),
        "redis_us_per_msg": _us(sum(u.redis for u in usages), messages),
        "node_cpu_share": round(node_total / wall, 2) if wall else 0.0,
        "pg_cpu_share": round(sum(u.postgres for u in usages) / wall, 2) if wall else 0.0,
        "client_cpu_share": round(sum(u.clients for u in usages) / wall, 2) if wall else 0.0,
        "machine_busy": round(sum(u.machine_busy * u.wall for u in usages) / wall, 2)
        if wall
        else 0.0,
    }


