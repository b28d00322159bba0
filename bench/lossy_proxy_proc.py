"""tests/lossy_proxy.py as a process, for the benchmarks.

    python -m bench.lossy_proxy_proc HOST PORT [--drop P] [--seed S]

Forwards between clients and the server at HOST:PORT, dropping each datagram with
probability P in each direction (seeded). Prints ``listening on udp://HOST:PORT``
(the server's banner, so bench/fanout.py's ``Relay`` starts it like a server); on
SIGTERM prints its counters as one JSON line and exits. In its own process so that
its forwarding does not take the GIL from the clients it sits in front of.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading

from tests.lossy_proxy import Impairment, LossyProxy


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
