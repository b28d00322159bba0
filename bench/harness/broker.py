"""Redis or NATS as the cluster's broker? The measurement harness (issue 14).

Several ``chatroom serve`` nodes will act as one chat: each node commits a batch of
events to PostgreSQL, then publishes the batch (a few encoded events, ~100-2000
bytes) to a broker, and every other node delivers it to its own users. Names are
claimed with leases. The issue asks to choose the engine by measuring both for this
job; this module measures what a node would pay with each, on loopback::

    python -m bench.harness.broker              # every engine, full sizes, a markdown table
    python -m bench.harness.broker --quick      # tiny sizes (seconds)
    python -m bench.harness.broker --runs 3 --json F.json  # interleaved runs, medians (the docs)
    python -m bench.harness.broker --from-json F.json      # print the tables again, run nothing
    python -m bench.harness.broker restart      # what survives a broker restart (private servers)

bench/test_bench_broker.py runs the same measurements under pytest-benchmark.

Engines (``ENGINES``), each as the node would use it. The node's loop is a
single-threaded ``selectors`` loop (chatroom/server/loop.py), so the receiving side
hands every message to such a loop, and the figures include what that costs:

- ``redis pubsub``: ``PUBLISH`` with redis-py's sync client (the call waits for the
  reply: one round trip on the node's thread per batch). Receiver: ``PubSub`` whose
  socket sits in the node's selector, drained with ``get_message(timeout=0)``.
- ``redis pubsub nowait``: the same, but the publish call only sends the command;
  its reply is read later, when it is there (a node would read it when its selector
  says the socket is readable): the node's thread never waits for Redis.
- ``redis streams``: ``XADD ... MAXLEN ~``; the receiver runs ``XREAD BLOCK`` on a
  thread of its own (a blocking call cannot sit in the loop) and hands over.
- ``nats core``: nats-py is asyncio-only, so its loop runs on a thread
  (``LoopThread``); ``publish`` queues the payload and wakes that loop, which
  publishes it (``NatsPublisher``). Receiver: a subscription callback on the
  client's loop thread that hands over.
- ``nats jetstream``: the same, with ``publish_async`` (every message acknowledged
  by the server once stored; the node does not wait for the ack, it counts them).
  Receiver: an ordered push consumer.
- ``udp (reference)``: no broker, one loopback datagram per message straight to the
  receiver's selectors loop. Not an option for the cluster (no fan-out, no
  persistence): the floor that says which part of the figures above is the broker.
  On this machine (a nested VM) every system call and wake-up is expensive, so the
  light-rate figures are mostly wake-ups; this row shows how much.

"Hands over" (``Handoff``): append to a deque, and write one byte to a pipe the
node's selector watches if the loop has not been woken already. This is the
cheapest correct bridge from another thread into a selectors loop.

What is measured, between this process (the publisher) and a subscriber child
process (``python -m bench.harness.broker sub ...``), on the same machine:

1. ``Link.latency``: one-way latency at a light rate (``RATE`` = 500 msg/s, 300-byte
   payloads). Each payload carries ``time.monotonic_ns()`` taken just before the
   publish call (CLOCK_MONOTONIC is one clock for every process on Linux); the
   child stamps the message when its selectors loop has it in hand (``p50_us``)
   and, for the threaded receivers, when the library's callback ran (``cb_...``).
   Also the time the publish call holds the node's thread (``call_...``) and, for
   JetStream, publish -> ack (``ack_...``).
2. ``Link.throughput``: messages/s one publisher gets through to one subscriber
   (first publish -> last arrival), pipelined (redis-py pipelines of ``CHUNK``,
   nats-py's buffered writes, JetStream's async publish).
3. CPU per message on each side. Publisher: the CPU time of the publishing thread
   inside the publish calls (``time.thread_time``: not the pacing sleep, which a
   node's loop would not have) plus all of the client's own threads over the phase
   (nats-py's loop thread, ``thread_cpu``). Receiver: ``time.process_time()`` of the
   child (every thread) from the start of the phase to its last message: all of it
   is waking up for and handling messages, as in a node.
4. Leases (``LeaseStore``): claim (``SET NX PX`` / KV ``create`` in a bucket whose TTL
   is the lease's), reclaim (claim a name just released), renew (compare-and-expire
   Lua script / KV ``update`` on the last revision), release (compare-and-delete /
   KV ``delete`` on the last revision), each timed from the calling thread; and how
   long after its TTL an unrenewed lease can be claimed by someone else (``expiry``).

Every name this creates (channel, subject, stream, key, bucket) starts with
``chatroom-bench-<pid>-<random>`` and is deleted on the way out. Everything has a
timeout (connecting ``CONNECT_TIMEOUT``, every call ``IO_TIMEOUT``, each phase a
deadline), so a broker that is down fails the run at once instead of hanging it.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import functools
import json
import os
import secrets
import selectors
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Protocol, TypeVar

import nats
import nats.errors
import nats.js.errors
import redis
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy, KeyValueConfig, StorageType, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.kv import KeyValue

from bench.harness.measure import percentile

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("CHATROOM_BENCH_REDIS", "redis://127.0.0.1:6379/0")
NATS_URL = os.environ.get("CHATROOM_BENCH_NATS", "nats://127.0.0.1:4222")

#: Seconds to reach a broker; it is on loopback, so anything longer means it is down.
CONNECT_TIMEOUT = 2.0
#: Seconds any single broker call may take.
IO_TIMEOUT = 5.0
#: Seconds the subscriber child may take to start (interpreter, imports, subscribe).
STARTUP_TIMEOUT = 20.0
#: A subscriber child exits by itself after this long, whatever happens to its parent.
CHILD_LIFETIME = 900.0

ENGINES: tuple[str, ...] = (
    "redis pubsub",
    "redis pubsub nowait",
    "redis streams",
    "nats core",
    "nats jetstream",
    "udp (reference)",
)
LEASE_ENGINES: tuple[str, ...] = ("redis", "nats kv")

#: A committed batch of a few events, as the issue sizes it (~100-2000 bytes).
PAYLOAD_SIZE = 300
#: The light rate of the latency phase, messages/s.
RATE = 500
#: Messages per pipelined call in the throughput phase (redis-py pipelines).
CHUNK = 64
#: A stream keeps at most about this many entries (XADD MAXLEN ~, JetStream max_msgs).
STREAM_MAXLEN = 200_000
#: A lease's time to live, milliseconds (the idle timeout a name outlives its node by).
LEASE_TTL_MS = 30_000

#: Every payload starts with: phase, sequence number, send time (monotonic ns).
HEADER = struct.Struct(">IQQ")
PAD = b"x" * (PAYLOAD_SIZE - HEADER.size)

T = TypeVar("T")


def run_prefix() -> str:
    """A name prefix unique to this run: two runs (or CI beside a developer) never
    share a channel, stream, key or bucket."""
    return f"chatroom-bench-{os.getpid()}-{secrets.token_hex(3)}"


def redis_client(read_timeout: float = IO_TIMEOUT) -> redis.Redis:
    """A redis-py client that gives up instead of hanging (no retries either: a
    failure should show, not be papered over)."""
    return redis.Redis.from_url(
        REDIS_URL,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=read_timeout,
        retry_on_timeout=False,
        health_check_interval=0,
    )


def quantiles_us(values_ns: Sequence[int]) -> tuple[float, float, float]:
    """p50, p99 and max of nanosecond samples, in microseconds (nan when empty)."""
    if not values_ns:
        return float("nan"), float("nan"), float("nan")
    s = sorted(values_ns)
    return percentile(s, 0.5) / 1e3, percentile(s, 0.99) / 1e3, s[-1] / 1e3


# ------------------------------------------------------------------ asyncio bridge


class LoopThread:
    """An asyncio loop on a daemon thread, driven from synchronous code.

    nats-py only speaks asyncio and the node's loop is a selectors loop, so this is
    how the node would host it; the measurement pays the thread hops the node would.
    """

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    @property
    def ident(self) -> int:
        ident = self._thread.ident
        assert ident is not None
        return ident

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = IO_TIMEOUT) -> T:
        """Run ``coro`` on the loop and wait for it, at most ``timeout`` seconds."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def close(self) -> None:
        """Cancel what is left, stop the loop and close it (no ResourceWarnings)."""
        if self.loop.is_closed():
            return

        async def cancel_all() -> None:
            me = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not me]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            self.run(cancel_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(IO_TIMEOUT)
        if not self._thread.is_alive():
            self.loop.close()


async def nats_connect(errors: list[str]) -> NatsClient:
    """A nats-py connection that fails fast: no reconnecting, errors collected
    (a slow-consumer drop would otherwise only be logged)."""

    async def on_error(e: Exception) -> None:
        errors.append(repr(e))

    async def quiet() -> None:
        pass

    try:
        return await asyncio.wait_for(
            nats.connect(
                NATS_URL,
                name="chatroom-bench",
                connect_timeout=int(CONNECT_TIMEOUT),
                allow_reconnect=False,
                max_reconnect_attempts=0,
                error_cb=on_error,
                disconnected_cb=quiet,
                closed_cb=quiet,
            ),
            CONNECT_TIMEOUT,
        )
    except (TimeoutError, OSError, nats.errors.Error) as e:
        raise ConnectionError(f"NATS at {NATS_URL} is not reachable: {e!r} {errors}") from e


class Handoff:
    """Messages from another thread to a selectors loop: a deque and a wake-up pipe.

    ``put`` writes to the pipe only when the loop has not been woken since it last
    took, so a burst costs one write and one wake-up, not one per message.
    """

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)
        self._queue: collections.deque[tuple[bytes, int]] = collections.deque()
        self._woken = False

    def fileno(self) -> int:
        return self._r

    def put(self, data: bytes) -> None:
        """From any thread: queue ``data`` (stamped now) and wake the loop if needed."""
        self._queue.append((data, time.monotonic_ns()))
        if not self._woken:
            self._woken = True
            with contextlib.suppress(BlockingIOError):
                os.write(self._w, b"!")

    def take(self) -> list[tuple[bytes, int]]:
        """On the loop's thread: everything queued, oldest first."""
        # Empty the pipe first, then lower the flag, then drain: a put after the flag
        # is lowered writes a byte that stays in the pipe for the next select. (The
        # other order can swallow the byte of a put whose item this drain misses.)
        with contextlib.suppress(BlockingIOError):
            os.read(self._r, 4096)
        self._woken = False
        out: list[tuple[bytes, int]] = []
        while self._queue:
            out.append(self._queue.popleft())
        return out

    def close(self) -> None:
        os.close(self._r)
        os.close(self._w)


