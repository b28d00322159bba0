"""The idle ceiling: a loop that answers each heartbeat and does nothing else.

    python -m bench.procs.bare_echo

It binds 127.0.0.1 on a free port with the server's socket buffers, prints
``listening on udp://127.0.0.1:PORT`` (the server's banner), then forever: wait
in ``select`` as the server's loop does (with its 0.1 s tick as the timeout),
read every datagram waiting and answer each with a PONG-sized reply. No parsing,
no sessions, no storage: what the server spends beyond this on heartbeats is its
own; what this spends is the machine's price of being woken. SIGTERM ends it.
"""

from __future__ import annotations

import selectors
import socket

from chatroom.server.loop import SOCKET_BUFFER, TICK

REPLY = b"v2 PONG 0"


def main() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):  # as chatroom.server.loop.bind_udp
        sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    print(f"listening on udp://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    recvfrom, sendto = sock.recvfrom, sock.sendto
    while True:
        if not sel.select(TICK):
            continue
        while True:
            try:
                _, addr = recvfrom(2048)
            except BlockingIOError:
                break
            sendto(REPLY, addr)


if __name__ == "__main__":
    main()
