"""One client floods; the others chat at a human pace (issue 5's rate limits).

A real ``chatroom serve --port 0 --db <tmp>`` with its defaults: ``--rate-limit 5/1``
(each session or classic address: 5 lines at once, 1/s after that; a SAY over the
limit is not acknowledged), ``--max-sessions-per-ip 16``. In the room:

- 8 v2 clients (our client's state machine, bench/harness/chatrig.py ``V2Fleet``) and 2
  classic clients, all in this process, each sending a line every 0.8-1.6 s
  (uniform, seeded): about 0.8 lines/s each, under the limit, as people chat;
- two flooders, each in its own process (bench/procs/flooder.py): a classic client sending
  ``C fc flood <k>`` and a logged-in v2 client sending raw ``v2 SAY`` frames with
  fresh seqs, from a blocking ``sendto`` loop.

The run alternates phases of ``PHASE`` seconds, no flood before each flood phase,
``CYCLES`` times, so the baseline and the floods are measured on the same
server, clients and machine, minutes apart at most. A line belongs to the phase in
which it was typed; lines typed in the first ``GUARD`` seconds of a phase are left
out (the server may still be working through the previous phase's backlog). After
each flood phase nobody types until every v2 client has every line typed so far by
a v2 client (``recovery_s``, the longest such wait) and every client's pacer has its
burst back: no scenario inherits another's backlog. At the end, the same is
asserted for the whole run (the dialect is reliable), in quick mode too.

Latency: typed -> the kernel's arrival stamp of the datagram that made the receiver
show it (bench/harness/chatrig.py), over every (line, receiver) pair of the scenario; the
issue's target is p99 < 200 ms during a flood. Also per scenario: deliveries lost
(classic receivers, or classic senders' lines the server never got), the server's
CPU share, the kernel's drop counter for the server's socket (its receive queue was
full), the flooder's datagrams/s and how many of its lines got through the limit.

Scenarios: ``none``; ``classic max`` and ``v2 max`` (the flooder as fast as it can:
on a 2-core machine it takes a core of its own, and the server cannot read that
fast); ``classic 20k/s`` and ``v2 20k/s`` (20,000x the rate limit, a flood the
server can absorb: does the limit alone keep the others' latency?). Group
``flood.rate5``; ``extra_info["scenarios"][<scenario>]``.

A floor that can fail (issue 17), in quick mode too: the worst flood scenario's p99
must stay under ``FLOOR_P99_US`` = 400 ms, twice the target. Measured: a few
milliseconds (docs/benchmarks.md); what the floor catches is the failure the mute
was made for, a flood the server cannot read past, where the others' p99 went to
0.7-3 s. Quick mode's phases (0.8 s) are no longer than the pace, so there every
client is made to type at least once in each phase, after its guard (90 deliveries
or more: the p99 there is close to the maximum). With the mute disabled (tried on
a copy of the tree), quick runs measured a flood p99 of 0.46-2.3 s; with it,
12-112 ms, also while another process kept one of the two cores busy.
"""

from __future__ import annotations

import contextlib
import random
import statistics
import time
from pathlib import Path
from typing import Any

from bench.conftest import QUICK
from bench.harness.chatrig import Flooder, V2Fleet
from bench.harness.measure import cpu_seconds, machine_busy, percentile, udp_drops
from bench.harness.relay import serve

Benchmark = Any  # pytest-benchmark's fixture has no public type

NORMAL_V2 = 8
NORMAL_CLASSIC = 2
PACE = (0.8, 1.6)  # seconds between two lines of one client
PHASE = 0.8 if QUICK else 4.0  # quick: long enough for a disabled mute to show
GUARD = 0.05 if QUICK else 0.5
CYCLES = 1 if QUICK else 2
#: A flood the server can absorb on this machine, 20,000x the rate limit.
MODERATE = 20_000
#: One cycle: (scenario, flooder, datagrams/s; 0 = as fast as it can).
CYCLE: tuple[tuple[str, str | None, int], ...] = (
    ("none", None, 0),
    ("classic max", "classic", 0),
    ("none", None, 0),
    ("v2 max", "v2", 0),
    ("none", None, 0),
    ("classic 20k/s", "classic", MODERATE),
    ("none", None, 0),
    ("v2 20k/s", "v2", MODERATE),
)
if QUICK:
    CYCLE = CYCLE[:4]
TARGET_P99_US = 200_000
#: What fails the run (quick mode included): twice the target, i.e. half the speed.
FLOOR_P99_US = 2 * TARGET_P99_US
#: Longest wait for the room to catch up after a flood (the client's retransmission
#: timer backs off to 8 s).
RECOVERY_TIMEOUT = 30.0


