"""A seeded, lossy UDP proxy, for the reliability tests and the benchmarks.

Clients talk to the proxy; for each client address the proxy opens its own
upstream socket, so the server sees one distinct address per client. Each
direction independently drops, duplicates, delays (with jitter, which reorders)
and can be blacked out for a while. Everything is driven by one seeded RNG, so a
failing run can be replayed. It runs in a daemon thread and stops with ``close``.

As a process of its own, for the benchmarks (so that its forwarding does not
take the GIL from the clients it sits in front of)::

    python -m testkit.lossy_proxy HOST PORT [--drop P] [--seed S]

forwards to the server at HOST:PORT, dropping each datagram with probability P
in each direction, prints ``listening on udp://HOST:PORT`` (the server's banner,
so it starts like a server: testkit/processes.py) and on SIGTERM its counters as
one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import itertools
import json
import random
import selectors
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from chatroom.registry import Address


@dataclass
class Impairment:
    """What happens to datagrams in one direction."""

    drop: float = 0.0
    duplicate: float = 0.0
    delay: float = 0.0
    jitter: float = 0.0
    #: Drop the first N datagrams for which this returns the same non-None key
    #: (e.g. the first 3 ACKED frames of every message).
    drop_first_key: Callable[[bytes], object] | None = None
    drop_first_count: int = 0


class LossyProxy:
    def __init__(
        self,
        server: Address,
        *,
        up: Impairment | None = None,
        down: Impairment | None = None,
        seed: int = 1,
    ) -> None:
        self.server = server
        self.up = up or Impairment()
        self.down = down or Impairment()
        self.rng = random.Random(seed)
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.front.setblocking(False)
        self.address: Address = self.front.getsockname()
        self._upstream: dict[Address, socket.socket] = {}
        self._client_of: dict[socket.socket, Address] = {}
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.front, selectors.EVENT_READ, None)
        self._queue: list[tuple[float, int, socket.socket, bytes, Address]] = []
        self._order = itertools.count()
        self._blackout_until = 0.0
        self._prefix_drops: dict[object, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.counts = {"up": 0, "down": 0, "dropped": 0, "duplicated": 0}
        #: Every datagram the server sent towards clients, dropped or not.
        self.downstream: list[bytes] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def blackout(self, seconds: float) -> None:
        """Drop everything, both ways, for ``seconds`` from now."""
        with self._lock:
            self._blackout_until = time.monotonic() + seconds

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sel.close()
        self.front.close()
        for sock in self._upstream.values():
            sock.close()

    # ------------------------------------------------------------------ internals

    def _run(self) -> None:
        while not self._stop.is_set():
            timeout = 0.05
            if self._queue:
                timeout = max(0.0, min(timeout, self._queue[0][0] - time.monotonic()))
            for key, _ in self._sel.select(timeout):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                self._read(sock)
            now = time.monotonic()
            while self._queue and self._queue[0][0] <= now:
                _, _, out, data, dest = heapq.heappop(self._queue)
                with contextlib.suppress(OSError):
                    out.sendto(data, dest)

    def _read(self, sock: socket.socket) -> None:
        while True:
            try:
                data, src = sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if sock is self.front:
                self.counts["up"] += 1
                self._forward(data, self._upstream_for(src), self.server, self.up)
            else:
                self.counts["down"] += 1
                self.downstream.append(data)
                self._forward(data, self.front, self._client_of[sock], self.down)

    def _upstream_for(self, client: Address) -> socket.socket:
        sock = self._upstream.get(client)
        if sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            sock.setblocking(False)
            self._upstream[client] = sock
            self._client_of[sock] = client
            self._sel.register(sock, selectors.EVENT_READ, None)
        return sock

    def _forward(self, data: bytes, out: socket.socket, dest: Address, imp: Impairment) -> None:
        now = time.monotonic()
        with self._lock:
            blackout = now < self._blackout_until
        if blackout or self.rng.random() < imp.drop:
            self.counts["dropped"] += 1
            return
        key = imp.drop_first_key(data) if imp.drop_first_key is not None else None
        if key is not None:
            seen = self._prefix_drops.get(key, 0)
            self._prefix_drops[key] = seen + 1
            if seen < imp.drop_first_count:
                self.counts["dropped"] += 1
                return
        copies = 2 if self.rng.random() < imp.duplicate else 1
        if copies == 2:
            self.counts["duplicated"] += 1
        for _ in range(copies):
            delay = imp.delay + self.rng.random() * imp.jitter
            heapq.heappush(self._queue, (now + delay, next(self._order), out, data, dest))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--drop", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    proxy = LossyProxy(
        (args.host, args.port),
        up=Impairment(drop=args.drop),
        down=Impairment(drop=args.drop),
        seed=args.seed,
    )
    proxy.downstream = _Discard()  # the tests keep every datagram; a benchmark must not
    host, port = proxy.address
    print(f"listening on udp://{host}:{port}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        proxy.close()
        print(json.dumps(proxy.counts), flush=True)


class _Discard(list[bytes]):
    def append(self, item: bytes) -> None:
        pass


if __name__ == "__main__":
    main()
