"""The v2 dialect next to the classic one: messages/s and delivery latency (issue 4).

10 clients in a room, each of them sending and receiving: a chat room's real shape,
and the only way the v2 client's window (one unacknowledged message per sender, in
typed order) leaves any concurrency to measure: with 1 sender + 9 receivers a v2
room would have one message in flight in total. Per loss level (0%, and 10% each
way through testkit/lossy_proxy.py in its own process, seeded) one test runs two real
``chatroom serve --port 0 --rate-limit off --max-sessions-per-ip 0 --db <tmp>``
processes, one per dialect (a v2 session receives every event, so the two fleets
must not share a room), and alternates rounds of:

- ``v2``: 10 real v2 clients (bench/harness/chatrig.py ``V2Fleet``: the client's own state
  machine, default config). Each types its next line as soon as its window lets it
  send (the previous one is acknowledged). This is pytest-benchmark's timed call.
- ``classic``: 10 classic clients (``L``/``C`` datagrams, plain lines back), each
  with up to 16 lines in flight (a line leaves flight when the next client has it),
  which keeps the server saturated: the classic dialect's ceiling.
- ``classic, window 1`` (0% loss only): the classic clients with the v2 client's
  concurrency, one line in flight per sender.
- ``v2, one sender`` / ``classic, one sender``: one client sends (one line in flight
  in the whole room), nine receive: latency without queueing.
- ``v2 server, lean clients`` (0% loss only): the v2 server's capacity. 10 lean but
  protocol-correct v2 clients (bench/harness/v2load.py ``LeanV2Fleet``: cookie login, SAY
  with up to 16 unacknowledged lines per sender like the classic row, a cumulative
  ACK every 16 events as the real client sends, no ordering or rendering) on a
  third server with the same settings; rounds right after the classic ones. The
  real client's state machine costs more CPU per message than the server, so on 2
  shared cores the ``v2`` row measures the client fleet; this row is what the
  dialect's server sustains when its clients are not the bottleneck, and the
  issue's target is judged on it.
- ``v2, window 8`` (10% loss only; a diagnostic, not the product): the v2 clients
  with 8 unacknowledged lines each instead of 1, on a third server and proxy: how
  much of v2's figure under loss is the window.

A round ends when every other client has every line (classic: or nothing arrived for
50 ms once all is sent; classic does not retransmit, its losses are counted).

Group ``v2.loss<P>``; ``extra_info["dialects"][<row>]`` holds, per row: messages/s
(lines / first send .. last delivery) and deliveries/s (median of rounds); for v2,
``stored_per_s`` (lines / first send .. the last line acknowledged to its sender) and
``tail_s`` (last acknowledgement .. last delivery); p50/p99 latency (all rounds pooled), CPU time
per message of the server and of the clients (this process), the CPU share each
used, the proxy's and the whole machine's, lost and duplicated deliveries, message
datagrams sent (SAY retransmissions) and PULLs. ``ratio`` is the median per-round
v2 / classic messages/s (``lean_ratio``: the lean row's, same rounds);
``server_cpu_ratio`` is classic's server CPU per message / v2's
(``lean_server_cpu_ratio``: / the lean row's), at the load of these rounds (a
server that is not saturated wakes for fewer messages at a time and commits smaller
batches: ``server_msgs_per_wakeup``).

A floor that can fail (issue 17), in quick mode too: the median per-round ratio of
the lean row to classic must be at least ``LEAN_FLOOR`` = 0.35, half of the 70%
target, so only a clear regression of the v2 server (well over 2x slower per
message than classic's) fails it, never a busy machine's noise. The full run judges
its own rounds; quick mode's 5-line rounds last a few milliseconds and measure
nothing, so it adds ``FLOOR_PAIRS`` paired rounds of ``FLOOR_PER_SENDER`` lines per
sender (classic, then lean, after one warm-up pair): about two seconds.
"""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bench.conftest import QUICK
from bench.harness.chatrig import ClassicFleet, V2Fleet
from bench.harness.measure import CpuMeter, RoundStats, percentile
from bench.harness.relay import Relay, lossy_proxy, serve
from bench.harness.v2load import LeanV2Fleet
from chatroom.client.session import SessionConfig

