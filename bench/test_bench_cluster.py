"""Several nodes as one chat, measured against the single node (issue 14).

Real ``chatroom serve`` processes (bench/harness/cluster_rig.py ``Deployment``), started
once for this module: a single node on SQLite, a single node on PostgreSQL (no
``--cluster``), a cluster of one node and a cluster of two nodes A and B, all
through the machine's Redis and PostgreSQL, each on a database of its own created
for the run, ``--rate-limit off``. Clients are lean v2 clients in this process
(``Fleet``), so a one-way latency is the difference of one clock: the send time
written into the line, and the kernel's arrival stamp at the receiver.

``test_cluster_latency`` (group ``cluster.latency``): one sender and two
receivers per row; the sender sends ``LAT_MESSAGES`` lines at ``LAT_RATE`` lines/s
(a light load: nothing queues, every commit holds one line). In the two-node row
the sender and one receiver are on A and the other receiver on B, so each line's
same-node and cross-node deliveries are measured on the same line, and
``hop_p50_us`` is the median of the per-line difference: what the broker hop (A
publishes to Redis, B's subscriber thread wakes B's loop, B applies and sends)
adds. In the single-node rows both receivers are on the sender's node. Rows
alternate phase by phase; the timed call is the two-node phase.

``test_cluster_throughput`` (group ``cluster.throughput``): ``TP_SENDERS`` senders
with up to ``TP_WINDOW`` unacknowledged lines each, and ``TP_RECEIVERS`` receivers,
all on one node, or spread over A and B (client i on A for even i, B for odd i).
In the one-room rows everyone is in #lobby (deliveries = lines x 5); in the
two-room rows even clients are in #east and odd ones in #west (lines x 2), so
with two nodes each room lives on one node: a cluster sharded by room, where the
nodes never queue behind each other's lock on a room (storage/sequencer.py).
Rounds alternate between the rows; the timed call is the two-node round;
``ratio_to_one_node`` is the median per-round ratio of messages/s against the
cluster of one node with the same rooms, measured moments apart. On this 2-core
machine two nodes cannot double anything: PostgreSQL, Redis, both nodes and the
clients share the same two cores, and every node applies every line (the other
node's too, whatever the room).

The broker's cost per message on the node (both tests): CPU seconds of the node
processes over a phase (``/proc/<pid>/stat``) per line, and of the PostgreSQL
backends serving that row's database; the cluster of one node against the
single node on PostgreSQL is the price of cluster mode itself (drafts numbered by
the database under advisory locks, each batch published to Redis and read back
from the subscription), two nodes against one the price of a second node.

Only sanity is asserted: every line reached every other client exactly once, in
the order its sender sent it, at one position everywhere (docs/cluster.md's
promise), and no server died. Quick mode (CHATROOM_BENCH_QUICK=1, make test)
runs every row once with a few lines: well under the 40 s this file may take.
"""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from bench.conftest import QUICK
from bench.harness.cluster_rig import (
    Deployment,
    Fleet,
    Phase,
    Place,
    cpu_figures,
    latency_us,
    phase_latencies,
    problems,
)
from bench.report.cluster import latency_table, throughput_table

Benchmark = Any  # pytest-benchmark's fixture has no public type

SQLITE = "single node, SQLite"
SINGLE = "single node, PostgreSQL"
ONE = "cluster of one node"
TWO = "cluster of two nodes"
ONE_ROOMS = "cluster of one node, two rooms"
TWO_ROOMS = "cluster of two nodes, a room per node"
#: Latency rows: the servers of the sender and of the two receivers (#lobby).
LAT_ROWS = {
    SQLITE: ("sqlite", "sqlite", "sqlite"),
    SINGLE: ("pg", "pg", "pg"),
    ONE: ("one", "one", "one"),
    TWO: ("a", "a", "b"),
}
#: Throughput rows: the nodes client i goes to in turn (i % len), and whether the
#: clients are split into two rooms by the same rule (#east: even i, #west: odd
#: i), so that with two nodes each room lives on one node: a cluster sharded by
#: room, where the nodes never wait for each other's lock on a room.
TP_ROWS = {
    SINGLE: (("pg",), False),
    ONE: (("one",), False),
    TWO: (("a", "b"), False),
    ONE_ROOMS: (("one",), True),
    TWO_ROOMS: (("a", "b"), True),
}
#: Each row's throughput is compared with the row of one cluster node of its shape.
TP_BASE = {SINGLE: ONE, ONE: ONE, TWO: ONE, ONE_ROOMS: ONE_ROOMS, TWO_ROOMS: ONE_ROOMS}
ROOMS = ("#east", "#west")

