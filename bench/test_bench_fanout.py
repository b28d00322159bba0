"""End-to-end fan-out: a real ``chatroom serve`` against a bare relay (issue 6).

For each registry kind and N receivers (10, 100, 1000; quick mode: 10), one test
starts a real server process on loopback (``--port 0 --rate-limit off``, storage on:
a fresh SQLite file, every message committed before it is sent) and, in the same
test, the bare relay (bench/procs/bare_relay.py: recvfrom, then sendto to the N addresses,
nothing else) to the *same* receiver sockets. Rounds of the two alternate, so each
server round has a bare round measured moments before it, on the same noisy machine;
``ratio_to_bare`` is the median of those per-round ratios.

Groups are ``fanout.<N>``; ``extra_info`` carries the numbers the report renders
(bench/harness/fanout.py explains how a round is measured):

- ``deliveries_per_s`` / ``bare_deliveries_per_s``: the best round's delivered
  datagrams / (last kernel arrival - first send). The best, not the median: on a
  shared 2-core machine, load from elsewhere only ever slows a round down, so the
  fastest round is the best estimate of what the relay can do (as ``timeit`` takes
  the minimum); ``*_median`` has the medians;
- ``ratio_to_bare``: server / bare of those best rounds; ``ratio_median``: the median
  of the per-round ratios (each server round against the bare round just before it);
- ``p50_us`` / ``p99_us`` (and ``bare_...``): latency under that full load, median
  over rounds; mostly the queue the sender keeps in flight (``window`` messages);
- ``idle_p50_us`` / ``idle_p99_us`` (and ``bare_...``): latency with one message in
  flight: the fan-out itself (for the server, with a commit per message);
- ``lost`` / ``expected``: datagrams, summed over the loaded rounds.

What pytest-benchmark's own time means here: one timed call is one loaded server
round, from the first send until the last receiver in fan-out order has the last
message. It depends on the round's message count; compare the deliveries per second
instead. Everything else (starting processes, logging in, the bare rounds, draining
the receivers) happens in untimed setup.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import pytest

from bench.conftest import QUICK, sizes
from bench.harness.fanout import Rig, _Round
from bench.harness.measure import RoundStats
from bench.harness.relay import Relay
from chatroom.registry import REGISTRY_KINDS

SIZES = sizes((2, 10, 100, 1_000), quick=(10,))
#: Deliveries per loaded round: about half a second of work for either relay. Rounds
#: are short and many, so that a burst of load from elsewhere on a shared 2-core
#: machine spoils a round or two, not the median.
ROUND_DELIVERIES = 100_000
#: Quick mode: 3 rounds of a few milliseconds each, so that one the shared
#: machine interrupts does not decide the floor (the best round counts).
ROUNDS = 3 if QUICK else 7
#: The least server / bare relay ratio a quick run accepts (see the assertion).
FANOUT_FLOOR = 0.15

Benchmark = Any  # pytest-benchmark's fixture has no public type


def loaded_messages(n: int) -> int:
    return 40 if QUICK else max(50, ROUND_DELIVERIES // n)


def idle_messages(n: int) -> int:
    """One message in flight at a time: enough samples, a fraction of a second."""
    return 5 if QUICK else max(20, min(300, 20_000 // n))


def med(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("kind", REGISTRY_KINDS)
def test_fanout(benchmark: Benchmark, tmp_path: Path, kind: str, n: int) -> None:
    benchmark.group = f"fanout.{n}"
    messages, idle = loaded_messages(n), idle_messages(n)
    loaded: list[RoundStats] = []
    bare_loaded: list[RoundStats] = []
    idle_rounds: list[RoundStats] = []
    bare_idle: list[RoundStats] = []
    batched_loaded: list[RoundStats] = []
    pending: list[_Round] = []
    with (
        Rig(n, max_messages=messages) as rig,
        Relay.server(tmp_path / "chat.db", kind) as server,
    ):
        rig.login(server.addr)
        window = rig.window
        with (
            Relay.bare(rig.addresses) as bare,
            Relay.bare(rig.addresses, batched=True) as batched,
        ):
            rig.settle(bare.addr)
            rig.settle(batched.addr)
            # Warm both up (imports, caches, the SQLite file, the server's writer
            # process), in quick mode too: its one round of 40 messages lasts a few
            # milliseconds, and a cold first batch measured 0.11-0.14x where warm
            # ones measure 0.4-0.6x (a collapse to the floor, noise not).
            rig.measure(bare.addr, messages // 4, window)
            rig.measure(server.addr, messages // 4, window)

            def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
                if pending:  # the previous timed round: drain and account, untimed
                    loaded.append(rig.collect(pending.pop()))
                idle_rounds.append(rig.measure(server.addr, idle, 1))
                bare_idle.append(rig.measure(bare.addr, idle, 1))
                bare_loaded.append(rig.measure(bare.addr, messages, window))
                batched_loaded.append(rig.measure(batched.addr, messages, window))
                return (server.addr, messages, window), {}

            def timed(addr: tuple[str, int], count: int, win: int) -> None:
                pending.append(rig.blast(addr, count, win))

            benchmark.pedantic(timed, setup=setup, rounds=ROUNDS, iterations=1)
            loaded.append(rig.collect(pending.pop()))
        assert server.proc.poll() is None, server.banner.decode(errors="replace")

    for rnd in [*loaded, *bare_loaded, *idle_rounds, *bare_idle]:
        assert rnd.delivered > 0, rnd
        assert rnd.seconds > 0, rnd
    ratios = [
        s.deliveries_per_s / b.deliveries_per_s for s, b in zip(loaded, bare_loaded, strict=True)
    ]
    best = max(r.deliveries_per_s for r in loaded)
    bare_best = max(r.deliveries_per_s for r in bare_loaded)
    batched_best = max(r.deliveries_per_s for r in batched_loaded)
    batched_ratios = [
        s.deliveries_per_s / b.deliveries_per_s for s, b in zip(loaded, batched_loaded, strict=True)
    ]
    if QUICK:
        # make test's smoke run can fail, but only on a clear regression: the
        # server against the bare relay in the same test. Quick runs measure
        # 0.54-0.66 at N = 10 on this idle 2-core machine, but 0.20-0.28 with
        # other processes busy on both cores (the server has two threads to the
        # relay's one), so the floor sits below that: a collapse fails, noise not.
        assert best / bare_best >= FANOUT_FLOOR, (best, bare_best)
    benchmark.extra_info.update(
        impl=kind,
        size=n,
        receivers=n,
        messages=messages,
        window=window,
        rounds=len(loaded),
        deliveries_per_s=round(best),
        bare_deliveries_per_s=round(bare_best),
        ratio_to_bare=round(best / bare_best, 3),
        deliveries_per_s_median=round(med([r.deliveries_per_s for r in loaded])),
        bare_deliveries_per_s_median=round(med([r.deliveries_per_s for r in bare_loaded])),
        ratio_median=round(med(ratios), 3),
        batched_deliveries_per_s=round(batched_best),
        batched_ratio_median=round(med(batched_ratios), 3),
        p50_us=round(med([r.latency_us(0.5) for r in loaded]), 1),
        p99_us=round(med([r.latency_us(0.99) for r in loaded]), 1),
        bare_p50_us=round(med([r.latency_us(0.5) for r in bare_loaded]), 1),
        bare_p99_us=round(med([r.latency_us(0.99) for r in bare_loaded]), 1),
        idle_messages=idle,
        idle_p50_us=round(med([r.latency_us(0.5) for r in idle_rounds]), 1),
        idle_p99_us=round(med([r.latency_us(0.99) for r in idle_rounds]), 1),
        bare_idle_p50_us=round(med([r.latency_us(0.5) for r in bare_idle]), 1),
        bare_idle_p99_us=round(med([r.latency_us(0.99) for r in bare_idle]), 1),
        lost=sum(r.lost for r in loaded),
        bare_lost=sum(r.lost for r in bare_loaded),
        expected=sum(r.expected for r in loaded),
        stalls=sum(r.stalls for r in [*loaded, *bare_loaded]),
        rounds_deliveries_per_s=[round(r.deliveries_per_s) for r in loaded],
        rounds_bare_deliveries_per_s=[round(r.deliveries_per_s) for r in bare_loaded],
    )
