"""A lean v2 load generator: the v2 server's capacity, not our client's (issue 4).

bench/harness/chatrig.py ``V2Fleet`` runs the real client state machine, which costs more
CPU per message than the server does; on 2 shared cores that fleet, not the server,
limits the v2 figure. ``LeanV2Fleet`` speaks the same protocol with no client-side
work beyond what the protocol requires, all clients in one epoll loop:

- login as docs/protocol.md says: ``LOGIN`` padded to 256 bytes, the server's
  ``COOKIE``, ``LOGIN`` again with the cookie, ``WELCOME`` (retried every 0.5 s);
- ``SAY sid seq text`` with up to ``window`` unacknowledged lines per sender; a
  line leaves flight on its ``ACKED`` (or on its own ``EV``, should the server
  retransmit one before the ACKED arrives);
- every ``EV``, and the ``ACKED seq id ts`` that is a sender's copy of its own
  line, is taken once by id (a server retransmission is ignored), and a cumulative
  ``ACK sid upto`` goes out every ``ACK_EVERY`` events (the real client's
  ``ack_every``) and when the loop is idle (the real client's 200 ms ack delay,
  shortened: nothing is owed when a round ends);
- no ordering, no rendering, no PULLs (at 0% loss on loopback nothing is missing).

With a window above 1 the server may store a sender's lines out of typed order,
but only if one is lost and retried; at 0% loss, where this generator is used,
the order is the typed one, and a load generator does not care.

Texts and latency as in bench/harness/chatrig.py: ``m <sender> <k> <t_ns>``, latency = the
kernel's arrival stamp of the EV minus ``t_ns``.

Many small rooms (``room_size``): client ``i`` logs in straight into ``#g<i // room_size>``
(the LOGIN's room) and speaks there (``SAY sid #g.. seq``, ``ACK sid #g.. upto``);
``round(..., senders=...)`` lets only some clients send (one per room: the rooms row of
bench/test_bench_fanout.py). The same fleet measures the bare relay in its ``--routes``
mode (bench/procs/bare_relay.py), which forwards each SAY as it is to the sender's room:
a SAY that arrives at a client is a delivery, and takes the line out of its sender's
flight, as an ACKED would (``relayed``).
"""

from __future__ import annotations

import contextlib
import select
import socket
import time
from dataclasses import dataclass, field

from bench.harness.chatrig import Deliveries, message_text, parse_text
from bench.harness.measure import RoundStats, kernel_stamp, stamped_socket
from chatroom.client.session import SessionConfig
from chatroom.protocol.codec import encode_client, parse_server
from chatroom.protocol.frames import Cookie, Login, Refused, Welcome
from chatroom.registry import Address

#: The real client's cadence (its ``SessionConfig.ack_every``).
ACK_EVERY = SessionConfig().ack_every


@dataclass(eq=False)
class LeanClient:
    index: int
    name: str
    sock: socket.socket
    nonce: str
    sid: str = ""
    say_prefix: bytes = b""
    ack_prefix: bytes = b""
    seq: int = 0
    inflight: set[int] = field(default_factory=set)
    backlog: int = 0
    upto: int = 0  # highest id below which every event arrived
    above: set[int] = field(default_factory=set)  # ids above a gap
    unacked: int = 0
    room: str | None = None  # None: the lobby (frames without a conversation field)


