"""Many small rooms: 200 rooms of 3, one sender in each (issue 13).

Most traffic of a chat with rooms is this: many conversations of a few people,
where the fixed cost of a message (receive, parse, number, store, acknowledge)
counts more than the fan-out. One test per commit mode (``chatroom serve
--commit``: the writer process, the default, and the commit thread it replaced)
starts a real ``chatroom serve`` (``--rate-limit off --max-sessions-per-ip 0``,
storage on: a fresh SQLite file, every message committed before it is shown) and
600 lean, protocol-correct v2 sessions in this process (bench/harness/v2load.py
``LeanV2Fleet`` with ``room_size=3``: cookie login straight into ``#g<k>``,
``SAY`` with up to ``WINDOW`` unacknowledged lines per sender, a cumulative
``ACK`` every 16 events). The first member of each room sends; the other two
receive every line as an ``EV``.

The ceiling is the bare relay doing the same fan-out (bench/procs/bare_relay.py
``--routes``: ``recvfrom``, one dict lookup of the source's room, a ``sendto`` to
each of its two other members) to the same 600 sockets, driven by the same fleet
(a forwarded SAY is a delivery and releases its sender's window, as the ACKED
does for the server). Server and relay rounds alternate in the same test.

``extra_info``: ``deliveries_per_s`` / ``bare_deliveries_per_s`` (best round:
deliveries / first send .. last arrival), ``ratio_to_bare`` (of the best rounds)
and ``ratio_median`` (median of the per-round ratios, each server round against
the relay round just before it), loaded latency p50/p99, the server's CPU per
message and the fleet's, lost and duplicated deliveries.

A floor that can fail, also in quick mode: the server must reach
``SMALLROOMS_FLOOR`` of the relay (a collapse, not noise: the target is 0.5).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import pytest

from bench.conftest import QUICK
from bench.harness.measure import RoundStats, cpu_seconds
from bench.harness.relay import Relay
from bench.harness.v2load import LeanV2Fleet
from testkit.processes import chatroom_cmd

ROOMS = 20 if QUICK else 200
ROOM_SIZE = 3
#: Lines per sender per round: 200 x 100 x 2 = 40,000 deliveries a round.
PER_SENDER = 10 if QUICK else 100
#: Unacknowledged lines per sender (800 in flight in all: the server's input
#: queue holds them with room to spare).
WINDOW = 4
ROUNDS = 1 if QUICK else 7
SMALLROOMS_FLOOR = 0.1
COMMITS = ("process",) if QUICK else ("process", "thread")

Benchmark = Any


def _server(db: Path, commit: str) -> Relay:
    cmd = chatroom_cmd("serve", "--host", "127.0.0.1", "--port", "0")
    cmd += ["--db", str(db), "--rate-limit", "off", "--max-sessions-per-ip", "0"]
    cmd += ["--commit", commit, "-q"]
    return Relay.start(f"server[{commit}]", cmd)


def _med(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


@pytest.mark.parametrize("commit", COMMITS)
def test_small_rooms(benchmark: Benchmark, tmp_path: Path, commit: str) -> None:
    benchmark.group = f"smallrooms.{ROOMS}x{ROOM_SIZE}"
    loaded: list[RoundStats] = []
    bare_loaded: list[RoundStats] = []
    cpu: list[float] = []
    fleet_cpu: list[float] = []
    with (
        _server(tmp_path / "chat.db", commit) as server,
        LeanV2Fleet(ROOMS * ROOM_SIZE, server.addr, room_size=ROOM_SIZE) as fleet,
    ):
        fleet.login()
        rooms = fleet.rooms()
        senders = [members[0] for members in rooms.values()]
        routes = [[m.sock.getsockname()[:2] for m in members] for members in rooms.values()]
        with Relay.bare_routes(routes) as bare:
            if not QUICK:  # warm both up (imports, caches, the SQLite file)
                fleet.round(PER_SENDER // 4, WINDOW, senders=senders)
                fleet.round(PER_SENDER // 4, WINDOW, senders=senders, target=bare.addr)

            def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
                bare_loaded.append(
                    fleet.round(PER_SENDER, WINDOW, senders=senders, target=bare.addr)
                )
                return (), {}

            def timed() -> None:
                before, mine = cpu_seconds(server.proc.pid), time.process_time()
                loaded.append(fleet.round(PER_SENDER, WINDOW, senders=senders))
                cpu.append(cpu_seconds(server.proc.pid) - before)
                fleet_cpu.append(time.process_time() - mine)

            benchmark.pedantic(timed, setup=setup, rounds=ROUNDS, iterations=1)
        assert server.proc.poll() is None, server.banner.decode(errors="replace")

    for rnd in [*loaded, *bare_loaded]:
        assert rnd.delivered == rnd.expected, rnd  # nothing lost: v2 retransmits
        assert rnd.duplicates == 0, rnd
    best = max(r.deliveries_per_s for r in loaded)
    bare_best = max(r.deliveries_per_s for r in bare_loaded)
    ratios = [
        s.deliveries_per_s / b.deliveries_per_s for s, b in zip(loaded, bare_loaded, strict=True)
    ]
    assert best / bare_best >= SMALLROOMS_FLOOR, (best, bare_best)
    messages = loaded[0].messages
    benchmark.extra_info.update(
        impl=f"server, commit {commit}",
        commit=commit,
        rooms=ROOMS,
        room_size=ROOM_SIZE,
        senders=len(senders),
        messages=messages,
        window=WINDOW,
        rounds=len(loaded),
        deliveries_per_s=round(best),
        bare_deliveries_per_s=round(bare_best),
        ratio_to_bare=round(best / bare_best, 3),
        ratio_median=round(_med(ratios), 3),
        p50_us=round(_med([r.latency_us(0.5) for r in loaded]), 1),
        p99_us=round(_med([r.latency_us(0.99) for r in loaded]), 1),
        bare_p50_us=round(_med([r.latency_us(0.5) for r in bare_loaded]), 1),
        bare_p99_us=round(_med([r.latency_us(0.99) for r in bare_loaded]), 1),
        server_cpu_us_per_message=round(_med(cpu) / messages * 1e6, 1),
        fleet_cpu_us_per_message=round(_med(fleet_cpu) / messages * 1e6, 1),
        rounds_deliveries_per_s=[round(r.deliveries_per_s) for r in loaded],
        rounds_bare_deliveries_per_s=[round(r.deliveries_per_s) for r in bare_loaded],
    )