LAT_RATE = 200.0
LAT_MESSAGES = 40 if QUICK else 1000
LAT_ROUNDS = 1 if QUICK else 3
TP_SENDERS = 4
TP_RECEIVERS = 2
TP_WINDOW = 16
TP_PER_SENDER = 20 if QUICK else 500
TP_ROUNDS = 1 if QUICK else 5
#: Full runs first warm every row up (imports, plans, caches) with this many lines.
WARM_UP = 100


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """Every server of both tests, started once: five servers take ~10 s to
    start on this 2-core machine, the quick run's largest item."""
    with Deployment(tmp_path_factory.mktemp("cluster")) as dep:
        yield dep


def _med(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def _fleets(
    stack: contextlib.ExitStack,
    dep: Deployment,
    rows: Mapping[str, list[Place]],
) -> dict[str, Fleet]:
    """A logged-in fleet per row, said goodbye to and closed by ``stack``."""
    fleets: dict[str, Fleet] = {}
    for row, placement in rows.items():
        fleet = stack.enter_context(Fleet(placement))
        stack.callback(fleet.bye)
        fleet.login()
        fleets[row] = fleet
    return fleets


def _check(row: str, fleet: Fleet, ph: Phase) -> None:
    """Sanity, right after each phase (a broken row fails at once, before the
    other fleets' sessions could time out waiting for it)."""
    wrong = problems(fleet, ph)
    assert not wrong, (row, wrong)
    assert ph.delivered == ph.expected, (row, ph.delivered, ph.expected)


def test_cluster_latency(benchmark: Benchmark, deployment: Deployment) -> None:
    benchmark.group = "cluster.latency"
    phases: dict[str, list[Phase]] = {row: [] for row in LAT_ROWS}
    with contextlib.ExitStack() as stack:
        places = {
            row: [
                Place(f"l{n}c{i}", deployment.servers[server].addr, server)
                for i, server in enumerate(servers)
            ]
            for n, (row, servers) in enumerate(LAT_ROWS.items())
        }
        fleets = _fleets(stack, deployment, places)

        def phase(row: str, count: int = LAT_MESSAGES, keep: bool = True) -> None:
            meter = deployment.meter(sorted(set(LAT_ROWS[row])))
            ph = fleets[row].run([0], count, rate=LAT_RATE)
            ph.usage = meter.stop()
            _check(row, fleets[row], ph)
            if keep:
                phases[row].append(ph)

        if not QUICK:
            for row in LAT_ROWS:
                phase(row, WARM_UP, keep=False)

        def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
            for row in (SQLITE, SINGLE, ONE):
                phase(row)
            return (), {}

        benchmark.pedantic(lambda: phase(TWO), setup=setup, rounds=LAT_ROUNDS, iterations=1)
        assert not deployment.alive()

    rows: dict[str, dict[str, Any]] = {}
    for row, done in phases.items():
        fleet = fleets[row]
        same: list[int] = []
        cross: list[int] = []
        for ph in done:
            s, c = phase_latencies(fleet, ph)
            same += s
            cross += c
        rows[row] = {
            "same_count": len(same),
            "same_p50_us": latency_us(same, 0.50),
            "same_p99_us": latency_us(same, 0.99),
            "cross_count": len(cross),
            "cross_p50_us": latency_us(cross, 0.50),
            "cross_p99_us": latency_us(cross, 0.99),
            **cpu_figures(done),
        }
    # The broker hop, line by line: receiver 2 (on B) minus receiver 1 (on A).
    hops: list[int] = []
    for ph in phases[TWO]:
        at: dict[tuple[int, int], int] = {}
        for r, _s, k, _pos, lat in ph.rows:
            at[(r, k)] = lat
        hops += [at[(2, k)] - at[(1, k)] for (r, k) in at if r == 1 and (2, k) in at]
    two, one, single = rows[TWO], rows[ONE], rows[SINGLE]
    benchmark.extra_info.update(
        impl="redis",
        rate=LAT_RATE,
        messages=LAT_MESSAGES,
        rounds=LAT_ROUNDS,
        same_p50_us=two["same_p50_us"],
        same_p99_us=two["same_p99_us"],
        cross_p50_us=two["cross_p50_us"],
        cross_p99_us=two["cross_p99_us"],
        hop_p50_us=_hop(hops, 0.50),
        hop_p99_us=_hop(hops, 0.99),
        single_pg_p50_us=single["same_p50_us"],
        sqlite_p50_us=rows[SQLITE]["same_p50_us"],
        cluster_mode_us_per_msg=round(one["node_us_per_msg"] - single["node_us_per_msg"], 1),
        second_node_us_per_msg=round(two["node_us_per_msg"] - one["node_us_per_msg"], 1),
        rows=rows,
    )
    print("\n" + "\n".join(latency_table(benchmark.extra_info)))


def _hop(values: list[int], q: float) -> float:
    """A quantile of signed ns differences, in µs."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e3, 1)


def test_cluster_throughput(benchmark: Benchmark, deployment: Deployment) -> None:
    benchmark.group = "cluster.throughput"
    phases: dict[str, list[Phase]] = {row: [] for row in TP_ROWS}
    senders = list(range(TP_SENDERS))
    with contextlib.ExitStack() as stack:
        places: dict[str, list[Place]] = {}
        for n, (row, (nodes, rooms)) in enumerate(TP_ROWS.items()):
            places[row] = []
            for i in range(TP_SENDERS + TP_RECEIVERS):
                node = nodes[i % len(nodes)]
                room = ROOMS[i % 2] if rooms else "#lobby"
                places[row].append(Place(f"t{n}c{i}", deployment.servers[node].addr, node, room))
        fleets = _fleets(stack, deployment, places)

        def blast(row: str, per_sender: int = TP_PER_SENDER, keep: bool = True) -> None:
            meter = deployment.meter(TP_ROWS[row][0])
            ph = fleets[row].run(senders, per_sender, window=TP_WINDOW)
            ph.usage = meter.stop()
            _check(row, fleets[row], ph)
            if keep:
                phases[row].append(ph)

        if not QUICK:
            for row in TP_ROWS:
                blast(row, WARM_UP // TP_SENDERS, keep=False)

        def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
            for row in (SINGLE, ONE, ONE_ROOMS, TWO_ROOMS):
                blast(row)
            return (), {}

        benchmark.pedantic(lambda: blast(TWO), setup=setup, rounds=TP_ROUNDS, iterations=1)
        assert not deployment.alive()

    rows: dict[str, dict[str, Any]] = {}
    for row, done in phases.items():
        latencies = sorted(lat for ph in done for *_, lat in ph.rows)
        rows[row] = {
            "nodes": len(TP_ROWS[row][0]),
            "rooms": 2 if TP_ROWS[row][1] else 1,
            "msgs_per_s": round(_med([ph.messages_per_s for ph in done])),
            "deliveries_per_s": round(_med([ph.deliveries_per_s for ph in done])),
            "p50_us": latency_us(latencies, 0.50),
            "p99_us": latency_us(latencies, 0.99),
            "resent": sum(ph.resent for ph in done),
            "rounds_deliveries_per_s": [round(ph.deliveries_per_s) for ph in done],
            **cpu_figures(done),
        }
    for row in TP_ROWS:
        ratios = [
            ph.messages_per_s / base.messages_per_s
            for ph, base in zip(phases[row], phases[TP_BASE[row]], strict=True)
            if base.messages_per_s
        ]
        rows[row]["ratio_to_one_node"] = round(_med(ratios), 2)
    two, one, single = rows[TWO], rows[ONE], rows[SINGLE]
    benchmark.extra_info.update(
        impl="redis",
        senders=TP_SENDERS,
        receivers=TP_RECEIVERS,
        window=TP_WINDOW,
        per_sender=TP_PER_SENDER,
        rounds=TP_ROUNDS,
        two_nodes_deliveries_per_s=two["deliveries_per_s"],
        one_node_deliveries_per_s=one["deliveries_per_s"],
        single_pg_deliveries_per_s=single["deliveries_per_s"],
        ratio_to_one_node=two["ratio_to_one_node"],
        rooms_ratio_to_one_node=rows[TWO_ROOMS]["ratio_to_one_node"],
        cluster_mode_us_per_msg=round(one["node_us_per_msg"] - single["node_us_per_msg"], 1),
        second_node_us_per_msg=round(two["node_us_per_msg"] - one["node_us_per_msg"], 1),
        rows=rows,
    )
    print("\n" + "\n".join(throughput_table(benchmark.extra_info)))
