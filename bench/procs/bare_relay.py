"""The fan-out ceiling: a relay that does nothing but receive and send.

    python -m bench.procs.bare_relay < addresses     # one "host port" per line, then EOF
    python -m bench.procs.bare_relay --sendmmsg < addresses

It binds 127.0.0.1 on a free port with the server's socket buffers, prints
``listening on udp://127.0.0.1:PORT`` (the server's banner, so the benchmark starts
both the same way), then forever: one blocking ``recvfrom``, then ``sendto`` of the
same bytes to every address, in the order given. No parsing, no registry, no
storage, no error handling: whatever the server does beyond this is its overhead.
SIGTERM ends it (the default action; the benchmark reaps it).

``--sendmmsg`` is the batched ceiling: the same relay, but each received datagram
goes to all the addresses in one ``sendmmsg(2)`` (the server's own sender,
chatroom/server/sendmany.py). The naive relay stays the baseline, so that the
ratio to it keeps its meaning.
"""

from __future__ import annotations

import socket
import sys

from chatroom.server.loop import SOCKET_BUFFER
from chatroom.server.sendmany import SendMmsg


def main() -> None:
    addrs = []
    for line in sys.stdin:
        host, port = line.split()
        addrs.append((host, int(port)))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):  # as chatroom.server.loop.bind_udp
        sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)
    sock.bind(("127.0.0.1", 0))
    print(f"listening on udp://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    recvfrom, sendto = sock.recvfrom, sock.sendto
    if "--sendmmsg" in sys.argv[1:]:
        send = SendMmsg(sock, lambda: True).send
        while True:
            data, _ = recvfrom(2048)
            send(((data, addrs),))
    while True:
        data, _ = recvfrom(2048)
        for addr in addrs:
            sendto(data, addr)


if __name__ == "__main__":
    main()