# ------------------------------------------------------------------ names


@dataclass(frozen=True)
class Names:
    """Where one engine's traffic goes; every name starts with the run's prefix."""

    prefix: str

    @property
    def channel(self) -> str:  # Redis pub/sub channel, also the NATS core subject
        return f"{self.prefix}.chat"

    @property
    def stream_key(self) -> str:  # Redis stream key
        return f"{self.prefix}:events"

    @property
    def js_subject(self) -> str:
        return f"{self.prefix}.js"

    @property
    def js_stream(self) -> str:
        return f"{self.prefix}-events"


# ------------------------------------------------------------------ publishers


class Publisher(Protocol):
    """The publishing node's side, called from its (single) loop thread."""

    def publish(self, payload: bytes) -> None:
        """Publish one committed batch."""

    def publish_many(self, payloads: Sequence[bytes]) -> None:
        """Publish several batches, pipelined where the client allows it."""

    def sync(self, timeout: float) -> None:
        """Return once the broker has everything published so far (acked, flushed)."""

    def stats(self) -> dict[str, Any]:
        """Engine-specific figures (acks, errors)."""

    def helper_threads(self) -> list[int]:
        """Idents of the client's own threads (their CPU is the publisher's too)."""

    def close(self) -> None: ...


class RedisPublisher:
    """PUBLISH (pub/sub) or XADD (streams) with redis-py's sync client.

    ``nowait``: PUBLISH is only sent (``Connection.send_command``) and its reply read
    once it has arrived (``can_read(0)``, then ``read_response``), at the next
    publish or in ``sync``: pipelining across the node's loop turns.
    """

    def __init__(self, names: Names, streams: bool, nowait: bool = False) -> None:
        self.r = redis_client()
        self.r.ping()
        self.names = names
        self.streams = streams
        self.unheard = 0  # PUBLISH said nobody was subscribed
        self.nowait = nowait
        self.outstanding = 0
        if nowait:
            self.conn = self.r.connection_pool.get_connection()

    def _read_replies(self, block: bool) -> None:
        while self.outstanding and (block or self.conn.can_read(timeout=0)):
            if self.conn.read_response() < 1:
                self.unheard += 1
            self.outstanding -= 1

    def publish(self, payload: bytes) -> None:
        if self.nowait:
            self._read_replies(block=False)
            self.conn.send_command("PUBLISH", self.names.channel, payload)
            self.outstanding += 1
        elif self.streams:
            self.r.xadd(
                self.names.stream_key, {b"b": payload}, maxlen=STREAM_MAXLEN, approximate=True
            )
        elif self.r.publish(self.names.channel, payload) < 1:
            self.unheard += 1

    def publish_many(self, payloads: Sequence[bytes]) -> None:
        if self.nowait:
            self._read_replies(block=False)
            channel = self.names.channel
            self.conn.send_packed_command(
                self.conn.pack_commands([("PUBLISH", channel, p) for p in payloads])
            )
            self.outstanding += len(payloads)
            return
        pipe = self.r.pipeline(transaction=False)
        for payload in payloads:
            if self.streams:
                pipe.xadd(
                    self.names.stream_key, {b"b": payload}, maxlen=STREAM_MAXLEN, approximate=True
                )
            else:
                pipe.publish(self.names.channel, payload)
        replies = pipe.execute()
        if not self.streams:
            self.unheard += sum(1 for n in replies if n < 1)

    def sync(self, timeout: float) -> None:
        if self.nowait:
            self._read_replies(block=True)  # each read has the socket's timeout
        # otherwise every call above waited for its reply

    def stats(self) -> dict[str, Any]:
        return {"errors": [f"{self.unheard} PUBLISH reached nobody"] if self.unheard else []}

    def helper_threads(self) -> list[int]:
        return []

    def close(self) -> None:
        with contextlib.suppress(redis.RedisError):
            if self.nowait:
                self._read_replies(block=True)
                self.r.connection_pool.release(self.conn)
            if self.streams:
                self.r.delete(self.names.stream_key)
        self.r.close()


