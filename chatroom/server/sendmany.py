"""One datagram to many addresses in few system calls: ``sendmmsg(2)``.

Python's socket module has no ``sendmmsg``. Every delivery through ``sendto``
costs a system call, and on loopback most of a delivery's cost is that call's
fixed part, not the copy. ``SendMmsg`` calls libc's ``sendmmsg`` through ctypes
with up to ``MAX_BATCH`` messages per call.

Why ctypes and not a C extension: the package stays pure Python (nothing to
compile at install), and the per-message work left in Python is small: the
``struct mmsghdr`` array is built as one bytes blob by ``bytes.join`` from a
16-byte head cached per address (its ``sockaddr`` pointer and length) and a
48-byte tail per payload (its ``iovec`` pointer, constant fields). One dict
lookup per recipient, then one copy into a ctypes buffer (the kernel writes
each message's ``msg_len`` back, so it must be writable) and one call.
docs/benchmarks.md has the measurements that chose it.

``SendTo`` is the portable fallback (a ``sendto`` per address); ``make_sender``
picks ``sendmmsg`` where libc has it (Linux) unless told otherwise.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable, Sequence
from typing import Final, Literal, Protocol

from chatroom.registry import Address

#: Most messages per sendmmsg call (the kernel's UIO_MAXIOV).
MAX_BATCH: Final = 1024
#: Below this many receivers per payload on average, a batch goes by sendto.
SMALL_FANOUT: Final = 4
#: From this many deliveries in a batch, its sends are split across threads.
PARALLEL_MIN: Final = 128
#: Send threads by default: one per core this process may use, at most this.
AUTO_THREADS: Final = 2
#: Recipient lists whose split into lanes is kept (SendMmsg._splits).
SPLITS_KEPT: Final = 256
#: Most send threads a server may be given (past the cores, threads only wait).
MAX_THREADS: Final = 8
_MMSGHDR: Final = 64  # sizeof(struct mmsghdr) on LP64
SendMode = Literal["auto", "sendmmsg", "sendto"]

log = logging.getLogger("chatroom.server")


Datagrams = Sequence[tuple[bytes, Sequence[Address]]]


class Sender(Protocol):
    """Sends each payload to its addresses. ``send`` returns how many
    deliveries it had to drop (the socket buffer stayed full)."""

    name: str

    @property
    def threads(self) -> int: ...

    def send(self, items: Datagrams) -> int: ...
    def close(self) -> None: ...


class SendTo:
    """A ``sendto`` per delivery: works everywhere."""

    name = "sendto"
    threads = 1

    def __init__(self, sock: socket.socket, wait_writable: Callable[[], bool]) -> None:
        self._sendto = sock.sendto
        self._wait = wait_writable

    def send(self, items: Datagrams) -> int:
        dropped = 0
        sendto = self._sendto
        for payload, addrs in items:
            for addr in addrs:
                try:
                    sendto(payload, addr)
                except BlockingIOError:
                    # Send buffer full: wait briefly once, then count a drop; a v2
                    # client recovers it by pulling the gap.
                    if self._wait():
                        try:
                            sendto(payload, addr)
                            continue
                        except OSError:
                            pass
                    dropped += 1
                except OSError:
                    dropped += 1
        return dropped

    def close(self) -> None:
        """Nothing to release."""


def _libc_sendmmsg() -> Callable[..., int] | None:
    if not hasattr(os, "sched_getaffinity") or struct.calcsize("P") != 8:  # Linux, LP64
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.sendmmsg
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int)
    fn.restype = ctypes.c_int
    return fn


_SENDMMSG = _libc_sendmmsg()
_IOVEC: Final = 16  # sizeof(struct iovec)


def _address_by_ctypes(payload: bytes) -> int:
    """Where CPython keeps a bytes object's contents (valid while it lives)."""
    value = ctypes.cast(ctypes.c_char_p(payload), ctypes.c_void_p).value
    assert value is not None
    return value


def _bytes_offset() -> int | None:
    """The offset of a bytes object's contents from its ``id()`` in this
    CPython (its ``ob_sval``), checked against ctypes on a few samples; None if
    the two ever disagree. ``id() + offset`` is plain arithmetic, where the
    ctypes round trip cost ~1.5 us per payload, as much as the send it batches."""
    samples = [b"x", b"chatroom", bytes(range(256)), b"v2 EV 1 2 message a b"]
    offsets = {_address_by_ctypes(b) - id(b) for b in samples}
    return offsets.pop() if len(offsets) == 1 else None


_OFFSET = _bytes_offset()


def _address_of(payload: bytes) -> int:
    if _OFFSET is not None:
        return id(payload) + _OFFSET
    return _address_by_ctypes(payload)


