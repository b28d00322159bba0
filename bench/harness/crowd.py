"""Thousands of lean v2 sessions in one room: logins, idle cost, fan-out (issue 12).

``CrowdFleet`` runs N sessions in one epoll loop, each on a UDP socket of its
own (the server tells sessions apart by address). Each one is protocol-correct
as our client is, with no rendering and no history replay:

- login: ``LOGIN`` padded to 256 bytes, the ``COOKIE``, ``LOGIN`` with the
  cookie, ``WELCOME``; retried after 0.5 s as the client does. At most
  ``concurrency`` logins are in flight (people do not all press Enter in the
  same millisecond; 512 is still a storm);
- the room's events in order: ``EV`` by id, ``SUM`` as its range, holes pulled
  (``PULL``) 0.1 s after they open (or a ``HEAD`` or ``PONG`` shows them),
  again after 0.5 s if the answer is lost;
- ``ACK``: cumulative, every 16 events or 0.2 s after the first unacknowledged
  one (the client's cadence), none in a large room (a ``SUM`` came, or a
  ``HEAD`` said ``nack``); a resent event is acknowledged again;
- ``SAY`` retried every 0.5 s until its ``ACKED`` (the same seq: stored once);
- ``PING`` every 0.25-0.33 of the idle timeout on the wall clock's heartbeat grid
  (chatroom/client/liveness.py, as the client), the first one at a random
  point of that period as in a server's steady state; a PING that no
  frame from the server follows within 1 s is sent again (backing off to 2 s),
  as the client's liveness probes do.

Messages carry their send time (``bench.harness.chatrig.message_text``); a
receiver's latency is the kernel's arrival stamp of the EV minus that.
"""

from __future__ import annotations

import contextlib
import random
import select
import socket
import time
from dataclasses import dataclass, field

from bench.harness.chatrig import parse_text
from bench.harness.measure import kernel_stamp, stamped_socket
from chatroom.client.liveness import heartbeat_grid, on_grid
from chatroom.protocol.codec import encode_client, parse_server
from chatroom.protocol.frames import (
    Acked,
    Cookie,
    EventFrame,
    Head,
    Login,
    Pong,
    Summary,
    Welcome,
)
from chatroom.registry import Address

ACK_EVERY = 16
ACK_DELAY = 0.2
GAP_DELAY = 0.1
PULL_RETRY = 0.5
LOGIN_RETRY = 0.5
SAY_RETRY = 0.5
PROBE_AFTER = 1.0
PROBE_MAX = 2.0
PAGE = 32


@dataclass(eq=False, slots=True)
class Member:
    index: int
    sock: socket.socket
    name: str
    nonce: str
    cookie: str | None = None
    sid: str = ""
    started: float = 0.0
    sent_at: float = 0.0
    welcomed: float = 0.0
    delivered: int = 0
    high: int = 0
    #: Ranges received past a hole: first id -> last id.
    ahead: dict[int, int] = field(default_factory=dict)
    acked: int = 0
    ack_due: float | None = None
    gap_since: float | None = None
    pulled_at: float = 0.0
    large: bool = False
    next_ping: float = 0.0
    #: A PING is unanswered: probe again at this time (None: nothing awaited).
    next_probe: float | None = None
    probe_gap: float = PROBE_AFTER
    #: Message texts received (the sender's mark -> latency in ns).
    got: dict[str, int] = field(default_factory=dict)
    #: Our SAYs not acknowledged yet: seq -> (text, when last sent).
    saying: dict[int, tuple[str, float]] = field(default_factory=dict)
    #: The newest id each HEAD and PONG showed (what a failed check prints).
    heads: list[int] = field(default_factory=list)


@dataclass(slots=True)
class LoginStats:
    total: float
    latencies: list[float]
    retries: int


