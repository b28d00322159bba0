"""Batched sends (sendmmsg through ctypes) against the portable sendto loop,
on real loopback sockets: the same datagrams reach the same receivers."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator

import pytest

from chatroom.server.sendmany import (
    AUTO_THREADS,
    MAX_BATCH,
    SendMmsg,
    SendTo,
    make_sender,
    sendmmsg_available,
)

pytestmark = pytest.mark.integration

needs_sendmmsg = pytest.mark.skipif(not sendmmsg_available(), reason="no sendmmsg(2) here")


def _receivers(n: int, family: int = socket.AF_INET) -> list[socket.socket]:
    host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    out = []
    for _ in range(n):
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.bind((host, 0))
        s.settimeout(2.0)
        out.append(s)
    return out


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    made: list[socket.socket] = []
    yield made
    for s in made:
        s.close()


def _sender_socket(family: int = socket.AF_INET) -> socket.socket:
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    s.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
    return s


def _received(rx: socket.socket, count: int) -> list[bytes]:
    return [rx.recv(2048) for _ in range(count)]


@needs_sendmmsg
@pytest.mark.parametrize("n", [1, 3, 5, MAX_BATCH + 7])  # 1, 3: the sendto path
def test_every_receiver_gets_every_payload_in_order(sockets: list[socket.socket], n: int) -> None:
    rx = _receivers(n)
    tx = _sender_socket()
    sockets += [*rx, tx]
    addrs = [s.getsockname()[:2] for s in rx]
    items = [(f"payload {i} ".encode() + b"x" * i, addrs) for i in range(3)]
    assert SendMmsg(tx, lambda: True).send(items) == 0
    for s in rx:
        assert _received(s, 3) == [p for p, _ in items]


@needs_sendmmsg
def test_more_payloads_than_slots_in_one_batch(sockets: list[socket.socket]) -> None:
    rx = _receivers(4)
    tx = _sender_socket()
    sockets += [*rx, tx]
    addrs = [s.getsockname()[:2] for s in rx]
    count = MAX_BATCH + 300  # more payloads than iovec slots: flushed midway
    items = [(b"%d" % i, addrs) for i in range(count)]
    assert SendMmsg(tx, lambda: True).send(items) == 0
    for s in rx:
        assert _received(s, count) == [b"%d" % i for i in range(count)]


@needs_sendmmsg
def test_ipv6(sockets: list[socket.socket]) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        rx = _receivers(2, socket.AF_INET6)
    except OSError as exc:
        pytest.skip(f"cannot bind ::1: {exc}")
    tx = _sender_socket(socket.AF_INET6)
    sockets += [*rx, tx]
    addrs = [s.getsockname()[:2] for s in rx]
    assert SendMmsg(tx, lambda: True).send([(b"over v6", addrs)]) == 0
    assert [s.recv(100) for s in rx] == [b"over v6", b"over v6"]


def test_the_fallback_and_the_choice(sockets: list[socket.socket]) -> None:
    rx = _receivers(2)
    tx = _sender_socket()
    sockets += [*rx, tx]
    addrs = [s.getsockname()[:2] for s in rx]
    sender = make_sender(tx, lambda: True, "sendto")
    assert isinstance(sender, SendTo)
    assert sender.send([(b"plain", addrs)]) == 0
    assert [s.recv(100) for s in rx] == [b"plain", b"plain"]
    auto = make_sender(tx, lambda: True)
    auto.close()
    assert auto.name == ("sendmmsg" if sendmmsg_available() else "sendto")


@needs_sendmmsg
@pytest.mark.parametrize("threads", [2, 3])
def test_send_threads_keep_every_receivers_order(
    sockets: list[socket.socket], threads: int
) -> None:
    """A large batch is split across threads by destination: each receiver
    still gets every payload, in order, and the batch is sent when send returns."""
    rx = _receivers(300)
    tx = _sender_socket()
    sockets += [*rx, tx]
    addrs = [s.getsockname()[:2] for s in rx]
    items = [(b"line %d" % i, addrs) for i in range(8)]  # 2,400 deliveries: flushed midway
    sender = SendMmsg(tx, lambda: True, threads)
    try:
        assert sender.threads == threads
        assert sender.send(items) == 0
        for s in rx:
            s.setblocking(False)  # all there already: send waits for every thread
            assert _received(s, 8) == [p for p, _ in items]
    finally:
        sender.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("chatroom-send")]


def test_send_threads_by_default_follow_the_cores(sockets: list[socket.socket]) -> None:
    tx = _sender_socket()
    sockets.append(tx)
    sender = make_sender(tx, lambda: True)
    try:
        cores = len(os.sched_getaffinity(0))
        expected = min(cores, AUTO_THREADS) if sendmmsg_available() else 1
        assert sender.threads == expected
    finally:
        sender.close()