class _Lane:
    """One ``sendmmsg`` array: MAX_BATCH ``iovec`` (one per payload) followed
    by MAX_BATCH ``mmsghdr``, allocated once, and the messages queued in it.

    A message's header is its address's cached 16 bytes (sockaddr pointer and
    length) and its payload's 48-byte tail (which iovec; constant fields),
    precomputed per slot; the array is built with ``bytes.join`` and moved into
    place with one ``memmove``.
    """

    def __init__(self, fd: int, wait_writable: Callable[[], bool]) -> None:
        assert _SENDMMSG is not None
        self._call = _SENDMMSG
        self._fd = fd
        self._wait = wait_writable
        self._buf = ctypes.create_string_buffer(MAX_BATCH * (_IOVEC + _MMSGHDR))
        base = ctypes.addressof(self._buf)
        self._msgs = base + MAX_BATCH * _IOVEC
        # msg_iov -> slot i, msg_iovlen = 1, msg_control = NULL, msg_controllen = 0,
        # msg_flags = 0 (+4 padding), msg_len = 0 (+4 padding): 48 bytes.
        self._tails = [
            struct.pack("=QQQQ4x4xI4x", base + i * _IOVEC, 1, 0, 0, 0) for i in range(MAX_BATCH)
        ]
        self._parts: list[bytes] = []
        self._keep: list[bytes] = []  # the payloads the iovecs point into, alive until sent
        self.count = 0
        self._slots = 0

    @property
    def room(self) -> int:
        """How many more messages fit before a flush (0: flush first)."""
        return 0 if self._slots == MAX_BATCH else MAX_BATCH - self.count

    def add(self, payload: bytes, heads: list[bytes]) -> None:
        """Queue ``payload`` to the addresses of ``heads`` (at most ``room``)."""
        slot = self._slots
        struct.pack_into("=QQ", self._buf, slot * _IOVEC, _address_of(payload), len(payload))
        self._keep.append(payload)
        tail = self._tails[slot]
        self._parts.append(tail.join(heads) + tail)
        self.count += len(heads)
        self._slots = slot + 1

    def flush(self) -> int:
        """Send what is queued; how many of it had to be dropped."""
        count = self.count
        blob = b"".join(self._parts)
        ctypes.memmove(self._msgs, blob, len(blob))
        try:
            return self._send(count)
        finally:
            self._parts, self._keep, self.count, self._slots = [], [], 0, 0

    def _send(self, count: int) -> int:
        done = dropped = 0
        waited = False
        while done < count:
            sent = self._call(self._fd, self._msgs + done * _MMSGHDR, count - done, 0)
            if sent > 0:
                done += sent
                continue
            err = ctypes.get_errno()
            if err == errno.EINTR:
                continue
            if err in (errno.EAGAIN, errno.EWOULDBLOCK):
                if not waited and self._wait():  # buffer full: wait briefly once
                    waited = True
                    continue
                return dropped + count - done
            done += 1  # this one message cannot go (e.g. an unroutable address)
            dropped += 1
        return dropped


class _Helper:
    """A thread that flushes one lane while the loop's thread flushes another.

    ``sendmmsg`` through ctypes releases the GIL, so the two system calls run
    on two cores at once; two raw locks hand the job over and back (the
    cheapest wake-up Python has: no condition variable, no queue)."""

    def __init__(self, lane: _Lane, index: int) -> None:
        self.lane = lane
        self._go = threading.Lock()
        self._go.acquire()
        self._done = threading.Lock()
        self._done.acquire()
        self._dropped = 0
        self._closing = False
        name = f"chatroom-send-{index}"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def start(self) -> None:
        self._go.release()

    def join(self) -> int:
        self._done.acquire()
        return self._dropped

    def close(self) -> None:
        self._closing = True
        self._go.release()
        self._thread.join(1.0)

    def _run(self) -> None:
        while True:
            self._go.acquire()
            if self._closing:
                return
            count = self.lane.count
            try:
                self._dropped = self.lane.flush()
            except Exception:  # never leave the loop waiting: count them dropped
                log.exception("send thread")
                self._dropped = count
            self._done.release()