class LeanV2Fleet:
    def __init__(
        self, n: int, target: Address, *, prefix: str = "l", room_size: int | None = None
    ) -> None:
        self.target = target
        self._ep = select.epoll()
        self.clients: list[LeanClient] = []
        self._by_fd: dict[int, LeanClient] = {}
        self.deliveries = Deliveries(n)
        self.sends = 0
        self.errors = 0
        self._window = 1
        try:
            for i in range(n):
                c = LeanClient(i, f"{prefix}{i:02d}", stamped_socket(), f"n{i}")
                if room_size is not None:
                    c.room = f"#g{i // room_size}"
                self.clients.append(c)
                self._by_fd[c.sock.fileno()] = c
                self._ep.register(c.sock.fileno(), select.EPOLLIN)
        except BaseException:
            self.close()
            raise

    @property
    def addresses(self) -> list[Address]:
        return [c.sock.getsockname()[:2] for c in self.clients]

    def rooms(self) -> dict[str, list[LeanClient]]:
        """The clients of each room, in index order (the first one: its sender)."""
        out: dict[str, list[LeanClient]] = {}
        for c in self.clients:
            out.setdefault(c.room or "#lobby", []).append(c)
        return out

    def close(self) -> None:
        self._ep.close()
        for c in self.clients:
            c.sock.close()

    def __enter__(self) -> LeanV2Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _recv(self, c: LeanClient) -> list[tuple[bytes, int]]:
        rows = []
        while True:
            try:
                data, anc, _flags, _addr = c.sock.recvmsg(2048, 64)
            except (BlockingIOError, InterruptedError):
                return rows
            except OSError:
                continue
            rows.append((data, kernel_stamp(anc)))

    # -------------------------------------------------------------- login

    def login(self, timeout: float = 30.0) -> None:
        cookies: dict[int, str | None] = {c.index: None for c in self.clients}
        pending = {c.index for c in self.clients}
        end = time.monotonic() + timeout
        while pending and time.monotonic() < end:
            for i in pending:
                c = self.clients[i]
                frame = Login(c.nonce, c.name, None, cookies[i], c.room)
                c.sock.sendto(encode_client(frame), self.target)
            stop = time.monotonic() + 0.5
            while pending and time.monotonic() < stop:
                for fd, _ in self._ep.poll(max(0.0, stop - time.monotonic())):
                    c = self._by_fd[fd]
                    for data, _ in self._recv(c):
                        f = parse_server(data)
                        if isinstance(f, Cookie) and f.nonce == c.nonce:
                            cookies[c.index] = f.cookie
                            login = Login(c.nonce, c.name, None, f.cookie, c.room)
                            c.sock.sendto(encode_client(login), self.target)
                        elif isinstance(f, Welcome) and f.nonce == c.nonce:
                            c.sid = f.sid
                            c.upto = f.last_id
                            chan = f"{c.room} " if c.room else ""
                            c.say_prefix = f"v2 SAY {f.sid} {chan}".encode()
                            c.ack_prefix = f"v2 ACK {f.sid} {chan}".encode()
                            pending.discard(c.index)
                        elif isinstance(f, Refused):
                            raise RuntimeError(f"{c.name}: login refused: {f}")
                        elif c.sid:
                            self._handle(c, data, 0)
        if pending:
            raise RuntimeError(f"lean login did not complete: {sorted(pending)}")
        self.settle()

    def settle(self, quiet: float = 0.3) -> None:
        """Take (and ack) whatever arrives until ``quiet`` seconds pass without input."""
        while self._ep.poll(quiet):
            for c in self.clients:
                for data, stamp in self._recv(c):
                    self._handle(c, data, stamp)
            self._ack_all()
        self._ack_all()

    # -------------------------------------------------------------- the hot path

    def _handle(self, c: LeanClient, data: bytes, stamp: int) -> None:
        if data.startswith(b"v2 EV "):
            if c.room is not None and data.startswith(b"v2 EV #"):
                data = b"v2 EV " + data.split(b" ", 3)[3]  # one room each: drop its name
            parts = data.split(b" ", 6)
            if len(parts) != 7:
                self.errors += 1
                return
            if not self._take(c, int(parts[2])):
                return  # a retransmission: already taken
            if parts[4] != b"message":
                return
            parsed = parse_text(parts[6])
            if parsed is None:
                return
            sender, k, sent = parsed
            if sender == c.index:
                c.inflight.discard(k)  # its own EV: the line is stored
            else:
                self.deliveries.add(c.index, sender, k, sent, stamp or time.time_ns())
        elif data.startswith(b"v2 ACKED "):
            parts = data.split(b" ")
            if c.room is not None and len(parts) > 3 and parts[3].startswith(b"#"):
                del parts[3]
            c.inflight.discard(int(parts[2]))
            if len(parts) == 5:  # with its time: our copy of the event (no EV comes)
                self._take(c, int(parts[3]))
        elif data.startswith(b"v2 SAY "):
            self.relayed(c, data, stamp)
        elif data.startswith(b"v2 ERR "):
            self.errors += 1

    def relayed(self, c: LeanClient, data: bytes, stamp: int) -> None:
        """A SAY forwarded by the bare relay: a delivery, and its sender's line
        leaves flight (the relay has no ACKED to send)."""
        parsed = parse_text(data)
        if parsed is None:
            self.errors += 1
            return
        sender, k, sent = parsed
        self.deliveries.add(c.index, sender, k, sent, stamp or time.time_ns())
        owner = self.clients[sender]
        if k in owner.inflight:
            owner.inflight.discard(k)
            self._feed(owner, self._window)

    def _take(self, c: LeanClient, ev: int) -> bool:
        """Count event ``ev`` in the cumulative ACK; False if it was already taken."""
        if ev <= c.upto or ev in c.above:
            return False
        if ev == c.upto + 1:
            c.upto = ev
            above = c.above
            while c.upto + 1 in above:
                c.upto += 1
                above.discard(c.upto)
        else:
            c.above.add(ev)
        c.unacked += 1
        if c.unacked >= ACK_EVERY:
            self._ack(c)
        return True

    def _ack(self, c: LeanClient) -> None:
        c.unacked = 0
        with contextlib.suppress(OSError):
            c.sock.sendto(c.ack_prefix + str(c.upto).encode(), self.target)

    def _ack_all(self) -> None:
        for c in self.clients:
            if c.unacked:
                self._ack(c)

    def _feed(self, c: LeanClient, window: int) -> None:
        while c.backlog and len(c.inflight) < window:
            c.backlog -= 1
            c.seq += 1
            c.inflight.add(c.seq)
            self.sends += 1
            line = c.say_prefix + f"{c.seq} {message_text(c.index, c.seq)}".encode()
            with contextlib.suppress(OSError):
                c.sock.sendto(line, self.target)

    def round(
        self,
        per_sender: int,
        window: int,
        timeout: float = 120.0,
        *,
        senders: list[LeanClient] | None = None,
        target: Address | None = None,
    ) -> RoundStats:
        """Each of ``senders`` (default: every client) sends ``per_sender`` lines,
        ``window`` unacknowledged at most, until every other client of its room has
        every line. ``target``: where the lines go this round (default: the server
        the fleet logged in to; the bare relay's address for its rounds)."""
        n = len(self.clients)
        rec = self.deliveries = Deliveries(n)
        self.sends = 0
        self._window = window
        senders = self.clients if senders is None else senders
        rooms = self.rooms()
        expected = per_sender * sum(len(rooms[c.room or "#lobby"]) - 1 for c in senders)
        server, self.target = self.target, target or self.target
        rec.first_send_ns = time.time_ns()
        for c in senders:
            c.backlog = per_sender
            c.inflight.clear()
            self._feed(c, window)
        stored_ns = 0
        end = time.monotonic() + timeout
        poll, by_fd, recv, handle = self._ep.poll, self._by_fd, self._recv, self._handle
        while rec.count < expected and time.monotonic() < end:
            events = poll(0.02)
            if not events:
                self._ack_all()  # the idle ack: the tail of a round
                continue
            for fd, _ in events:
                c = by_fd[fd]
                for data, stamp in recv(c):
                    handle(c, data, stamp)
                self._feed(c, window)
            if not stored_ns and all(not c.backlog and not c.inflight for c in senders):
                stored_ns = time.time_ns()
        for c in self.clients:
            c.backlog = 0
        self.target = server
        stats = RoundStats(
            "v2 lean",
            n,
            per_sender * len(senders),
            expected,
            rec.count,
            rec.duplicates,
            (rec.last_arrival_ns - rec.first_send_ns) / 1e9,
            sorted(rec.latencies_ns),
            sends=self.sends,
            stored_seconds=(stored_ns - rec.first_send_ns) / 1e9 if stored_ns else 0.0,
        )
        self.settle(quiet=0.1)
        return stats
