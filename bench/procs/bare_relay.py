"""The fan-out ceiling: a relay that does nothing but receive and send.

    python -m bench.procs.bare_relay < addresses     # one "host port" per line, then EOF
    python -m bench.procs.bare_relay --sendmmsg < addresses
    python -m bench.procs.bare_relay --routes < routes  # a sender, then its receivers

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

``--routes`` is the bare relay of many small rooms: each input line is a sender's
``host port`` followed by the ``host port`` of each receiver of its room; a datagram
goes to its source's receivers (one dict lookup: the least a relay of many rooms can
do), in the order given, with one ``sendto`` each.
"""

from __future__ import annotations

import socket
import sys

from chatroom.server.loop import SOCKET_BUFFER
from chatroom.server.sendmany import SendMmsg


def main() -> None:
    addrs = []
    routes: dict[tuple[str, int], list[tuple[str, int]]] = {}
    for line in sys.stdin:
        fields = line.split()
        pairs = [(fields[i], int(fields[i + 1])) for i in range(0, len(fields) - 1, 2)]
        addrs.append(pairs[0])
        routes[pairs[0]] = pairs[1:]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):  # as chatroom.server.loop.bind_udp
        sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)
    sock.bind(("127.0.0.1", 0))
    print(f"listening on udp://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    recvfrom, sendto = sock.recvfrom, sock.sendto
    if "--routes" in sys.argv[1:]:
        while True:
            data, source = recvfrom(2048)
            for addr in routes.get(source, ()):
                sendto(data, addr)
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