class SendMmsg:
    """``sendmmsg(2)``: every delivery of a batch, MAX_BATCH per system call,
    on ``threads`` threads at once when the batch is large.

    Each thread has its own array (``_Lane``); a destination's datagrams all go
    through the same lane (its address's hash picks it), so each receiver still
    gets them in order, and ``send`` returns only once every lane is done.
    """

    name = "sendmmsg"

    def __init__(
        self, sock: socket.socket, wait_writable: Callable[[], bool], threads: int = 1
    ) -> None:
        if _SENDMMSG is None:
            raise OSError("sendmmsg is not available here")
        self._family = sock.family
        self._fallback = SendTo(sock, wait_writable)
        self._lanes = [_Lane(sock.fileno(), wait_writable) for _ in range(max(1, threads))]
        self._helpers = [_Helper(lane, i) for i, lane in enumerate(self._lanes[1:], 1)]
        #: Per address: its sockaddr (kept alive), the mmsghdr's first 16 bytes
        #: and its lane.
        self._names: dict[Address, tuple[ctypes.Array[ctypes.c_char], bytes, int]] = {}
        #: A cache dropped during a send: its sockaddrs stay alive until it ends.
        self._retired: list[object] = []
        #: A recipient tuple's split into lanes, by (lanes in use, tuple): a
        #: room's members are the same tuple, by value, message after message,
        #: and hashing and comparing it in C costs a fraction of splitting it
        #: again in Python. Its headers point into ``_names``' sockaddrs, so
        #: it is emptied whenever that is.
        self._splits: dict[tuple[int, tuple[Address, ...]], list[list[bytes]]] = {}

    @property
    def threads(self) -> int:
        return len(self._lanes)

    def close(self) -> None:
        for helper in self._helpers:
            helper.close()
        self._helpers = []
        del self._lanes[1:]

    def _entry(self, addr: Address) -> tuple[ctypes.Array[ctypes.c_char], bytes, int]:
        known = self._names.get(addr)
        if known is None:
            if len(self._names) > 65_536:  # bounded: a churn of peers only rebuilds
                self._retired.append(self._names)
                self._names = {}
                self._splits.clear()
            raw = _sockaddr(self._family, addr)
            buf = ctypes.create_string_buffer(raw, len(raw))
            head = struct.pack("=QI4x", ctypes.addressof(buf), len(raw))
            known = (buf, head, hash(addr) % len(self._lanes))
            self._names[addr] = known
        return known

    def _split(self, addrs: Sequence[Address], spread: int) -> list[list[bytes]]:
        """The headers of ``addrs``, one list per lane in use (not to be changed)."""
        if type(addrs) is not tuple:
            return self._split_now(addrs, spread)
        key = (spread, addrs)
        split = self._splits.get(key)
        if split is None:
            if len(self._splits) >= SPLITS_KEPT:
                self._splits.clear()
            split = self._split_now(addrs, spread)
            if not self._retired:  # else some headers die with this send
                self._splits[key] = split
        return split

    def _split_now(self, addrs: Sequence[Address], spread: int) -> list[list[bytes]]:
        entry = self._entry
        if spread == 1:
            return [[entry(a)[1] for a in addrs]]
        out: list[list[bytes]] = [[] for _ in range(spread)]
        for a in addrs:
            _, head, lane = entry(a)
            out[lane].append(head)
        return out

    def send(self, items: Datagrams) -> int:
        # A batch of small fan-outs (rooms of two or three) gains nothing from
        # batching: building each message's header costs what a sendto's fixed
        # part does. Measured per batch, so a destination's datagrams keep their
        # order (one way or the other for the whole batch).
        deliveries = sum(len(addrs) for _, addrs in items)
        if deliveries < SMALL_FANOUT * len(items):
            return self._fallback.send(items)
        # Waking a second thread costs what a few dozen deliveries do.
        spread = len(self._lanes) if deliveries >= PARALLEL_MIN else 1
        lanes = self._lanes[:spread]
        dropped = 0
        for payload, addrs in items:
            try:
                split = self._split(addrs, spread)
            except (OSError, ValueError):  # an address this family cannot reach
                dropped += self._fallback.send(((payload, addrs),))
                continue
            for lane, heads in zip(lanes, split, strict=True):
                while heads:
                    if not lane.room:
                        dropped += self._flush(spread)
                    room = lane.room
                    if len(heads) <= room:
                        lane.add(payload, heads)
                        break
                    lane.add(payload, heads[:room])
                    heads = heads[room:]
        dropped += self._flush(spread)
        self._retired.clear()
        return dropped

    def _flush(self, spread: int) -> int:
        """Send every lane's queue (the helpers' on their threads); wait for all."""
        busy = [h for h in self._helpers[: spread - 1] if h.lane.count]
        for helper in busy:
            helper.start()
        first = self._lanes[0]
        dropped = first.flush() if first.count else 0
        for helper in busy:
            dropped += helper.join()
        return dropped


def _sockaddr(family: int, addr: Address) -> bytes:
    host, port = addr[0], addr[1]
    if family == socket.AF_INET6:
        packed = socket.inet_pton(socket.AF_INET6, host if ":" in host else f"::ffff:{host}")
        return struct.pack("=H", family) + struct.pack("!HI", port, 0) + packed + b"\0" * 4
    packed = socket.inet_pton(socket.AF_INET, host)
    return struct.pack("=H", family) + struct.pack("!H", port) + packed + b"\0" * 8


def sendmmsg_available() -> bool:
    return _SENDMMSG is not None


def auto_threads() -> int:
    """Send threads by default: the cores this process may use, at most
    AUTO_THREADS (docs/benchmarks.md measured two; more is a flag away)."""
    return max(1, min(AUTO_THREADS, len(os.sched_getaffinity(0))))


def make_sender(
    sock: socket.socket,
    wait_writable: Callable[[], bool],
    mode: SendMode = "auto",
    threads: int | None = None,
) -> Sender:
    """The sender ``mode`` names; ``auto``: sendmmsg where available, on
    ``threads`` threads (None: ``auto_threads()``)."""
    if mode == "sendto" or (mode == "auto" and not sendmmsg_available()):
        return SendTo(sock, wait_writable)
    return SendMmsg(sock, wait_writable, auto_threads() if threads is None else threads)
