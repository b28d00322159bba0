"""Redis vs NATS as the cluster's broker (issue 14): what a node pays for each.

The harness is bench/harness/broker.py (its docstring says how each figure is measured);
this suite runs it under pytest-benchmark so that ``make bench`` records it and
``make test``'s quick run checks it still works. The choice and its reasons are in
docs/broker-choice.md.

Groups, ``impl`` = the engine:

- ``broker.latency``: 300-byte batches at 500/s from this process to a subscriber
  child, one at a time. pytest-benchmark's own time is the whole phase (its length
  is set by the rate: compare nothing there); the figures are in ``extra_info``:
  ``p50_us`` / ``p99_us`` publish -> the receiving node's loop has it, ``call_us``
  how long the publish call held the publishing thread, ``pub_cpu_us`` /
  ``sub_cpu_us`` CPU per message of the publisher (its calls and its client's
  threads) and of the receiving process, ``ack_p50_us`` / ``ack_p99_us`` (JetStream) publish ->
  the server's ack.
- ``broker.throughput``: the same payloads as fast as one publisher can hand them
  over (pipelined); ``msgs_per_s`` first publish -> last arrival, CPU per message
  on both sides, the latency under that load. The timed call is the phase.
- ``broker.claim`` / ``broker.reclaim`` / ``broker.renew`` / ``broker.release``:
  one lease operation per timed call (Redis ``SET NX PX`` and Lua compare-and-act,
  NATS KV ``create`` / ``update`` / ``delete`` on the last revision), from the
  calling thread; ``reclaim`` claims a name just released (a user logging in again).
- ``broker.expiry``: how long after its TTL a lease nobody renewed (a dead node's)
  can be claimed by another node (``over_ttl_ms``); the timed call is one such wait.
- ``broker.restart``: private broker servers configured as this machine's, killed
  (SIGKILL) and restarted: does a lease survive, does the stream, how soon is the
  client back. Facts about the configuration, recorded, not asserted.

Assertions are sanity only: every message arrived, once, in order, without errors;
leases exclude other owners; an unrenewed lease frees. No speed floor: on a 2-core
machine shared with other work, none of these figures is steady enough for one that
could fail on a regression and never on noise, and the choice they inform is made
once (docs/broker-choice.md), not guarded.

Quick mode (CHATROOM_BENCH_QUICK=1): 100 messages for latency, 1,000 for
throughput, 20 rounds per lease op, one 300 ms expiry; well under 20 s for the file.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bench.conftest import QUICK
from bench.harness.broker import (
    ENGINES,
    FULL_SIZES,
    LEASE_ENGINES,
    QUICK_SIZES,
    LeaseStore,
    Link,
    PhaseResult,
    check_conflicts,
    expiry_over_ttl_ms,
    make_leases,
    quantiles_us,
    restart_nats,
    restart_redis,
    run_prefix,
)

Benchmark = Any  # pytest-benchmark's fixture has no public type

SIZES = QUICK_SIZES if QUICK else FULL_SIZES
_names = itertools.count()


def figures(r: PhaseResult) -> dict[str, Any]:
    """The scalar figures of a phase for extra_info (the report makes each a column;
    NaN, e.g. an ack time for an engine without acks, is left out)."""
    values = {
        "messages": r.messages,
        "received": r.received,
        "msgs_per_s": round(r.msgs_per_s),
        "p50_us": round(r.p50_us, 1),
        "p99_us": round(r.p99_us, 1),
        "call_us": round(r.call_p50_us, 1),
        "pub_cpu_us": round(r.pub_cpu_us, 1),
        "sub_cpu_us": round(r.sub_cpu_us, 1),
        "ack_p50_us": round(r.ack_p50_us, 1),
        "ack_p99_us": round(r.ack_p99_us, 1),
    }
    return {k: v for k, v in values.items() if not (isinstance(v, float) and math.isnan(v))}


@pytest.fixture(scope="module", params=ENGINES)
def link(request: pytest.FixtureRequest) -> Iterator[Link]:
    """One engine's publisher (here) and subscriber child, for its phases."""
    with Link(request.param) as lk:
        yield lk