class NatsPublisher:
    """nats-py behind a synchronous facade: ``publish`` queues and wakes the client's
    loop thread, whose single pump task publishes in order.

    Core: ``publish`` (buffered; the client's flusher task writes). JetStream:
    ``publish_async``, every message acknowledged by the server once it is stored;
    the acks are counted and timed (publish call -> ack) but not waited for.
    """

    def __init__(self, names: Names, jetstream: bool) -> None:
        self.names = names
        self.errors: list[str] = []
        self.lt = LoopThread("nats-publisher")
        self.nc = self.lt.run(nats_connect(self.errors))
        self.js: JetStreamContext | None = None
        self.subject = names.channel
        if jetstream:
            self.js = self.nc.jetstream(timeout=IO_TIMEOUT)
            self.subject = names.js_subject
            self.lt.run(
                self.js.add_stream(
                    StreamConfig(
                        name=names.js_stream,
                        subjects=[names.js_subject],
                        storage=StorageType.FILE,
                        max_msgs=STREAM_MAXLEN,
                    )
                )
            )
        self._queue: collections.deque[tuple[bytes, int]] = collections.deque()
        self._scheduled = False
        self._busy = False
        self._wake = self.lt.run(self._make_event())
        self._pump_task = self.lt.run(self._start_pump())
        self.ack_ns: list[int] = []
        self.failed = 0

    async def _make_event(self) -> asyncio.Event:
        return asyncio.Event()  # created on the loop it belongs to

    async def _start_pump(self) -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(self._pump())

    def publish(self, payload: bytes) -> None:
        self._queue.append((payload, time.monotonic_ns()))
        if not self._scheduled:  # wake the pump once per burst, not per message
            self._scheduled = True
            self.lt.loop.call_soon_threadsafe(self._wake.set)

    def publish_many(self, payloads: Sequence[bytes]) -> None:
        now = time.monotonic_ns()
        self._queue.extend((p, now) for p in payloads)
        if not self._scheduled:
            self._scheduled = True
            self.lt.loop.call_soon_threadsafe(self._wake.set)

    async def _pump(self) -> None:
        queue = self._queue
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._busy = True
            self._scheduled = False  # before draining: a later publish wakes us again
            try:
                while queue:
                    payload, t = queue.popleft()
                    if self.js is None:
                        await self.nc.publish(self.subject, payload)
                    else:
                        # wait_stall stays None (the default): a timeout here makes
                        # asyncio.wait_for yield to the loop once per message, which
                        # tripled the CPU per message (sync() bounds the wait instead).
                        ack = await self.js.publish_async(self.subject, payload)
                        ack.add_done_callback(functools.partial(self._acked, t))
            except Exception as e:  # recorded; the run then fails its sanity checks
                self.errors.append(repr(e))
            finally:
                self._busy = False

    def _acked(self, sent_ns: int, ack: asyncio.Future[Any]) -> None:
        if ack.cancelled() or ack.exception() is not None:
            self.failed += 1
        else:
            self.ack_ns.append(time.monotonic_ns() - sent_ns)

    async def _sync(self, timeout: float) -> None:
        while self._queue or self._busy or self._scheduled:
            await asyncio.sleep(0.001)
        if self.js is None:
            await self.nc.flush(timeout=max(1, int(timeout)))
        else:
            await asyncio.wait_for(self.js.publish_async_completed(), timeout)

    def sync(self, timeout: float) -> None:
        self.lt.run(self._sync(timeout), timeout + 1)

    def stats(self) -> dict[str, Any]:
        errors = list(self.errors)
        if self.failed:
            errors.append(f"{self.failed} JetStream publishes not acknowledged")
        return {"errors": errors}

    def helper_threads(self) -> list[int]:
        return [self.lt.ident]

    async def _close(self) -> None:
        self._pump_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._pump_task
        if self.js is not None:
            with contextlib.suppress(Exception):
                await self.js.delete_stream(self.names.js_stream)
        with contextlib.suppress(Exception):
            await self.nc.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.lt.run(self._close())
        self.lt.close()


class UdpPublisher:
    """One datagram per message to the subscriber child's socket (the reference)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect(("127.0.0.1", port))

    def publish(self, payload: bytes) -> None:
        self.sock.send(payload)

    def publish_many(self, payloads: Sequence[bytes]) -> None:
        send = self.sock.send
        for p in payloads:
            send(p)

    def sync(self, timeout: float) -> None:
        pass

    def stats(self) -> dict[str, Any]:
        return {"errors": []}

    def helper_threads(self) -> list[int]:
        return []

    def close(self) -> None:
        self.sock.close()


def make_publisher(engine: str, names: Names, port: int = 0) -> Publisher:
    if engine == "redis pubsub":
        return RedisPublisher(names, streams=False)
    if engine == "redis pubsub nowait":
        return RedisPublisher(names, streams=False, nowait=True)
    if engine == "redis streams":
        return RedisPublisher(names, streams=True)
    if engine == "nats core":
        return NatsPublisher(names, jetstream=False)
    if engine == "nats jetstream":
        return NatsPublisher(names, jetstream=True)
    if engine == "udp (reference)":
        return UdpPublisher(port)
    raise ValueError(f"unknown engine {engine!r}; one of {', '.join(ENGINES)}")


# ------------------------------------------------------------------ receivers (child)


class Receiver(Protocol):
    """The receiving node's side: a file descriptor its selector watches, and the
    messages that arrived, with the time the library handed each over (0: it was
    read on the loop's own thread, so there is no earlier stamp)."""

    errors: list[str]

    def fileno(self) -> int: ...

    def take(self) -> list[tuple[bytes, int]]: ...

    def close(self) -> None: ...


class RedisPubSubReceiver:
    """redis-py's PubSub read from the node's own selectors loop."""

    def __init__(self, names: Names) -> None:
        self.errors: list[str] = []
        self.r = redis_client()
        self.ps = self.r.pubsub()
        self.ps.subscribe(names.channel)
        deadline = time.monotonic() + IO_TIMEOUT
        while True:  # wait for the server's confirmation: then PUBLISH reaches us
            m = self.ps.get_message(timeout=0.2)
            if m is not None and m["type"] == "subscribe":
                break
            if time.monotonic() > deadline:
                raise TimeoutError("no SUBSCRIBE confirmation from Redis")
        conn = self.ps.connection
        assert conn is not None and conn._sock is not None
        self._fd = conn._sock.fileno()

    def fileno(self) -> int:
        return self._fd

    def take(self) -> list[tuple[bytes, int]]:
        out: list[tuple[bytes, int]] = []
        while True:
            m = self.ps.get_message(timeout=0.0)
            if m is None:
                return out
            if m["type"] == "message":
                out.append((m["data"], 0))

    def close(self) -> None:
        with contextlib.suppress(redis.RedisError):
            self.ps.close()
        self.r.close()


class RedisStreamReceiver:
    """XREAD BLOCK on a thread of its own, handed over to the loop."""

    BLOCK_MS = 200

    def __init__(self, names: Names) -> None:
        self.errors: list[str] = []
        self.key = names.stream_key
        self.r = redis_client(read_timeout=IO_TIMEOUT + self.BLOCK_MS / 1000)
        self.r.ping()
        self.handoff = Handoff()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="xread", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        last: bytes | str = "0-0"  # the stream is this run's own: read it all
        try:
            while not self._stop.is_set():
                reply = self.r.xread({self.key: last}, count=1000, block=self.BLOCK_MS)
                for _key, entries in reply or ():
                    for entry_id, fields in entries:
                        self.handoff.put(fields[b"b"])
                        last = entry_id
        except Exception as e:
            self.errors.append(repr(e))

    def fileno(self) -> int:
        return self.handoff.fileno()

    def take(self) -> list[tuple[bytes, int]]:
        return self.handoff.take()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(IO_TIMEOUT)
        self.r.close()
        self.handoff.close()


class NatsReceiver:
    """A nats-py subscription (core, or a JetStream ordered push consumer) whose
    callback, on the client's loop thread, hands over to the node's loop."""

    def __init__(self, names: Names, jetstream: bool) -> None:
        self.errors: list[str] = []
        self.handoff = Handoff()
        self.lt = LoopThread("nats-receiver")
        self.nc = self.lt.run(nats_connect(self.errors))
        self.lt.run(self._subscribe(names, jetstream))

    async def _subscribe(self, names: Names, jetstream: bool) -> None:
        put = self.handoff.put

        async def cb(msg: Msg) -> None:
            put(msg.data)

        if jetstream:
            js = self.nc.jetstream(timeout=IO_TIMEOUT)
            deadline = time.monotonic() + IO_TIMEOUT
            while True:  # the parent creates the stream while we start: wait for it
                try:
                    await js.subscribe(
                        names.js_subject,
                        cb=cb,
                        ordered_consumer=True,
                        deliver_policy=DeliverPolicy.ALL,
                    )
                    break
                except nats.js.errors.NotFoundError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.02)
        else:
            await self.nc.subscribe(names.channel, cb=cb)
        await self.nc.flush(timeout=int(IO_TIMEOUT))  # the server has our SUB

    def fileno(self) -> int:
        return self.handoff.fileno()

    def take(self) -> list[tuple[bytes, int]]:
        return self.handoff.take()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.lt.run(self.nc.close())
        self.lt.close()
        self.handoff.close()