Benchmark = Any  # pytest-benchmark's fixture has no public type

CLIENTS = 10
LOSSES = (0, 10)
CLASSIC_WINDOW = 16
#: Under loss, a diagnostic row: the same v2 clients allowed 8 unacknowledged lines
#: each (``SessionConfig.window``; the product keeps 1, for typed order).
WIDE_WINDOW = 8
WIDE_ROW = "v2, window 8"
#: The v2 server's capacity (0% loss): lean v2 clients, 16 lines in flight each.
LEAN_ROW = "v2 server, lean clients"
LEAN_WINDOW = 16
SERVER_ARGS = ("--rate-limit", "off", "--max-sessions-per-ip", "0")
#: Lines per sender in a loaded round; in a one-sender round. Rounds last about a
#: second at 0% loss; at 10% loss the v2 room runs at a few hundred lines/s.
PER_SENDER = {0: 300, 10: 60}
ONE_SENDER = {0: 200, 10: 40}
ROUNDS = {0: 5, 10: 3}
#: The issue's target for the lean row: v2 at least 70% of classic's messages/s.
LEAN_TARGET = 0.70
#: What fails the run (quick mode included): half of the target.
LEAN_FLOOR = LEAN_TARGET / 2
#: Quick mode's same-run comparison for the floor: paired rounds of this size.
FLOOR_PAIRS = 5
FLOOR_PER_SENDER = 50
if QUICK:  # a smoke test: every path once, a few lines each (the 10% tail takes ~1-3 s)
    PER_SENDER = {0: 5, 10: 3}
    ONE_SENDER = {0: 5, 10: 3}
    ROUNDS = {0: 1, 10: 1}


def summary(rounds: list[RoundStats]) -> dict[str, Any]:
    def med(values: list[float]) -> float:
        return float(statistics.median(values)) if values else float("nan")

    pooled = sorted(ns for r in rounds for ns in r.latencies_ns)
    messages = sum(r.messages for r in rounds)
    return {
        "clients": rounds[0].clients,
        "messages_per_round": rounds[0].messages,
        "rounds": len(rounds),
        "msgs_per_s": round(med([r.messages_per_s for r in rounds])),
        "deliveries_per_s": round(med([r.deliveries_per_s for r in rounds])),
        "stored_per_s": round(med([r.stored_per_s for r in rounds])),
        "tail_s": round(med([r.seconds - r.stored_seconds for r in rounds if r.stored_seconds]), 3)
        if any(r.stored_seconds for r in rounds)
        else 0.0,
        "p50_us": round(percentile(pooled, 0.50) / 1e3, 1),
        "p99_us": round(percentile(pooled, 0.99) / 1e3, 1),
        "max_us": round((pooled[-1] if pooled else 0) / 1e3, 1),
        "server_us_per_msg": round(sum(r.server_cpu for r in rounds) / messages * 1e6, 1),
        "client_us_per_msg": round(sum(r.client_cpu for r in rounds) / messages * 1e6, 1),
        "server_msgs_per_wakeup": round(
            messages / max(1, sum(r.server_wakeups for r in rounds)), 1
        ),
        "server_cpu": round(med([r.cpu_share(r.server_cpu) for r in rounds]), 2),
        "client_cpu": round(med([r.cpu_share(r.client_cpu) for r in rounds]), 2),
        "proxy_cpu": round(med([r.cpu_share(r.proxy_cpu) for r in rounds]), 2),
        "machine_busy": round(med([r.machine_busy for r in rounds]), 2),
        "expected": sum(r.expected for r in rounds),
        "lost": sum(r.lost for r in rounds),
        "duplicates": sum(r.duplicates for r in rounds),
        "sends": sum(r.sends for r in rounds),
        "messages": messages,
        "pulls": sum(r.pulls for r in rounds),
        "stalls": sum(r.stalls for r in rounds),
        "rounds_msgs_per_s": [round(r.messages_per_s) for r in rounds],
    }