class Owed:
    """The deliveries v2 clients owe each other for lines typed so far: every line a
    v2 client typed, to every other v2 client (classic lines can be lost for good)."""

    def __init__(self, fleet: V2Fleet, lines: dict[tuple[int, int], Any]) -> None:
        self.seen = fleet.deliveries.seen
        v2 = range(len(fleet.clients))
        self.pending = [(r, s, k) for (s, k) in lines if s in v2 for r in v2 if r != s]

    def done(self) -> bool:
        pending, seen = self.pending, self.seen
        while pending and pending[-1] in seen:
            pending.pop()
        return not pending

    def missing(self) -> list[tuple[int, int, int]]:
        return [x for x in self.pending if x not in self.seen]


def paced_out(fleet: V2Fleet, now: float) -> bool:
    """Every v2 client's outbox is empty and its pacer (the rate limit the server
    announced, mirrored) has its whole burst again."""
    for c in fleet.clients:
        outbox = c.session.outbox
        pacer = outbox.pacer
        if outbox or (pacer is not None and pacer.tokens_at(now) < pacer.rate.burst - 1e-6):
            return False
    return True


def test_flood(benchmark: Benchmark, tmp_path: Path) -> None:
    benchmark.group = "flood.rate5"
    rng = random.Random(5)
    n = NORMAL_V2 + NORMAL_CLASSIC
    #: (sender, k) -> (scenario, counted: typed after the phase's guard)
    lines: dict[tuple[int, int], tuple[str, bool]] = {}
    phases: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        srv = stack.enter_context(serve(tmp_path / "flood.db"))
        fleet = stack.enter_context(
            V2Fleet(NORMAL_V2, srv.addr, classic=NORMAL_CLASSIC, prefix="n", seed=5)
        )
        fleet.login()
        flooders = {
            "classic": stack.enter_context(Flooder(srv.addr, "classic", "fc")),
            "v2": stack.enter_context(Flooder(srv.addr, "v2", "fv")),
        }
        for flooder in flooders.values():
            flooder.wait_ready()
        totals: dict[str, dict[str, int]] = {kind: {} for kind in flooders}
        fleet.settle()
        rec = fleet.reset()
        sent = [0] * n
        due = [time.monotonic() + rng.uniform(0, PACE[1]) for _ in range(n)]
        state: dict[str, Any] = {"scenario": "none", "guard_until": 0.0, "typing": True}

        def chat(now: float) -> float | None:
            if not state["typing"]:
                return None
            for i in range(n):
                if now >= due[i]:
                    sent[i] += 1
                    lines[(i, sent[i])] = (state["scenario"], now >= state["guard_until"])
                    fleet.say(i, now)
                    due[i] = now + rng.uniform(*PACE)
            return min(due)

        fleet.on_idle = chat

        def phase(scenario: str, kind: str | None, rate: int) -> None:
            flooder = flooders[kind] if kind else None
            start = time.monotonic()
            state.update(scenario=scenario, guard_until=start + GUARD)
            if QUICK:  # a phase no longer than the pace: each client types in it
                for i in range(n):
                    due[i] = min(due[i], start + GUARD + rng.uniform(0, PHASE - GUARD))
            drops, cpu, other = udp_drops(srv.addr[1]), cpu_seconds(srv.proc.pid), fleet.other
            busy = machine_busy()
            fcpu = cpu_seconds(flooder.proc.pid) if flooder is not None else 0.0
            if flooder is not None:
                flooder.go(rate)
            fleet.run_until(lambda: False, PHASE)
            counts: dict[str, int] = {}
            if flooder is not None and kind is not None:
                now_counts = flooder.stop()
                counts = {k: v - totals[kind].get(k, 0) for k, v in now_counts.items()}
                totals[kind] = now_counts
            seconds = time.monotonic() - start
            busy_end = machine_busy()
            record = {
                "scenario": scenario,
                "seconds": seconds,
                "kernel_drops": udp_drops(srv.addr[1]) - drops,
                "server_cpu": cpu_seconds(srv.proc.pid) - cpu,
                "flooder_cpu": cpu_seconds(flooder.proc.pid) - fcpu if flooder else 0.0,
                "flood_sent": counts.get("sent", 0),
                "flood_acked": counts.get("acked", 0),
                "flood_errors": counts.get("errors", 0),
                "flood_shown": fleet.other - other,
                "machine_busy": (busy_end[0] - busy[0]) / max(1e-9, busy_end[1] - busy[1]),
                "recovery": 0.0,
            }
            if flooder is not None:
                # Recovery, nobody typing: until every v2 line typed so far has reached
                # every v2 client (``recovery``), then until every client's pacer has
                # its burst back (catching up spent it), so that no scenario inherits
                # another's backlog.
                state.update(typing=False)
                owed = Owed(fleet, lines)
                stop = time.monotonic()
                fleet.run_until(owed.done, RECOVERY_TIMEOUT)
                record["recovery"] = time.monotonic() - stop
                if not QUICK:  # a few seconds per phase; quick mode checks correctness only
                    fleet.run_until(lambda: paced_out(fleet, time.monotonic()), RECOVERY_TIMEOUT)
                now = time.monotonic()
                due[:] = [now + rng.uniform(0, PACE[1]) for _ in range(n)]
                state.update(typing=True)
            phases.append(record)

        def run_phases() -> None:
            for _cycle in range(CYCLES):
                for scenario, kind, rate in CYCLE:
                    phase(scenario, kind, rate)

        benchmark.pedantic(run_phases, rounds=1, iterations=1)
        state["typing"] = False
        owed = Owed(fleet, lines)
        fleet.run_until(owed.done, RECOVERY_TIMEOUT)
        fleet.on_idle = None
        assert srv.proc.poll() is None, srv.banner.decode(errors="replace")

    missing = owed.missing()
    assert not missing, f"{len(missing)} v2 deliveries missing, e.g. {sorted(missing)[:5]}"
    assert rec.duplicates == 0

    scenarios: dict[str, dict[str, Any]] = {}
    for scenario, kind, rate in {c[0]: c for c in CYCLE}.values():
        counted = {key for key, (sc, ok) in lines.items() if sc == scenario and ok}
        lat = sorted(latency for (_r, s, k, latency) in rec.rows if (s, k) in counted)
        by_v2 = sorted(
            latency for (r, s, k, latency) in rec.rows if (s, k) in counted and r < NORMAL_V2
        )
        expected = len(counted) * (n - 1)
        mine = [p for p in phases if p["scenario"] == scenario]
        seconds = sum(p["seconds"] for p in mine)
        flood_sent = sum(p["flood_sent"] for p in mine)
        scenarios[scenario] = {
            "phases": len(mine),
            "seconds": round(seconds, 1),
            "lines": len(counted),
            "expected": expected,
            "delivered": len(lat),
            "lost": expected - len(lat),
            "p50_us": round(percentile(lat, 0.50) / 1e3, 1),
            "p99_us": round(percentile(lat, 0.99) / 1e3, 1),
            "max_us": round((lat[-1] if lat else 0) / 1e3, 1),
            "under_200ms": round(sum(x < TARGET_P99_US * 1e3 for x in lat) / max(1, len(lat)), 4),
            "v2_p50_us": round(percentile(by_v2, 0.50) / 1e3, 1),
            "v2_p99_us": round(percentile(by_v2, 0.99) / 1e3, 1),
            "server_cpu": round(sum(p["server_cpu"] for p in mine) / max(1e-9, seconds), 2),
            "machine_busy": round(statistics.mean(p["machine_busy"] for p in mine), 2),
            "kernel_drops": sum(p["kernel_drops"] for p in mine),
            "flooder_cpu": round(sum(p["flooder_cpu"] for p in mine) / max(1e-9, seconds), 2),
            "flood_sent": flood_sent,
            "flood_per_s": round(flood_sent / max(1e-9, seconds)),
            "flood_acked": sum(p["flood_acked"] for p in mine),
            "flood_errors": sum(p["flood_errors"] for p in mine),
            "flood_shown": sum(p["flood_shown"] for p in mine),
            "recovery_s": round(max(p["recovery"] for p in mine), 2),
        }
        scenarios[scenario].update(flooder=kind or "", flood_rate=rate)
    worst = max(v["p99_us"] for k, v in scenarios.items() if k != "none")
    benchmark.extra_info.update(
        impl="flood",
        rate_limit="5/1",
        normal_v2=NORMAL_V2,
        normal_classic=NORMAL_CLASSIC,
        pace_s=list(PACE),
        phase_s=PHASE,
        guard_s=GUARD,
        cycles=CYCLES,
        target_p99_us=TARGET_P99_US / 1,
        meets_target=worst < TARGET_P99_US,
        scenarios=scenarios,
    )
    floods = {k: v for k, v in scenarios.items() if k != "none"}
    print(
        f"floor: flood p99 {worst / 1e3:.1f} ms (floor {FLOOR_P99_US / 1e3:.0f} ms);",
        ", ".join(
            f"{k}: p50 {v['p50_us'] / 1e3:.1f} ms, p99 {v['p99_us'] / 1e3:.1f} ms, "
            f"{v['kernel_drops']} kernel drops"
            for k, v in scenarios.items()
        ),
    )
    for scenario, info in floods.items():
        assert info["delivered"] > 0, f"{scenario}: no line counted, nothing measured"
    assert worst < FLOOR_P99_US, (
        f"p99 during a flood {worst / 1e3:.0f} ms (target {TARGET_P99_US / 1e3:.0f} ms, "
        f"floor {FLOOR_P99_US / 1e3:.0f} ms): "
        + ", ".join(f"{k} {v['p99_us'] / 1e3:.1f} ms" for k, v in scenarios.items())
    )
