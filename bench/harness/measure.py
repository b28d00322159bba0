"""What the benchmarks measure with: the kernel's arrival stamps, percentiles,
CPU time from /proc, and one measured round's numbers (``RoundStats``)."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Linux values (asm-generic/socket.h); Python's socket module does not export them.
SO_RCVBUFFORCE = 33
SO_TIMESTAMPNS = 35
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
TIMESPEC = struct.Struct("qq")
RCVBUF = 4 << 20
CLK_TCK = os.sysconf("SC_CLK_TCK")


def percentile(sorted_values: Sequence[int], q: float) -> int:
    """The q-quantile (0..1) of already sorted values, nearest rank."""
    if not sorted_values:
        return 0
    index = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def kernel_stamp(ancdata: list[tuple[int, int, bytes]]) -> int:
    """The kernel's arrival stamp of a datagram (``SO_TIMESTAMPNS``), in ns."""
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS:
            sec, nsec = TIMESPEC.unpack_from(data)
            return int(sec) * 1_000_000_000 + int(nsec)
    return time.time_ns()  # no stamp (should not happen): a late estimate


def stamped_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    with contextlib.suppress(OSError):  # SO_RCVBUFFORCE needs CAP_NET_ADMIN
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.setblocking(False)
    return sock


def cpu_seconds(pid: int) -> float:
    """CPU time all threads of a process and of its child processes have run so
    far, in seconds (from the scheduler's nanosecond accounting; 0.0 if the
    process is gone). The children count: the server's is its database writer
    (storage/writer.py), whose work is the server's."""
    total = 0
    children: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int((task / "schedstat").read_text().split()[0])
            with contextlib.suppress(OSError, ValueError):
                children += [int(c) for c in (task / "children").read_text().split()]
    return total / 1e9 + sum(cpu_seconds(c) for c in children)


def wakeups(pid: int) -> int:
    """Times a process's threads went to sleep and were woken (voluntary context
    switches): for the server, about one per turn of its loop that found nothing to
    do and waited."""
    total = 0
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError):
                for line in (task / "status").read_text().splitlines():
                    if line.startswith("voluntary_ctxt_switches:"):
                        total += int(line.split()[1])
    return total


def udp_drops(port: int) -> int:
    """Datagrams the kernel dropped for the UDP socket bound to ``port`` (full
    receive buffer), from /proc/net/udp; -1 if not found."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
            cols = line.split()
            if int(cols[1].split(":")[1], 16) == port:
                return int(cols[-1])
    return -1


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all cores (/proc/stat)."""
    with contextlib.suppress(OSError, ValueError):
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
        total = sum(ticks[:8])
        return (total - idle) / CLK_TCK, total / CLK_TCK
    return 0.0, 0.0


@dataclass
class RoundStats:
    """One measured round, from the kernel's arrival stamps: the fan-out rig's
    (bench/harness/fanout.py) and the fleets' (chatrig.py, v2load.py)."""

    dialect: str
    clients: int
    messages: int  # messages sent, all senders together
    expected: int  # deliveries owed: messages x (receivers of each)
    delivered: int
    duplicates: int
    seconds: float  # first send .. last arrival
    latencies_ns: list[int] = field(repr=False)
    server_cpu: float = 0.0  # CPU seconds the server process used during the round
    client_cpu: float = 0.0  # ... this (benchmark) process
    proxy_cpu: float = 0.0
    sends: int = 0  # message datagrams sent (SAY incl. retransmissions, or C)
    pulls: int = 0
    stalls: int = 0
    machine_busy: float = 0.0  # share of all the machine's cores busy (anyone's work)
    server_wakeups: int = 0  # the server waited for input and was woken this often
    #: v2: first send .. the last line acknowledged to its sender (0.0: unknown)
    stored_seconds: float = 0.0

    @property
    def stored_per_s(self) -> float:
        return self.messages / self.stored_seconds if self.stored_seconds > 0 else 0.0

    @property
    def messages_per_s(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0

    @property
    def deliveries_per_s(self) -> float:
        return self.delivered / self.seconds if self.seconds > 0 else 0.0

    @property
    def lost(self) -> int:
        return self.expected - self.delivered

    def latency_us(self, q: float) -> float:
        return percentile(self.latencies_ns, q) / 1e3

    def cpu_share(self, cpu: float) -> float:
        """CPU seconds as a share of the round's wall time (1.0 = one whole core)."""
        return cpu / self.seconds if self.seconds > 0 else 0.0


class CpuMeter:
    """CPU seconds of the server, the proxy, this process and the machine over a span."""

    def __init__(self, server: int, proxy: int | None = None) -> None:
        self.server, self.proxy = server, proxy
        self.start = self._now()

    def _now(self) -> tuple[float, float, float, float, float, int]:
        proxy = cpu_seconds(self.proxy) if self.proxy else 0.0
        busy, total = machine_busy()
        server = cpu_seconds(self.server)
        return server, cpu_seconds(os.getpid()), proxy, busy, total, wakeups(self.server)

    def stop(self, stats: RoundStats) -> RoundStats:
        end = self._now()
        stats.server_cpu = end[0] - self.start[0]
        stats.client_cpu = end[1] - self.start[1]
        stats.proxy_cpu = end[2] - self.start[2]
        total = end[4] - self.start[4]
        stats.machine_busy = (end[3] - self.start[3]) / total if total > 0 else 0.0
        stats.server_wakeups = end[5] - self.start[5]
        return stats