class UdpReceiver:
    """A UDP socket in the loop (the reference), its buffer big enough that a
    throughput phase's burst queues instead of dropping."""

    BUFFER = 64 * 1024 * 1024
    SO_RCVBUFFORCE = 33  # Linux; exceeds rmem_max when we are root

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, self.SO_RCVBUFFORCE, self.BUFFER)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.BUFFER)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = int(self.sock.getsockname()[1])

    def fileno(self) -> int:
        return self.sock.fileno()

    def take(self) -> list[tuple[bytes, int]]:
        out: list[tuple[bytes, int]] = []
        recv = self.sock.recv
        with contextlib.suppress(BlockingIOError):
            for _ in range(256):  # then back to the loop, as the node does
                out.append((recv(65536), 0))
        return out

    def close(self) -> None:
        self.sock.close()


def make_receiver(engine: str, names: Names) -> Receiver:
    if engine in ("redis pubsub", "redis pubsub nowait"):
        return RedisPubSubReceiver(names)
    if engine == "redis streams":
        return RedisStreamReceiver(names)
    if engine in ("nats core", "nats jetstream"):
        return NatsReceiver(names, jetstream=engine == "nats jetstream")
    if engine == "udp (reference)":
        return UdpReceiver()
    raise ValueError(f"unknown engine {engine!r}")


@dataclass
class Expectation:
    """What the child collects for one phase: ``count`` messages of ``phase``."""

    phase: int
    count: int
    deadline: float
    cpu0: float = field(default_factory=time.process_time)
    received: int = 0
    next_seq: int = 0
    out_of_order: int = 0
    lat_ns: list[int] = field(default_factory=list)
    cb_ns: list[int] = field(default_factory=list)
    first_ns: int = 0
    last_ns: int = 0
    cpu_last: float = 0.0

    def add(self, seq: int, sent_ns: int, cb_ns: int, now_ns: int) -> None:
        if seq != self.next_seq:
            self.out_of_order += 1
        self.next_seq = max(self.next_seq, seq + 1)
        self.received += 1
        self.lat_ns.append(now_ns - sent_ns)
        self.cb_ns.append((cb_ns or now_ns) - sent_ns)
        if not self.first_ns:
            self.first_ns = now_ns
        self.last_ns = now_ns
        if self.received >= self.count:
            self.cpu_last = time.process_time()

    def report(self, strays: int, errors: list[str]) -> dict[str, Any]:
        p50, p99, mx = quantiles_us(self.lat_ns)
        cb50, cb99, _ = quantiles_us(self.cb_ns)
        cpu = (self.cpu_last or time.process_time()) - self.cpu0
        return {
            "phase": self.phase,
            "received": self.received,
            "out_of_order": self.out_of_order,
            "strays": strays,
            "p50_us": p50,
            "p99_us": p99,
            "max_us": mx,
            "cb_p50_us": cb50,
            "cb_p99_us": cb99,
            "first_ns": self.first_ns,
            "last_ns": self.last_ns,
            "cpu_s": cpu,
            "errors": errors,
        }


def subscriber_main(engine: str, prefix: str) -> int:
    """The subscriber child: a selectors loop, like the node's, on the receiver and
    on stdin, where the parent says ``expect PHASE COUNT SECONDS`` before each phase
    (answered ``ok``, then one JSON line when the phase is complete or late)."""
    receiver = make_receiver(engine, Names(prefix))
    out = sys.stdout
    out.write(f"ready {getattr(receiver, 'port', 0)}\n")  # the UDP reference's port
    out.flush()
    sel = selectors.DefaultSelector()
    sel.register(receiver.fileno(), selectors.EVENT_READ, "receiver")
    sel.register(sys.stdin.fileno(), selectors.EVENT_READ, "stdin")
    unpack = HEADER.unpack_from
    monotonic_ns = time.monotonic_ns
    active: Expectation | None = None
    strays = 0
    commands = b""
    end = time.monotonic() + CHILD_LIFETIME
    try:
        while time.monotonic() < end:
            for key, _ in sel.select(timeout=0.2):
                if key.data == "receiver":
                    for data, cb_ns in receiver.take():
                        now = monotonic_ns()
                        phase, seq, sent = unpack(data)
                        if active is not None and phase == active.phase:
                            active.add(seq, sent, cb_ns, now)
                        else:
                            strays += 1
                    continue
                chunk = os.read(sys.stdin.fileno(), 4096)
                if not chunk:
                    return 0  # the parent is done (or gone)
                commands += chunk
                while b"\n" in commands:
                    line, commands = commands.split(b"\n", 1)
                    _, phase_s, count_s, seconds_s = line.decode().split()
                    active = Expectation(
                        int(phase_s), int(count_s), time.monotonic() + float(seconds_s)
                    )
                    strays = 0
                    out.write("ok\n")
                    out.flush()
            if active is not None and (
                active.received >= active.count or time.monotonic() > active.deadline
            ):
                out.write(json.dumps(active.report(strays, receiver.errors)) + "\n")
                out.flush()
                active = None
        return 1
    finally:
        receiver.close()