def test_latency(benchmark: Benchmark, link: Link) -> None:
    benchmark.group = "broker.latency"
    out: list[PhaseResult] = []
    benchmark.pedantic(lambda: out.append(link.latency(SIZES.latency)), rounds=1, iterations=1)
    r = out[0]
    benchmark.extra_info.update(impl=link.engine, **figures(r))
    assert r.ok, r


def test_throughput(benchmark: Benchmark, link: Link) -> None:
    benchmark.group = "broker.throughput"
    out: list[PhaseResult] = []
    benchmark.pedantic(
        lambda: out.append(link.throughput(SIZES.throughput)), rounds=1, iterations=1
    )
    r = out[0]
    benchmark.extra_info.update(impl=link.engine, **figures(r))
    assert r.ok, r


@pytest.fixture(scope="module", params=LEASE_ENGINES)
def leases(request: pytest.FixtureRequest) -> Iterator[LeaseStore]:
    """A lease store with this run's prefix; it deletes what it made on close."""
    store = make_leases(request.param, run_prefix())
    try:
        yield store
    finally:
        store.close()


def test_lease_conflicts(leases: LeaseStore) -> None:
    """A held name cannot be claimed, renewed or released by another owner."""
    assert check_conflicts(leases, "conflict")


@pytest.mark.parametrize("op", ["claim", "reclaim", "renew", "release"])
def test_lease_op(benchmark: Benchmark, leases: LeaseStore, op: str) -> None:
    benchmark.group = f"broker.{op}"
    samples: list[int] = []
    failed: list[str] = []

    def setup() -> tuple[tuple[str, object], dict[str, Any]]:
        name = f"user-{next(_names)}"
        token: object = None
        if op != "claim":
            token = leases.claim(name, "node-a")
            assert token is not None
        if op == "reclaim":
            assert leases.release(name, "node-a", token)
        return (name, token), {}

    def target(name: str, token: object) -> None:
        t0 = time.perf_counter_ns()
        if op in ("claim", "reclaim"):
            ok: object = leases.claim(name, "node-a")
        elif op == "renew":
            ok = leases.renew(name, "node-a", token)
        else:
            ok = leases.release(name, "node-a", token)
        samples.append(time.perf_counter_ns() - t0)
        if not ok:
            failed.append(name)

    benchmark.pedantic(target, setup=setup, rounds=SIZES.lease_rounds, iterations=1)
    p50, p99, _ = quantiles_us(samples)
    benchmark.extra_info.update(
        impl=leases.engine, p50_us=round(p50, 1), p99_us=round(p99, 1), ttl_ms=leases.ttl_ms
    )
    assert not failed, failed


@pytest.mark.parametrize("engine", LEASE_ENGINES)
def test_lease_expiry(benchmark: Benchmark, engine: str) -> None:
    benchmark.group = "broker.expiry"
    ttl = SIZES.expiry_ttl_ms
    over: list[float] = []
    benchmark.pedantic(
        lambda: over.append(expiry_over_ttl_ms(engine, ttl)),
        rounds=SIZES.expiry_rounds,
        iterations=1,
    )
    benchmark.extra_info.update(
        impl=engine,
        ttl_ms=ttl,
        over_ttl_ms=round(max(over), 1),
        min_over_ttl_ms=round(min(over), 1),
        rounds=len(over),
    )
    # expiry_over_ttl_ms raises if the lease never frees. Nor may it free early;
    # the broker's own timers (NATS stamps messages with the wall clock) earn a
    # tenth of the TTL of slack, far from what a wrong TTL (a unit mix-up) gives.
    assert min(over) >= -0.1 * ttl, over


@pytest.mark.parametrize("engine", ["redis", "nats jetstream"])
def test_restart(benchmark: Benchmark, engine: str) -> None:
    benchmark.group = "broker.restart"
    out: list[dict[str, Any]] = []
    run = restart_redis if engine == "redis" else restart_nats
    benchmark.pedantic(lambda: out.append(run()), rounds=1, iterations=1)
    facts = out[0]
    if "skipped" in facts:
        pytest.skip(facts["skipped"])
    assert "error" not in facts, facts
    benchmark.extra_info.update(impl=engine, **facts)