class CrowdFleet:
    def __init__(self, n: int, target: Address, idle_timeout: float, *, prefix: str = "c") -> None:
        self.target = target
        self.idle_timeout = idle_timeout
        self.grid = heartbeat_grid(idle_timeout)
        self._ep = select.epoll()
        self.members: list[Member] = []
        self._by_fd: dict[int, Member] = {}
        self.stats = {"acks": 0, "pulls": 0, "pings": 0, "evs": 0, "sums": 0, "heads": 0}
        self._rng = random.Random(7)
        try:
            for i in range(n):
                m = Member(i, stamped_socket(), f"{prefix}{i}", f"n{i}")
                self.members.append(m)
                self._by_fd[m.sock.fileno()] = m
                self._ep.register(m.sock.fileno(), select.EPOLLIN)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for m in self.members:
            with contextlib.suppress(OSError):
                m.sock.close()
        self._ep.close()

    def addresses(self) -> list[Address]:
        return [m.sock.getsockname() for m in self.members]

    # ------------------------------------------------------------------ login

    def _send_login(self, m: Member, now: float) -> None:
        m.sent_at = now
        m.sock.sendto(encode_client(Login(m.nonce, m.name, None, m.cookie)), self.target)

    def login_all(self, concurrency: int = 512, timeout: float = 300.0) -> LoginStats:
        """Log every member in; at most ``concurrency`` at a time."""
        start = time.monotonic()
        waiting = list(reversed(self.members))
        inflight: set[Member] = set()
        retries = 0
        latencies: list[float] = []
        beat = start
        while waiting or inflight:
            now = time.monotonic()
            if now - start > timeout:
                raise TimeoutError(f"{len(waiting) + len(inflight)} logins unanswered")
            while waiting and len(inflight) < concurrency:
                m = waiting.pop()
                m.started = now
                inflight.add(m)
                self._send_login(m, now)
            for m in [m for m in inflight if now - m.sent_at >= LOGIN_RETRY]:
                retries += 1
                self._send_login(m, now)
            if now >= beat:  # those logged in heartbeat meanwhile
                self._timers(now)
                beat = now + 0.1
            for m in self._poll(0.05):
                if m.sid and m in inflight:
                    inflight.discard(m)
                    latencies.append(m.welcomed - m.started)
                    first = m.welcomed + self._rng.uniform(0, self.idle_timeout / 3)
                    m.next_ping = on_grid(first, time.time() - time.monotonic(), self.grid)
        return LoginStats(time.monotonic() - start, latencies, retries)

    # ------------------------------------------------------------------ running

    def pump(self, seconds: float, until: object = None) -> None:
        """Run the sessions for ``seconds`` (or until ``until()`` is true)."""
        end = time.monotonic() + seconds
        while (now := time.monotonic()) < end:
            if until is not None and until():  # type: ignore[operator]
                return
            self._timers(now)
            self._poll(min(0.02, max(0.0, end - now)))

    def _timers(self, now: float) -> None:
        wall = time.time()
        for m in self.members:
            if not m.sid:
                continue
            if m.ack_due is not None and now >= m.ack_due:
                self._ack(m)
            if m.high > m.delivered and m.gap_since is not None:
                due = m.gap_since + GAP_DELAY
                if now >= due and now - m.pulled_at >= PULL_RETRY:
                    self._pull(m, now)
            for seq, (text, sent) in list(m.saying.items()):
                if now - sent >= SAY_RETRY:
                    self.say(m, seq, text)
            if now >= m.next_ping:
                gap = self.idle_timeout * self._rng.uniform(0.25, 1 / 3)
                m.next_ping = on_grid(now + gap, wall - now, self.grid)
                if m.next_probe is None:
                    m.next_probe, m.probe_gap = now + PROBE_AFTER, PROBE_AFTER
                self._ping(m)
            elif m.next_probe is not None and now >= m.next_probe:
                m.probe_gap = min(m.probe_gap * 2, PROBE_MAX)
                m.next_probe = now + m.probe_gap
                self._ping(m)

    def _ping(self, m: Member) -> None:
        self.stats["pings"] += 1
        m.sock.sendto(b"v2 PING %s %d" % (m.sid.encode(), m.delivered), self.target)

    def paced_pings(self, target: Address, rate: float, seconds: float) -> int:
        """PINGs at ``rate`` a second to ``target``, from the members in turn,
        on the heartbeat grid as the members' own (which go on as usual); how
        many were sent."""
        start = time.monotonic()
        offset = time.time() - start
        sent = 0
        while (now := time.monotonic()) - start < seconds:
            due = on_grid(now, offset, self.grid)
            if due - now > 0.002:
                self._timers(now)
                self._poll(min(0.02, due - now - 0.001))
                continue
            while sent < (due - start) * rate:
                m = self.members[sent % len(self.members)]
                m.sock.sendto(b"v2 PING %s %d" % (m.sid.encode(), m.delivered), target)
                sent += 1
            self._poll(0.003)
        return sent

    def say(self, m: Member, seq: int, text: str) -> None:
        m.saying[seq] = (text, time.monotonic())
        m.sock.sendto(f"v2 SAY {m.sid} {seq} {text}".encode(), self.target)

    # ------------------------------------------------------------------ receiving

    def _poll(self, timeout: float) -> list[Member]:
        """Read what arrived; returns the members that got anything."""
        touched: list[Member] = []
        for fd, _ in self._ep.poll(timeout):
            m = self._by_fd[fd]
            touched.append(m)
            while True:
                try:
                    data, anc, _, _ = m.sock.recvmsg(2048, 64)
                except BlockingIOError:
                    break
                self._frame(m, data, anc)
        return touched

    def _frame(self, m: Member, data: bytes, anc: list[tuple[int, int, bytes]]) -> None:
        now = time.monotonic()
        frame = parse_server(data)
        m.next_probe = None  # the server answers: the path works
        match frame:
            case EventFrame(event=ev):
                self.stats["evs"] += 1
                if ev.kind == "message":
                    mark = parse_text(ev.text.encode())
                    if mark is not None:
                        m.got.setdefault(ev.text, kernel_stamp(anc) - mark[2])
                self._range(m, ev.room_seq, ev.room_seq, now)
            case Summary(first=first, last=last):
                self.stats["sums"] += 1
                m.large, m.ack_due = True, None  # only a large room sends them
                self._range(m, first, last, now)
            case Head(last_id=last, mode=mode):
                self.stats["heads"] += 1
                m.large = mode == "nack"
                if m.large:
                    m.ack_due = None
                m.heads.append(last)
                self._learn(m, last, now)
            case Pong(last_id=last):
                m.heads.append(-last)
                self._learn(m, last, now)
            case Acked(seq=seq, id=pos):
                m.saying.pop(seq, None)
                self._range(m, pos, pos, now)  # its copy of its own message
            case Cookie(cookie=cookie):
                m.cookie = cookie
                self._send_login(m, now)
            case Welcome(sid=sid, last_id=last):
                if not m.sid:
                    m.sid, m.welcomed = sid, now
                    m.delivered = m.high = m.acked = last

    @staticmethod
    def _learn(m: Member, last: int, now: float) -> None:
        """The server says ids up to ``last`` exist: pull what we lack after
        the gap delay (its datagrams may still be on their way), as the client
        does."""
        m.high = max(m.high, last)
        if m.high > m.delivered and m.gap_since is None:
            m.gap_since = now

    def _range(self, m: Member, first: int, last: int, now: float) -> None:
        if last <= m.delivered:
            if not m.large and last <= m.acked:
                self._ack(m)  # a resend: our ACK was lost
            return
        if first <= m.delivered + 1:
            m.delivered = last
            while (nxt := m.ahead.pop(m.delivered + 1, None)) is not None:
                m.delivered = max(m.delivered, nxt)
        else:
            m.ahead[first] = max(last, m.ahead.get(first, 0))
        m.high = max(m.high, last)
        m.gap_since = (m.gap_since or now) if m.high > m.delivered else None
        if not m.large and m.delivered > m.acked:
            if m.delivered - m.acked >= ACK_EVERY:
                self._ack(m)
            elif m.ack_due is None:
                m.ack_due = now + ACK_DELAY

    def _ack(self, m: Member) -> None:
        m.ack_due = None
        m.acked = m.delivered
        self.stats["acks"] += 1
        m.sock.sendto(b"v2 ACK %s %d" % (m.sid.encode(), m.delivered), self.target)

    def _pull(self, m: Member, now: float) -> None:
        m.pulled_at = now
        self.stats["pulls"] += 1
        limit = min(PAGE, m.high - m.delivered)
        m.sock.sendto(b"v2 PULL %s %d %d" % (m.sid.encode(), m.delivered, limit), self.target)
