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
import os
import socket
import struct
from collections.abc import Callable, Sequence
from typing import Final, Literal, Protocol

from chatroom.registry import Address

#: Most messages per sendmmsg call (the kernel's UIO_MAXIOV).
MAX_BATCH: Final = 1024
#: Below this many receivers per payload on average, a batch goes by sendto.
SMALL_FANOUT: Final = 4
_MMSGHDR: Final = 64  # sizeof(struct mmsghdr) on LP64
SendMode = Literal["auto", "sendmmsg", "sendto"]


Datagrams = Sequence[tuple[bytes, Sequence[Address]]]


class Sender(Protocol):
    """Sends each payload to its addresses. ``send`` returns how many
    deliveries it had to drop (the socket buffer stayed full)."""

    name: str

    def send(self, items: Datagrams) -> int: ...


class SendTo:
    """A ``sendto`` per delivery: works everywhere."""

    name = "sendto"

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


class SendMmsg:
    """``sendmmsg(2)``: every delivery of a batch, MAX_BATCH per system call.

    One buffer, allocated once, holds MAX_BATCH ``iovec`` (one per payload)
    followed by MAX_BATCH ``mmsghdr``. A message's header is its address's
    cached 16 bytes (sockaddr pointer and length) and its payload's 48-byte
    tail (which iovec; constant fields), precomputed per slot; the array is
    built with ``bytes.join`` and moved into place with one ``memmove``.
    """

    name = "sendmmsg"

    def __init__(self, sock: socket.socket, wait_writable: Callable[[], bool]) -> None:
        if _SENDMMSG is None:
            raise OSError("sendmmsg is not available here")
        self._call = _SENDMMSG
        self._fd = sock.fileno()
        self._family = sock.family
        self._wait = wait_writable
        self._fallback = SendTo(sock, wait_writable)
        self._buf = ctypes.create_string_buffer(MAX_BATCH * (_IOVEC + _MMSGHDR))
        base = ctypes.addressof(self._buf)
        self._msgs = base + MAX_BATCH * _IOVEC
        # msg_iov -> slot i, msg_iovlen = 1, msg_control = NULL, msg_controllen = 0,
        # msg_flags = 0 (+4 padding), msg_len = 0 (+4 padding): 48 bytes.
        self._tails = [
            struct.pack("=QQQQ4x4xI4x", base + i * _IOVEC, 1, 0, 0, 0) for i in range(MAX_BATCH)
        ]
        #: Per address: its sockaddr (kept alive) and the mmsghdr's first 16 bytes.
        self._names: dict[Address, tuple[ctypes.Array[ctypes.c_char], bytes]] = {}

    def _head(self, addr: Address) -> bytes:
        known = self._names.get(addr)
        if known is None:
            if len(self._names) > 65_536:  # bounded: a churn of peers only rebuilds
                self._names.clear()
            raw = _sockaddr(self._family, addr)
            buf = ctypes.create_string_buffer(raw, len(raw))
            known = (buf, struct.pack("=QI4x", ctypes.addressof(buf), len(raw)))
            self._names[addr] = known
        return known[1]

    def send(self, items: Datagrams) -> int:
        # A batch of small fan-outs (rooms of two or three) gains nothing from
        # batching: building each message's header costs what a sendto's fixed
        # part does. Measured per batch, so a destination's datagrams keep their
        # order (one way or the other for the whole batch).
        deliveries = sum(len(addrs) for _, addrs in items)
        if deliveries < SMALL_FANOUT * len(items):
            return self._fallback.send(items)
        dropped = 0
        parts: list[bytes] = []
        count = slots = 0
        keep: list[bytes] = []  # the payloads the iovecs point into, alive until sent
        for payload, addrs in items:
            try:
                heads = [self._head(a) for a in addrs]
            except (OSError, ValueError):  # an address this family cannot reach
                dropped += self._fallback.send(((payload, addrs),))
                continue
            while heads:
                if count == MAX_BATCH or slots == MAX_BATCH:
                    dropped += self._flush(parts, count)
                    parts, count, slots, keep = [], 0, 0, []
                take, heads = heads[: MAX_BATCH - count], heads[MAX_BATCH - count :]
                struct.pack_into(
                    "=QQ", self._buf, slots * _IOVEC, _address_of(payload), len(payload)
                )
                keep.append(payload)
                tail = self._tails[slots]
                parts.append(tail.join(take) + tail)
                count += len(take)
                slots += 1
        if count:
            dropped += self._flush(parts, count)
        return dropped

    def _flush(self, parts: list[bytes], count: int) -> int:
        blob = b"".join(parts)
        ctypes.memmove(self._msgs, blob, len(blob))
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


def _sockaddr(family: int, addr: Address) -> bytes:
    host, port = addr[0], addr[1]
    if family == socket.AF_INET6:
        packed = socket.inet_pton(socket.AF_INET6, host if ":" in host else f"::ffff:{host}")
        return struct.pack("=H", family) + struct.pack("!HI", port, 0) + packed + b"\0" * 4
    packed = socket.inet_pton(socket.AF_INET, host)
    return struct.pack("=H", family) + struct.pack("!H", port) + packed + b"\0" * 8


def sendmmsg_available() -> bool:
    return _SENDMMSG is not None


def make_sender(
    sock: socket.socket, wait_writable: Callable[[], bool], mode: SendMode = "auto"
) -> Sender:
    """The sender ``mode`` names; ``auto``: sendmmsg where available."""
    if mode == "sendto" or (mode == "auto" and not sendmmsg_available()):
        return SendTo(sock, wait_writable)
    return SendMmsg(sock, wait_writable)