@pytest.mark.parametrize("loss", LOSSES)
def test_dialects(benchmark: Benchmark, tmp_path: Path, loss: int) -> None:
    benchmark.group = f"v2.loss{loss}"
    per_sender, one = PER_SENDER[loss], ONE_SENDER[loss]
    results: dict[str, list[RoundStats]] = {}
    with contextlib.ExitStack() as stack:
        srv_v2 = stack.enter_context(serve(tmp_path / "v2.db", *SERVER_ARGS))
        srv_cl = stack.enter_context(serve(tmp_path / "classic.db", *SERVER_ARGS))
        proxy_v2: Relay | None = None
        proxy_cl: Relay | None = None
        if loss:
            proxy_v2 = stack.enter_context(lossy_proxy(srv_v2.addr, loss / 100, seed=loss))
            proxy_cl = stack.enter_context(lossy_proxy(srv_cl.addr, loss / 100, seed=loss + 1))
        v2 = stack.enter_context(V2Fleet(CLIENTS, (proxy_v2 or srv_v2).addr, seed=loss))
        cl = stack.enter_context(ClassicFleet(CLIENTS, (proxy_cl or srv_cl).addr))
        v2.login()
        cl.login()
        lean: LeanV2Fleet | None = None
        srv_lean: Relay | None = None
        if not loss:  # the server's capacity, with clients that cost little
            srv_lean = stack.enter_context(serve(tmp_path / "lean.db", *SERVER_ARGS))
            lean = stack.enter_context(LeanV2Fleet(CLIENTS, srv_lean.addr))
            lean.login()
        wide: V2Fleet | None = None
        srv_w8: Relay | None = None
        proxy_w8: Relay | None = None
        if loss and not QUICK:  # diagnostic: is the window what limits v2 under loss?
            srv_w8 = stack.enter_context(serve(tmp_path / "w8.db", *SERVER_ARGS))
            proxy_w8 = stack.enter_context(lossy_proxy(srv_w8.addr, loss / 100, seed=loss + 2))
            config = SessionConfig(history=0, first_login_timeout=30.0, window=WIDE_WINDOW)
            wide = stack.enter_context(V2Fleet(CLIENTS, proxy_w8.addr, seed=loss, config=config))
            wide.login()

        def measure(
            row: str, server: Relay, proxy: Relay | None, run: Callable[[], RoundStats]
        ) -> None:
            meter = CpuMeter(server.proc.pid, proxy.proc.pid if proxy else None)
            results.setdefault(row, []).append(meter.stop(run()))

        if not QUICK:  # warm both up: imports, caches, the SQLite files
            v2.round(per_sender // 4)
            cl.round(per_sender // 4, CLASSIC_WINDOW)
            if lean is not None:
                lean.round(per_sender // 4, LEAN_WINDOW)
        turn = iter(range(1_000_000))

        def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
            sender = next(turn) % CLIENTS
            measure("classic", srv_cl, proxy_cl, lambda: cl.round(per_sender, CLASSIC_WINDOW))
            if lean is not None and srv_lean is not None:
                measure(LEAN_ROW, srv_lean, None, lambda: lean.round(per_sender, LEAN_WINDOW))
            if not loss:
                measure("classic, window 1", srv_cl, proxy_cl, lambda: cl.round(per_sender, 1))
            if not (QUICK and loss):  # each lossy v2 round ends with a 1-3 s tail
                measure("v2, one sender", srv_v2, proxy_v2, lambda: v2.round(one, [sender]))
                measure("classic, one sender", srv_cl, proxy_cl, lambda: cl.round(one, 1, [sender]))
            if wide is not None and srv_w8 is not None:
                measure(WIDE_ROW, srv_w8, proxy_w8, lambda: wide.round(per_sender))
            return (), {}

        def timed() -> None:
            measure("v2", srv_v2, proxy_v2, lambda: v2.round(per_sender))

        benchmark.pedantic(timed, setup=setup, rounds=ROUNDS[loss], iterations=1)
        floor_ratios = [
            lean_round.messages_per_s / classic_round.messages_per_s
            for lean_round, classic_round in zip(
                results.get(LEAN_ROW, []), results["classic"], strict=False
            )
            if classic_round.messages_per_s > 0
        ]
        if QUICK and lean is not None:  # rounds long enough to compare, a few of them
            cl.round(FLOOR_PER_SENDER // 5, CLASSIC_WINDOW)  # warm-up
            lean.round(FLOOR_PER_SENDER // 5, LEAN_WINDOW)
            floor_ratios = []
            for _ in range(FLOOR_PAIRS):
                classic_round = cl.round(FLOOR_PER_SENDER, CLASSIC_WINDOW)
                lean_round = lean.round(FLOOR_PER_SENDER, LEAN_WINDOW)
                assert lean_round.delivered == lean_round.expected, lean_round
                if classic_round.messages_per_s > 0:
                    floor_ratios.append(lean_round.messages_per_s / classic_round.messages_per_s)
        for srv in (srv_v2, srv_cl, *([srv_lean] if srv_lean else [])):
            assert srv.proc.poll() is None, srv.banner.decode(errors="replace")

    # Correctness, in quick mode too: the v2 clients showed every line exactly once.
    for row in ("v2", "v2, one sender", WIDE_ROW, LEAN_ROW):
        for r in results.get(row, []):
            assert r.delivered == r.expected, (row, r.delivered, r.expected)
            assert r.duplicates == 0, (row, r.duplicates)
    for r in [*results["classic"], *results.get("classic, one sender", [])]:
        assert r.delivered > 0, r
        assert r.duplicates == 0, r

    dialects = {row: summary(rounds) for row, rounds in results.items()}
    for row, info in dialects.items():
        info["senders"] = 1 if "one sender" in row else CLIENTS
        info["window"] = {
            "classic": CLASSIC_WINDOW,
            WIDE_ROW: WIDE_WINDOW,
            LEAN_ROW: LEAN_WINDOW,
        }.get(row, 1)
    ratios = [
        v.messages_per_s / c.messages_per_s
        for v, c in zip(results["v2"], results["classic"], strict=True)
        if c.messages_per_s > 0
    ]
    v2_cpu = dialects["v2"]["server_us_per_msg"]
    if LEAN_ROW in results:
        lean_ratios = [
            v.messages_per_s / c.messages_per_s
            for v, c in zip(results[LEAN_ROW], results["classic"], strict=True)
            if c.messages_per_s > 0
        ]
        lean_cpu = dialects[LEAN_ROW]["server_us_per_msg"]
        benchmark.extra_info.update(
            lean_ratio=round(statistics.median(lean_ratios), 3) if lean_ratios else float("nan"),
            rounds_lean_ratio=[round(x, 3) for x in lean_ratios],
            lean_server_cpu_ratio=round(dialects["classic"]["server_us_per_msg"] / lean_cpu, 3)
            if lean_cpu
            else float("nan"),
        )
    benchmark.extra_info.update(
        impl="v2",
        loss=loss,
        clients=CLIENTS,
        ratio=round(statistics.median(ratios), 3) if ratios else float("nan"),
        rounds_ratio=[round(x, 3) for x in ratios],
        server_cpu_ratio=round(dialects["classic"]["server_us_per_msg"] / v2_cpu, 3)
        if v2_cpu
        else float("nan"),
        dialects=dialects,
    )
    if lean is not None:  # 0% loss: the floor (the row the target is judged on)
        assert floor_ratios, "no lean round to compare"
        floor = statistics.median(floor_ratios)
        shown = [round(x, 2) for x in floor_ratios]
        print(f"floor: v2 lean / classic {floor:.2f} (floor {LEAN_FLOOR:.2f}), rounds {shown}")
        assert floor >= LEAN_FLOOR, (
            f"v2 server (lean clients) at {floor:.0%} of classic (median of "
            f"{shown}); the target is {LEAN_TARGET:.0%} and "
            f"anything under {LEAN_FLOOR:.0%} is a clear regression"
        )