class SubscriberProcess:
    """The subscriber child, seen from the parent: lines in, lines out, deadlines."""

    def __init__(self, engine: str, prefix: str) -> None:
        """Start the child; ``wait_ready`` waits for it (the parent can set up its
        side in the meantime: the child's imports take about half a second)."""
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.harness.broker", "sub", engine, prefix],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self._buf = b""
        self.port = 0

    def wait_ready(self) -> None:
        """Until the child has subscribed (and said its UDP port, for the reference)."""
        line = self.readline(STARTUP_TIMEOUT)
        word, _, port = line.partition(" ")
        if word != "ready":
            raise RuntimeError(f"subscriber said {line!r}")
        self.port = int(port or 0)

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()[-2000:].decode(errors="replace")

    def readline(self, timeout: float) -> str:
        """The child's next line, or an error naming what it printed to stderr."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"subscriber silent for {timeout} s: {self._stderr_tail()}")
            with selectors.DefaultSelector() as sel:
                sel.register(fd, selectors.EVENT_READ)
                if not sel.select(left):
                    continue
            chunk = os.read(fd, 65536)
            if not chunk:
                self.proc.wait(IO_TIMEOUT)
                raise RuntimeError(
                    f"subscriber exited ({self.proc.returncode}): {self._stderr_tail()}"
                )
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode()

    def expect(self, phase: int, count: int, seconds: float) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"expect {phase} {count} {seconds}\n".encode())
        self.proc.stdin.flush()
        if (line := self.readline(IO_TIMEOUT)) != "ok":
            raise RuntimeError(f"subscriber said {line!r}")

    def result(self, timeout: float) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.readline(timeout))
        return data

    def begin_close(self) -> None:
        """Tell the child to exit (end of its stdin), without waiting for it."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    def close(self) -> None:
        self.begin_close()
        try:
            self.proc.wait(IO_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(IO_TIMEOUT)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()


# ------------------------------------------------------------------ phases


@dataclass
class PhaseResult:
    """One phase of one engine: what the report and the docs show."""

    engine: str
    kind: str  # "latency" or "throughput"
    messages: int
    received: int
    out_of_order: int
    strays: int
    seconds: float  # first publish -> last arrival
    msgs_per_s: float
    p50_us: float  # publish call -> the receiving loop has it
    p99_us: float
    max_us: float
    cb_p50_us: float  # publish call -> the library's callback (threaded receivers)
    cb_p99_us: float
    call_p50_us: float  # how long one publish call holds the publishing thread
    call_p99_us: float
    ack_p50_us: float  # JetStream: publish call -> ack
    ack_p99_us: float
    pub_cpu_us: float  # publisher, per message (PublisherCpu)
    sub_cpu_us: float  # receiving process, per message
    errors: list[str]

    @property
    def ok(self) -> bool:
        """Every message arrived, once, in order, and nothing went wrong."""
        return (
            self.received == self.messages
            and self.out_of_order == 0
            and self.strays == 0
            and not self.errors
        )

    def summary(self) -> str:
        return (
            f"{self.engine:15} {self.kind:10} {self.received}/{self.messages} "
            f"p50 {self.p50_us:8.1f} µs p99 {self.p99_us:8.1f} µs {self.msgs_per_s:9.0f} msg/s "
            f"pub {self.pub_cpu_us:6.1f} µs sub {self.sub_cpu_us:6.1f} µs CPU/msg"
            + (f" ERRORS {self.errors}" if self.errors else "")
        )


def payload(phase: int, seq: int) -> bytes:
    """A 300-byte batch stamped with the time it is handed to the publisher."""
    return HEADER.pack(phase, seq, time.monotonic_ns()) + PAD


def thread_cpu(ident: int) -> float:
    """CPU seconds used so far by one thread of this process, any thread."""
    return time.clock_gettime(time.pthread_getcpuclockid(ident))


class PublisherCpu:
    """The publisher's CPU over a phase: its calls on the node's thread, and its
    client's own threads whole."""

    def __init__(self, pub: Publisher) -> None:
        self._helpers = pub.helper_threads()
        self._start = [thread_cpu(i) for i in self._helpers]
        self.own = 0.0  # seconds on the calling thread, inside publisher calls

    def seconds(self) -> float:
        helpers = sum(thread_cpu(i) - t0 for i, t0 in zip(self._helpers, self._start, strict=True))
        return self.own + helpers


def paced(pub: Publisher, phase: int, count: int, rate: float) -> tuple[list[int], float, int]:
    """Publish ``count`` payloads at ``rate``/s; returns the publish calls' durations
    (ns), the publisher's CPU seconds (``PublisherCpu``) and the start time
    (monotonic ns)."""
    interval = 1.0 / rate
    call_ns: list[int] = []
    perf, tt = time.perf_counter_ns, time.thread_time
    start_ns = time.monotonic_ns()
    cpu = PublisherCpu(pub)
    next_t = time.monotonic()
    for seq in range(count):
        delay = next_t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        b = payload(phase, seq)
        t0 = tt()
        c0 = perf()
        pub.publish(b)
        c1 = perf()
        cpu.own += tt() - t0
        call_ns.append(c1 - c0)
        next_t += interval
    t0 = tt()
    pub.sync(IO_TIMEOUT)
    cpu.own += tt() - t0
    return call_ns, cpu.seconds(), start_ns


class Link:
    """One engine, publisher here and subscriber in a child process::

    with Link("nats core") as link:
        print(link.latency(1000, 500).summary())
        print(link.throughput(20_000).summary())
    """

    def __init__(self, engine: str, prefix: str | None = None) -> None:
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; one of {', '.join(ENGINES)}")
        self.engine = engine
        self.names = Names(prefix or run_prefix())
        self._phase = 0
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> Link:
        with self._stack as stack:
            # On the way out (callbacks run last first): tell the child to go, close
            # the publisher (which deletes what the run made), then wait for the child.
            self.sub = SubscriberProcess(self.engine, self.names.prefix)
            stack.callback(self.sub.close)
            if self.engine == "udp (reference)":  # needs the child's port
                self.sub.wait_ready()
                self.pub = make_publisher(self.engine, self.names, self.sub.port)
                stack.callback(self.pub.close)
            else:  # while the child starts (it waits for the JetStream stream we make)
                self.pub = make_publisher(self.engine, self.names)
                stack.callback(self.pub.close)
                self.sub.wait_ready()
            stack.callback(self.sub.begin_close)
            warm = self.latency(20, RATE)  # connections, JetStream's reply inbox, imports
            if not warm.ok:
                raise RuntimeError(f"{self.engine}: warm-up failed: {warm}")
            self._stack = stack.pop_all()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()  # the child first, then the publisher (which deletes)

    def _next_phase(self) -> int:
        self._phase += 1
        return self._phase

    def _ack_quantiles(self, since: int) -> tuple[float, float]:
        acks = getattr(self.pub, "ack_ns", None)
        if acks is None:
            return float("nan"), float("nan")
        p50, p99, _ = quantiles_us(acks[since:])
        return p50, p99

    def _acks_so_far(self) -> int:
        return len(getattr(self.pub, "ack_ns", ()))

    def latency(self, count: int, rate: float = RATE) -> PhaseResult:
        """``count`` messages at ``rate``/s, one at a time (the light load)."""
        phase = self._next_phase()
        acks0 = self._acks_so_far()
        self.sub.expect(phase, count, count / rate + 3 * IO_TIMEOUT)
        call_ns, cpu, start_ns = paced(self.pub, phase, count, rate)
        res = self.sub.result(count / rate + 4 * IO_TIMEOUT)
        call50, call99, _ = quantiles_us(call_ns)
        return self._result("latency", count, res, start_ns, cpu, acks0, call50, call99)

    def throughput(self, count: int, chunk: int = CHUNK) -> PhaseResult:
        """``count`` messages as fast as the publisher can hand them over, ``chunk``
        per pipelined call."""
        phase = self._next_phase()
        acks0 = self._acks_so_far()
        self.sub.expect(phase, count, 60 + count / 1000)
        pub = self.pub
        call_ns: list[int] = []
        perf, tt = time.perf_counter_ns, time.thread_time
        start_ns = time.monotonic_ns()
        cpu = PublisherCpu(pub)
        for first in range(0, count, chunk):
            batch = [payload(phase, seq) for seq in range(first, min(count, first + chunk))]
            t0 = tt()
            c0 = perf()
            pub.publish_many(batch)
            c1 = perf()
            cpu.own += tt() - t0
            call_ns.append((c1 - c0) // len(batch))
        t0 = tt()
        pub.sync(IO_TIMEOUT + count / 1000)
        cpu.own += tt() - t0
        res = self.sub.result(60 + count / 1000)
        call50, call99, _ = quantiles_us(call_ns)
        return self._result(
            "throughput", count, res, start_ns, cpu.seconds(), acks0, call50, call99
        )

    def _result(
        self,
        kind: str,
        count: int,
        res: dict[str, Any],
        start_ns: int,
        cpu: float,
        acks0: int,
        call50: float,
        call99: float,
    ) -> PhaseResult:
        seconds = (res["last_ns"] - start_ns) / 1e9 if res["last_ns"] else float("nan")
        ack50, ack99 = self._ack_quantiles(acks0)
        received = int(res["received"])
        return PhaseResult(
            engine=self.engine,
            kind=kind,
            messages=count,
            received=received,
            out_of_order=int(res["out_of_order"]),
            strays=int(res["strays"]),
            seconds=seconds,
            msgs_per_s=received / seconds if seconds > 0 else float("nan"),
            p50_us=res["p50_us"],
            p99_us=res["p99_us"],
            max_us=res["max_us"],
            cb_p50_us=res["cb_p50_us"],
            cb_p99_us=res["cb_p99_us"],
            call_p50_us=call50,
            call_p99_us=call99,
            ack_p50_us=ack50,
            ack_p99_us=ack99,
            pub_cpu_us=cpu / count * 1e6,
            sub_cpu_us=res["cpu_s"] / max(1, received) * 1e6,
            errors=[*self.pub.stats()["errors"], *res["errors"]],
        )


# ------------------------------------------------------------------ leases


class LeaseStore(Protocol):
    """Unique names with leases: what a node holds for each of its users' names.

    A token is what the holder keeps to prove it holds the lease (Redis: the owner
    string; NATS KV: the revision of its last write).
    """

    engine: str
    ttl_ms: int

    def claim(self, name: str, owner: str) -> object | None:
        """The lease if ``name`` was free, else None."""

    def renew(self, name: str, owner: str, token: object) -> object | None:
        """A fresh lease if we still hold it, else None."""

    def release(self, name: str, owner: str, token: object) -> bool:
        """Free ``name`` if we still hold it."""

    def close(self) -> None:
        """Delete everything this store created."""


#: Renew only our own lease: compare the owner, then push the expiry out.
RENEW_LUA = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
#: Release only our own lease: compare the owner, then delete.
RELEASE_LUA = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class RedisLeases:
    """``SET key owner NX PX ttl``; renew and release are compare-and-act Lua
    scripts (EVALSHA), so a node that lost its lease cannot touch the new holder's."""

    engine = "redis"

    def __init__(self, prefix: str, ttl_ms: int = LEASE_TTL_MS) -> None:
        self.prefix = f"{prefix}:lease:"
        self.ttl_ms = ttl_ms
        self.r = redis_client()
        self.r.ping()
        self._renew = self.r.register_script(RENEW_LUA)
        self._release = self.r.register_script(RELEASE_LUA)

    def claim(self, name: str, owner: str) -> object | None:
        ok = self.r.set(self.prefix + name, owner, nx=True, px=self.ttl_ms)
        return owner if ok else None

    def renew(self, name: str, owner: str, token: object) -> object | None:
        ok = self._renew(keys=[self.prefix + name], args=[owner, self.ttl_ms])
        return owner if ok else None

    def release(self, name: str, owner: str, token: object) -> bool:
        return bool(self._release(keys=[self.prefix + name], args=[owner]))

    def close(self) -> None:
        with contextlib.suppress(redis.RedisError):
            keys = list(self.r.scan_iter(match=self.prefix + "*", count=1000))
            for i in range(0, len(keys), 500):
                self.r.delete(*keys[i : i + 500])
        self.r.close()


class NatsLeases:
    """A JetStream KV bucket whose TTL (``max_age``) is the lease's: claim is
    ``create`` (only if absent), renew ``update`` on our last revision (a new
    revision restarts its age), release ``delete`` on our last revision.

    The server here (2.9) has no per-key TTL (2.11 adds it), so one bucket per TTL.
    Called from the node's thread through ``LoopThread``, as the node would.
    """

    engine = "nats kv"

    def __init__(self, prefix: str, ttl_ms: int = LEASE_TTL_MS) -> None:
        self.ttl_ms = ttl_ms
        self.bucket = f"{prefix}-leases-{ttl_ms}"
        self.errors: list[str] = []
        self.lt = LoopThread("nats-leases")
        try:
            self.nc = self.lt.run(nats_connect(self.errors))
            self.js = self.nc.jetstream(timeout=IO_TIMEOUT)
            self.kv: KeyValue = self.lt.run(
                self.js.create_key_value(
                    KeyValueConfig(
                        bucket=self.bucket,
                        ttl=ttl_ms / 1000,
                        history=1,
                        storage=StorageType.FILE,
                    )
                )
            )
        except BaseException:
            self.lt.close()
            raise

    def claim(self, name: str, owner: str) -> object | None:
        try:
            return self.lt.run(self.kv.create(name, owner.encode()))
        except nats.js.errors.KeyWrongLastSequenceError:
            return None
        except nats.js.errors.KeyNotFoundError:
            # nats-py's create(), refused because the key exists, reads it to see
            # whether it is a tombstone; if the key expired in between, that read
            # raises this. The name is free now, but this attempt failed: try again.
            return None

    def renew(self, name: str, owner: str, token: object) -> object | None:
        assert isinstance(token, int)
        try:
            return self.lt.run(self.kv.update(name, owner.encode(), last=token))
        except nats.js.errors.KeyWrongLastSequenceError:
            return None

    def release(self, name: str, owner: str, token: object) -> bool:
        assert isinstance(token, int)
        try:
            return self.lt.run(self.kv.delete(name, last=token))
        except nats.js.errors.APIError as e:
            if e.err_code in (10071, 10164):  # wrong last sequence: not ours any more
                return False
            raise

    async def _close(self) -> None:
        with contextlib.suppress(Exception):
            await self.js.delete_key_value(self.bucket)
        with contextlib.suppress(Exception):
            await self.nc.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.lt.run(self._close())
        self.lt.close()


def make_leases(engine: str, prefix: str, ttl_ms: int = LEASE_TTL_MS) -> LeaseStore:
    if engine == "redis":
        return RedisLeases(prefix, ttl_ms)
    if engine == "nats kv":
        return NatsLeases(prefix, ttl_ms)
    raise ValueError(f"unknown lease engine {engine!r}; one of {', '.join(LEASE_ENGINES)}")


@dataclass
class LeaseResult:
    """Per-operation latency of one lease engine (µs), and the sanity checks."""

    engine: str
    rounds: int
    ops: dict[str, tuple[float, float]]  # op -> (p50, p99)
    conflicts_ok: bool  # a second owner could not claim, renew or release
    expiry_over_ttl_ms: list[float] = field(default_factory=list)


def check_conflicts(store: LeaseStore, name: str) -> bool:
    """Leases exclude: another owner can neither claim, renew nor release a held name,
    and the holder can, in that order. True when all of that holds."""
    mine = store.claim(name, "node-a")
    if mine is None or store.claim(name, "node-b") is not None:
        return False
    stale = mine
    mine2 = store.renew(name, "node-a", mine)
    if mine2 is None:
        return False
    if store.engine == "nats kv" and store.renew(name, "node-b", stale) is not None:
        return False  # NATS: a stale revision is refused
    if store.engine == "redis" and store.renew(name, "node-b", None) is not None:
        return False  # Redis: another owner string is refused
    if store.release(name, "node-b", stale):
        return False
    if not store.release(name, "node-a", mine2):
        return False
    again = store.claim(name, "node-b")  # released: free for anyone
    return again is not None and store.release(name, "node-b", again)


def measure_leases(engine: str, rounds: int, prefix: str | None = None) -> LeaseResult:
    """``rounds`` times: claim a fresh name, renew it, release it, claim it again
    (a released name, as when a user logs in again), release; each op timed."""
    store = make_leases(engine, prefix or run_prefix())
    timings: dict[str, list[int]] = {op: [] for op in ("claim", "renew", "release", "reclaim")}
    perf = time.perf_counter_ns
    try:
        ok = check_conflicts(store, "conflict")
        for i in range(rounds):
            name = f"user-{i}"
            t0 = perf()
            token = store.claim(name, "node-a")
            t1 = perf()
            token2 = store.renew(name, "node-a", token)
            t2 = perf()
            released = store.release(name, "node-a", token2)
            t3 = perf()
            token3 = store.claim(name, "node-a")
            t4 = perf()
            if token is None or token2 is None or not released or token3 is None:
                raise RuntimeError(f"{engine}: lease round {i} failed")
            store.release(name, "node-a", token3)
            for op, dt in zip(timings, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                timings[op].append(dt)
    finally:
        store.close()
    ops = {op: quantiles_us(v)[:2] for op, v in timings.items()}
    return LeaseResult(engine, rounds, ops, ok)


def expiry_over_ttl_ms(engine: str, ttl_ms: int, prefix: str | None = None) -> float:
    """How long after its TTL an unrenewed lease (a dead node's) can be claimed by
    another node polling every 5 ms: the delay a dead node's names add."""
    store = make_leases(engine, prefix or run_prefix(), ttl_ms)
    try:
        # From before the claim: the broker starts the TTL when it executes the
        # claim, after this, so an honest lease is never claimable before t0 + TTL.
        t0 = time.monotonic()
        if store.claim("dead", "node-dead") is None:
            raise RuntimeError(f"{engine}: could not claim")
        deadline = t0 + ttl_ms / 1000 + 10 * IO_TIMEOUT
        while store.claim("dead", "node-b") is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{engine}: lease never expired")
            time.sleep(0.005)
        return (time.monotonic() - t0) * 1000 - ttl_ms
    finally:
        store.close()


# ------------------------------------------------------------------ broker restart


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listening on {port}")


@contextlib.contextmanager
def private_server(cmd: list[str], port: int) -> Iterator[Callable[[], None]]:
    """A broker process of our own (never the shared one); yields ``restart``, which
    kills it with SIGKILL (a crash, not a clean shutdown) and starts it again."""
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(port)

    def restart() -> None:
        procs[-1].kill()
        procs[-1].wait(IO_TIMEOUT)
        start()

    start()
    try:
        yield restart
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(IO_TIMEOUT)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(IO_TIMEOUT)


def restart_redis() -> dict[str, Any]:
    """Redis configured as this machine's (no RDB, no AOF), killed and restarted:
    what a node's lease and the event stream look like afterwards."""
    exe = shutil.which("redis-server")
    if exe is None:
        return {"skipped": "no redis-server on PATH"}
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            exe,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            tmp,
        ]
        with private_server(cmd, port) as restart:
            r = redis.Redis(
                port=port, socket_timeout=IO_TIMEOUT, socket_connect_timeout=CONNECT_TIMEOUT
            )
            r.set("lease:alice", "node-a", nx=True, px=LEASE_TTL_MS)
            for i in range(10):
                r.xadd("events", {b"b": payload(0, i)})
            t0 = time.monotonic()
            restart()
            while True:  # redis-py reconnects on the next command
                try:
                    r.ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.01)
            back_ms = (time.monotonic() - t0) * 1000
            result = {
                "back_after_ms": round(back_ms),
                "lease_kept": r.get("lease:alice") is not None,
                "other_node_can_claim": bool(r.set("lease:alice", "node-b", nx=True)),
                "stream_entries_kept": r.xlen("events"),
                "of": 10,
            }
            r.close()
            return result


def restart_nats() -> dict[str, Any]:
    """nats-server with JetStream on disk (as this machine's), killed and restarted
    while a client stays connected: the lease bucket and the stream afterwards, and
    how long the client took to reconnect by itself."""
    exe = shutil.which("nats-server")
    if exe is None:
        return {"skipped": "no nats-server on PATH"}
    port = free_port()
    lt = LoopThread("nats-restart")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [exe, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", tmp]
        with private_server(cmd, port) as restart:
            reconnected = threading.Event()
            client_errors: list[str] = []

            async def on_reconnect() -> None:
                reconnected.set()

            async def on_error(e: Exception) -> None:
                client_errors.append(repr(e))  # the EOF of the kill: expected

            async def setup() -> tuple[NatsClient, KeyValue, JetStreamContext]:
                nc = await nats.connect(
                    f"nats://127.0.0.1:{port}",
                    reconnect_time_wait=0.05,
                    max_reconnect_attempts=-1,
                    connect_timeout=2,
                    reconnected_cb=on_reconnect,
                    error_cb=on_error,
                )
                js = nc.jetstream(timeout=IO_TIMEOUT)
                kv = await js.create_key_value(bucket="leases", ttl=LEASE_TTL_MS / 1000)
                await kv.create("alice", b"node-a")
                await js.add_stream(name="events", subjects=["events"])
                for i in range(10):
                    await js.publish("events", payload(0, i))
                return nc, kv, js

            try:
                nc, kv, js = lt.run(setup(), 3 * IO_TIMEOUT)
                t0 = time.monotonic()
                restart()
                if not reconnected.wait(30):
                    return {"error": "nats-py did not reconnect in 30 s"}
                back_ms = (time.monotonic() - t0) * 1000

                async def inspect() -> dict[str, Any]:
                    for _ in range(100):  # JetStream may need a moment to recover
                        try:
                            entry = await kv.get("alice")
                            break
                        except Exception:
                            await asyncio.sleep(0.05)
                    else:
                        raise TimeoutError("KV not back")
                    try:
                        await kv.create("alice", b"node-b")
                        other = True
                    except nats.js.errors.KeyWrongLastSequenceError:
                        other = False
                    info = await js.stream_info("events")
                    await nc.close()
                    return {
                        "back_after_ms": round(back_ms),
                        "lease_kept": entry.value == b"node-a",
                        "other_node_can_claim": other,
                        "stream_entries_kept": info.state.messages,
                        "of": 10,
                    }

                return lt.run(inspect(), 10 * IO_TIMEOUT)
            finally:
                lt.close()


# ------------------------------------------------------------------ command line


@dataclass
class Sizes:
    latency: int
    throughput: int
    lease_rounds: int
    expiry_ttl_ms: int
    expiry_rounds: int


FULL_SIZES = Sizes(
    latency=3000, throughput=20_000, lease_rounds=500, expiry_ttl_ms=1000, expiry_rounds=3
)
QUICK_SIZES = Sizes(
    latency=100, throughput=1000, lease_rounds=20, expiry_ttl_ms=300, expiry_rounds=1
)


def fmt_us(us: float) -> str:
    if us != us:  # nan
        return "–"
    if us >= 1000:
        return f"{us / 1000:.2f} ms"
    return f"{us:.0f} µs" if us >= 100 else f"{us:.1f} µs"


def markdown(
    phases: list[PhaseResult],
    leases: list[LeaseResult],
    restarts: dict[str, dict[str, Any]] | None = None,
) -> str:
    """The tables docs/broker-choice.md shows."""
    by = {(p.engine, p.kind): p for p in phases}
    engines = [e for e in ENGINES if (e, "latency") in by]
    lines = [
        "| engine | latency p50 / p99 (500 msg/s) | publish call holds the node | "
        "messages/s (one publisher) | publisher CPU / msg (500/s; flat out) | "
        "subscriber CPU / msg (500/s; flat out) | JetStream ack p50 / p99 |",
        "|:--|--:|--:|--:|--:|--:|--:|",
    ]
    for e in engines:
        lat, tput = by[(e, "latency")], by.get((e, "throughput"))
        lines.append(
            f"| `{e}` | {fmt_us(lat.p50_us)} / {fmt_us(lat.p99_us)} "
            f"| {fmt_us(lat.call_p50_us)} "
            f"| {f'{tput.msgs_per_s:,.0f}' if tput else '–'} "
            f"| {fmt_us(lat.pub_cpu_us)}; {fmt_us(tput.pub_cpu_us) if tput else '–'} "
            f"| {fmt_us(lat.sub_cpu_us)}; {fmt_us(tput.sub_cpu_us) if tput else '–'} "
            f"| {fmt_us(lat.ack_p50_us)} / {fmt_us(lat.ack_p99_us)} |"
        )
    if leases:
        lines += [
            "",
            "| leases | claim p50 / p99 | renew | release | claim a released name | "
            "claimable after the TTL + (median) |",
            "|:--|--:|--:|--:|--:|--:|",
        ]
        for lr in leases:
            cells = [
                f"{fmt_us(lr.ops[op][0])} / {fmt_us(lr.ops[op][1])}"
                for op in ("claim", "renew", "release", "reclaim")
            ]
            over = lr.expiry_over_ttl_ms
            exp = (
                f"{statistics.median(over):.0f} ms (max {max(over):.0f} ms, {len(over)} tries)"
                if over
                else "–"
            )
            lines.append(f"| `{lr.engine}` | {' | '.join(cells)} | {exp} |")
    if restarts:
        lines += [
            "",
            "| broker killed (SIGKILL) and restarted | client back after | lease kept | "
            "another node can then claim it | stream entries kept |",
            "|:--|--:|:--|:--|--:|",
        ]
        for name, f in restarts.items():
            if "back_after_ms" not in f:
                lines.append(f"| `{name}` | {f} | | | |")
                continue
            lines.append(
                f"| `{name}` | {f['back_after_ms']} ms | {'yes' if f['lease_kept'] else 'no'} "
                f"| {'yes' if f['other_node_can_claim'] else 'no'} "
                f"| {f['stream_entries_kept']} of {f['of']} |"
            )
    return "\n".join(lines)


def median_phase(runs: list[PhaseResult]) -> PhaseResult:
    """One engine's phase over several runs: the median of every figure (a run slowed
    by other work on the machine moves the median less than the mean); the counts and
    errors of all runs, so that one bad run shows."""
    first = runs[0]
    numbers = {
        k: float(statistics.median(getattr(r, k) for r in runs))
        for k, v in asdict(first).items()
        if isinstance(v, float)
    }
    return PhaseResult(
        **{
            **asdict(first),
            **numbers,
            "messages": sum(r.messages for r in runs),
            "received": sum(r.received for r in runs),
            "out_of_order": sum(r.out_of_order for r in runs),
            "strays": sum(r.strays for r in runs),
            "errors": [e for r in runs for e in r.errors],
        }
    )


def median_leases(runs: list[LeaseResult]) -> LeaseResult:
    """Median of each op's p50 and p99 over runs; every expiry measured."""
    ops = {
        op: (
            float(statistics.median(r.ops[op][0] for r in runs)),
            float(statistics.median(r.ops[op][1] for r in runs)),
        )
        for op in runs[0].ops
    }
    return LeaseResult(
        runs[0].engine,
        sum(r.rounds for r in runs),
        ops,
        all(r.conflicts_ok for r in runs),
        [ms for r in runs for ms in r.expiry_over_ttl_ms],
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.harness.broker", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    ap.add_argument("--runs", type=int, default=1, help="repeat, report each figure's median")
    ap.add_argument("--engines", default=",".join(ENGINES), help="comma-separated")
    ap.add_argument("--json", type=Path, help="also write every figure here")
    ap.add_argument(
        "--from-json", type=Path, help="print the tables of a saved --json, run nothing"
    )
    sub = ap.add_subparsers(dest="cmd")
    s = sub.add_parser("sub", help="(internal) the subscriber child")
    s.add_argument("engine")
    s.add_argument("prefix")
    sub.add_parser("restart", help="kill and restart private brokers: what survives")
    args = ap.parse_args(argv)
    if args.cmd == "sub":
        return subscriber_main(args.engine, args.prefix)
    if args.cmd == "restart":
        print(json.dumps({"redis": restart_redis(), "nats": restart_nats()}, indent=2))
        return 0
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        print(
            markdown(
                [PhaseResult(**p) for p in saved["phases"]],
                [LeaseResult(**lr) for lr in saved["leases"]],
                saved["restarts"],
            )
        )
        return 0
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    engines = args.engines.split(",")
    every: dict[tuple[str, str], list[PhaseResult]] = {}
    every_lease: dict[str, list[LeaseResult]] = {}
    for run in range(args.runs):  # engines interleaved: load from elsewhere hits all alike
        print(f"# run {run + 1} of {args.runs}", flush=True)
        for engine in engines:
            with Link(engine) as link:
                for res in (link.latency(sizes.latency), link.throughput(sizes.throughput)):
                    print(res.summary(), flush=True)
                    every.setdefault((engine, res.kind), []).append(res)
        for engine in LEASE_ENGINES:
            lr = measure_leases(engine, sizes.lease_rounds)
            lr.expiry_over_ttl_ms = [
                expiry_over_ttl_ms(engine, sizes.expiry_ttl_ms) for _ in range(sizes.expiry_rounds)
            ]
            print(lr, flush=True)
            every_lease.setdefault(engine, []).append(lr)
    phases = [median_phase(runs) for runs in every.values()]
    leases = [median_leases(runs) for runs in every_lease.values()]
    restarts = {"redis": restart_redis(), "nats jetstream": restart_nats()}
    print(json.dumps(restarts))
    print()
    print(markdown(phases, leases, restarts))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "runs": args.runs,
                    "phases": [asdict(p) for p in phases],
                    "leases": [asdict(lr) for lr in leases],
                    "restarts": restarts,
                    "every_run": {
                        f"{e} {k}": [asdict(r) for r in runs] for (e, k), runs in every.items()
                    },
                },
                indent=1,
            )
        )
    bad = [p.summary() for p in phases if not p.ok] + [
        lr.engine for lr in leases if not lr.conflicts_ok
    ]
    if bad:
        print("FAILED:", *bad, sep="\n  ", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
