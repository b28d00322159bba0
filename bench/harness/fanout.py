"""The end-to-end fan-out rig: receivers, a flow-controlled sender, kernel timestamps.

Everything the client side of bench/test_bench_fanout.py needs, usable from a REPL
or a profiling script too::

    with Rig(100) as rig, Relay.server(db, "indexed") as srv:
        rig.login(srv.addr)
        stats = rig.measure(srv.addr, messages=2000, window=rig.window)

How a round is measured (the design is chosen for a 2-core machine):

- ``N`` receivers are classic-dialect UDP sockets in this process. They log in with
  ``L name`` and then do **not** read during the round: each one's receive buffer
  (``SO_RCVBUFFORCE``, as root) holds every datagram of a round, and the kernel
  stamps each datagram's arrival (``SO_TIMESTAMPNS``, CLOCK_REALTIME). After the
  round they are drained with ``recvmsg``. So the only processes competing for the
  two cores during a round are the relay under test and the sender.
- The sender (also in this process; it joins last) sends ``C sender <seq> <t_ns>`` as fast as it
  may, where ``t_ns`` is ``time.time_ns()`` (CLOCK_REALTIME, the kernel stamps' clock)
  just before the ``sendto``. "As fast as it may": at most ``window`` messages in
  flight. The last receiver to log in (the *probe*) is last in the fan-out order, and
  is the only socket read during the round: when it has message ``s``, the relay has
  finished sending ``s`` to everyone, so the sender may send ``s + window``. This keeps
  the relay busy all the time without ever overflowing its own input queue, which
  plain open-loop sending would do within milliseconds (UDP has no back-pressure).
- latency = kernel arrival time at a receiver - the send time in the text;
  deliveries/s = datagrams delivered / (last arrival - first send); lost = messages x
  N - delivered (nothing is retransmitted in the classic dialect).

``window`` is sized in deliveries (``WINDOW_DELIVERIES / N`` messages), so the
queueing in a loaded round is about the same amount of work at every N: the loaded
latency is mostly that queue. ``window=1`` (one message in flight) measures the
latency of the fan-out itself, without queueing.
"""

from __future__ import annotations

import contextlib
import select
import socket
import time
from dataclasses import dataclass
from types import TracebackType

from bench.harness.measure import (
    SO_RCVBUFFORCE,
    SO_TIMESTAMPNS,
    RoundStats,
    kernel_stamp,
)

#: Kernel memory one small datagram takes in a receive queue (skb truesize, measured
#: ~832 B on loopback); buffers are sized with this and some slack.
DATAGRAM_TRUESIZE = 1024
#: Messages in flight x N: about this many deliveries queued at any time.
WINDOW_DELIVERIES = 2048
#: How long the sender waits for the probe before giving up on a lost datagram.
STALL_TIMEOUT = 2.0


