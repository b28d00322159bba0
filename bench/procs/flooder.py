"""A client that floods the room, for bench/test_bench_flood.py.

    python -m bench.procs.flooder HOST PORT classic|v2 NAME

Logs in (classic: ``L NAME``; v2: the real client session, cookie and all), prints
``ready``, then obeys stdin: ``go [RATE]`` floods (RATE datagrams/s, or as fast as
it can without one), ``stop`` pauses (and prints the counters
so far as one JSON line), end of input quits (v2: ``BYE``) and prints them once
more. Flooding is a blocking ``sendto`` loop, as fast as this process can send, of
``C NAME flood <k>`` (classic) or ``v2 SAY <sid> <seq> flood <k>`` (v2: a raw frame
with the session's id and a fresh seq each time, so the server cannot treat it as a
retry: a client that ignores the limit the server announced, unlike ours). Between
bursts of 256 datagrams it reads what the server sent (errors, events; the v2
session acks them as our client would).
"""

from __future__ import annotations

import json
import random
import select
import socket
import sys
import time

from chatroom import protocol as p
from chatroom.client.effects import LoggedIn, Output, Transmit
from chatroom.client.session import ClientSession, SessionConfig

BURST = 256


def main() -> None:
    host, port, dialect, name = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    server = (host, port)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    counts = {"sent": 0, "received": 0, "acked": 0, "errors": 0}
    session = ClientSession(name, random.Random(7), SessionConfig(history=0))

    def apply(outputs: list[Output]) -> bool:
        logged_in = False
        for out in outputs:
            if isinstance(out, Transmit):
                sock.sendto(out.payload, server)
            elif isinstance(out, LoggedIn):
                logged_in = True
        return logged_in

    def drain() -> None:
        sock.setblocking(False)
        try:
            while True:
                try:
                    data = sock.recv(2048)
                except (BlockingIOError, InterruptedError):
                    return
                counts["received"] += 1
                if data.startswith(b"v2 ACKED "):
                    counts["acked"] += 1
                elif data.startswith((b"v2 ERR ", b"ERR ")):
                    counts["errors"] += 1
                if dialect == "v2":
                    apply(session.receive(data, time.monotonic()))
        finally:
            sock.setblocking(True)

    # ------------------------------------------------------------------ login
    deadline = time.monotonic() + 30
    if dialect == "classic":
        sock.settimeout(0.5)
        while True:
            sock.sendto(f"L {name}".encode(), server)
            try:
                if sock.recv(2048) == b"OK":
                    break
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise SystemExit("flooder: no OK") from None
        sock.settimeout(None)
        prefix = f"C {name} flood ".encode()
    else:
        done = apply(session.login(name, time.monotonic()))
        while not done:
            if time.monotonic() > deadline:
                raise SystemExit("flooder: no WELCOME")
            wait = (session.deadline() or time.monotonic() + 0.5) - time.monotonic()
            if select.select([sock], [], [], max(0.0, wait))[0]:
                data = sock.recv(2048)
                done = apply(session.receive(data, time.monotonic()))
            apply(session.tick(time.monotonic()))
        prefix = b""
    print("ready", flush=True)

    # ------------------------------------------------------------------ obey stdin
    flooding = False
    rate = 0.0  # datagrams per second; 0: as fast as possible
    next_burst = 0.0
    k = 0
    seq = 1_000_000_000
    sendto = sock.sendto
    stdin = sys.stdin.buffer
    while True:
        now = time.monotonic()
        wait = max(0.0, min(0.2, next_burst - now)) if flooding else 0.2
        ready = select.select([stdin, sock], [], [], wait)[0]
        if sock in ready:
            drain()
        if stdin in ready:
            line = stdin.readline()
            if not line:
                break
            verb, _, arg = line.strip().partition(b" ")
            flooding = verb == b"go"
            if flooding:
                rate = float(arg or 0)
                next_burst = time.monotonic()
            else:  # "stop": say how far we got
                print(json.dumps(counts), flush=True)
        if dialect == "v2":
            apply(session.tick(time.monotonic()))
        if not flooding or time.monotonic() < next_burst:
            continue
        if dialect == "classic":
            for _ in range(BURST):
                sendto(prefix + b"%d" % k, server)
                k += 1
        else:
            head = f"v2 SAY {session.sid} ".encode()
            for _ in range(BURST):
                sendto(head + b"%d flood %d" % (seq, k), server)
                seq += 1
                k += 1
        counts["sent"] += BURST
        if rate > 0:
            next_burst += BURST / rate
    if dialect == "v2" and session.sid:
        sock.sendto(p.encode_client(p.Bye(session.sid)), server)
    else:
        sock.sendto(f"Q {name}".encode(), server)
    print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    main()