def window_for(n: int) -> int:
    """Messages in flight for ``n`` receivers (at least 2: the relay never starves)."""
    return max(2, min(256, WINDOW_DELIVERIES // n))


# ---------------------------------------------------------------------------- relays


# ---------------------------------------------------------------------------- results


@dataclass
class _Round:
    seq0: int
    count: int
    first_send_ns: int
    stalls: int
    probe_rows: list[tuple[int, bytes]]


# ---------------------------------------------------------------------------- the rig


class Rig:
    """N receivers + one sender, all bound to 127.0.0.1, in this process."""

    def __init__(self, n: int, max_messages: int = 1) -> None:
        self.n = n
        self.window = window_for(n)
        self._next_seq = 0
        self.receivers: list[socket.socket] = []
        self.sender = _udp()
        try:
            for _ in range(n):
                sock = _udp()
                self.receivers.append(sock)
                # The kernel doubles the value; half of it is for its bookkeeping.
                wanted = max(1 << 20, (max_messages + 64) * DATAGRAM_TRUESIZE)
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, wanted)
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except BaseException:
            self.close()
            raise

    @property
    def probe(self) -> socket.socket:
        return self.receivers[-1]

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """Receiver addresses in login (= fan-out) order; the probe last."""
        return [s.getsockname() for s in self.receivers]

    def close(self) -> None:
        for sock in [self.sender, *self.receivers]:
            sock.close()

    def __enter__(self) -> Rig:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -------------------------------------------------------------- setup

    def login(self, server: tuple[str, int], timeout: float = 5.0) -> None:
        """Log every receiver in order, then the sender, into a chatroom server (classic
        dialect), then discard the join notices that logging in produced.

        The sender joins last so that a registry that scans (list, linked, and dict by
        address) walks past every receiver to find it on each message: the worst case,
        where joining first would make the scan end at the first element."""
        for i, sock in enumerate([*self.receivers, self.sender]):
            name = "sender" if sock is self.sender else f"r{i:05d}"
            sock.sendto(f"L {name}".encode(), server)
            sock.settimeout(timeout)
            reply, _ = sock.recvfrom(2048)
            if reply != b"OK":
                raise RuntimeError(f"login {name}: {reply!r}")
        self.settle(server)

    def settle(self, target: tuple[str, int]) -> None:
        """Wait until everything the relay had queued has arrived, then discard it all.

        A marker message (seq -1) goes through the relay; it reaches the probe after
        every datagram sent before it, so the receive queues then hold it all."""
        self.sender.sendto(b"C sender -1 0", target)
        deadline = time.monotonic() + 30
        marker = False
        while not marker and time.monotonic() < deadline:
            ready, _, _ = select.select([self.probe], [], [], 1.0)
            if ready:
                data = self.probe.recv(2048)
                marker = data.endswith(b" -1 0")
        if not marker:
            raise RuntimeError("the relay did not pass the marker message on")
        for sock in [self.sender, *self.receivers]:
            _discard(sock)

    # -------------------------------------------------------------- a round

    def blast(self, target: tuple[str, int], count: int, window: int) -> _Round:
        """Send ``count`` messages with at most ``window`` in flight; return when the
        probe has the last one (or gave up waiting). The part a benchmark times."""
        seq0 = self._next_seq
        self._next_seq += count
        end = seq0 + count
        probe = self.probe
        probe.setblocking(False)
        sendto = self.sender.sendto
        recvmsg = probe.recvmsg
        rows: list[tuple[int, bytes]] = []
        poller = select.poll()
        poller.register(probe, select.POLLIN)
        sent = done = seq0  # next seq to send; first seq not yet seen by the probe
        stalls = 0
        first_send_ns = time.time_ns()
        while done < end:
            limit = min(end, done + window)
            while sent < limit:
                sendto(b"C sender %d %d" % (sent, time.time_ns()), target)
                sent += 1
            if not poller.poll(STALL_TIMEOUT * 1000):
                stalls += 1  # the probe's copy was lost: stop waiting for it
                done = sent
                continue
            while True:
                try:
                    data, anc, _flags, _addr = recvmsg(256, 64)
                except BlockingIOError:
                    break
                rows.append((kernel_stamp(anc), data))
                seq = _seq_of(data)
                if seq is not None and seq >= done:
                    done = seq + 1
        return _Round(seq0, count, first_send_ns, stalls, rows)

    def collect(self, rnd: _Round) -> RoundStats:
        """Drain every receiver (untimed) and compute the round's numbers."""
        lo, hi = rnd.seq0, rnd.seq0 + rnd.count
        latencies: list[int] = []
        last = rnd.first_send_ns
        for sock in self.receivers[:-1]:
            rows = _drain(sock)
            last = max(last, _account(rows, lo, hi, latencies))
        last = max(last, _account(rnd.probe_rows + _drain(self.probe), lo, hi, latencies))
        latencies.sort()
        return RoundStats(
            dialect="classic",
            clients=self.n,  # the receivers; the sender is not counted
            messages=rnd.count,
            expected=rnd.count * self.n,
            delivered=len(latencies),
            duplicates=0,
            seconds=(last - rnd.first_send_ns) / 1e9,
            latencies_ns=latencies,
            stalls=rnd.stalls,
        )

    def measure(self, target: tuple[str, int], messages: int, window: int) -> RoundStats:
        return self.collect(self.blast(target, messages, window))


# ---------------------------------------------------------------------------- helpers


def _udp() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def _seq_of(data: bytes) -> int | None:
    """The seq in ``... <seq> <t_ns>`` (the server's ``sender : 12 169...`` or the bare
    relay's verbatim ``C sender 12 169...``); None for anything else."""
    parts = data.rsplit(b" ", 2)
    if len(parts) != 3:
        return None
    try:
        return int(parts[1])
    except ValueError:
        return None


def _drain(sock: socket.socket) -> list[tuple[int, bytes]]:
    sock.setblocking(False)
    recvmsg = sock.recvmsg
    rows: list[tuple[int, bytes]] = []
    while True:
        try:
            data, anc, _flags, _addr = recvmsg(256, 64)
        except BlockingIOError:
            return rows
        rows.append((kernel_stamp(anc), data))


def _discard(sock: socket.socket) -> None:
    sock.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        while True:
            sock.recv(2048)


def _account(rows: list[tuple[int, bytes]], lo: int, hi: int, out: list[int]) -> int:
    """Append the latency of each datagram of seqs [lo, hi); return the last arrival."""
    last = 0
    for arrival, data in rows:
        parts = data.rsplit(b" ", 2)
        try:
            seq, sent = int(parts[1]), int(parts[2])
        except (IndexError, ValueError):
            continue
        if lo <= seq < hi:
            out.append(arrival - sent)
            last = max(last, arrival)
    return last
