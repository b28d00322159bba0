"""Profile the server's hot path under the fan-out load, and compare two versions.

    python -m bench.tools.profile_server spy --n 10             # py-spy: where the time goes
    python -m bench.tools.profile_server cprofile --n 10        # cProfile: calls, per-call cost
    python -m bench.tools.profile_server ab --baseline-rev REV  # chatroom/ at REV vs now vs bare
    python -m bench.tools.profile_server room --baseline-rev REV  # Room.handle alone, REV vs now

The load is bench/harness/fanout.py's (N classic receivers, a flow-controlled sender, a real
``chatroom serve`` with storage on). ``spy`` attaches py-spy (a sampling profiler; not a
project dependency: pass ``--py-spy PATH`` or have it on PATH) to the server while
loaded rounds run, and sorts the samples into the hot path's stages: the sendto loop,
storage, parse, the text check, the classic-policy check, registry lookups, building
the fan-out, the receive loop. Sampling does not slow the Python code down the way
cProfile's per-call hooks do, so its shares are the ones to trust; ``cprofile`` is for
call counts. ``ab`` runs the server of another commit (extracted with ``git archive``,
no checkout) next to the working tree's and the bare relay, rounds interleaved, on the
same receivers: the before/after figures in docs/benchmarks.md come from it.
"""

from __future__ import annotations

import argparse
import collections
import json
import pstats
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from bench.harness.fanout import Rig
from bench.harness.measure import RoundStats
from bench.harness.relay import ROOT, Relay

ROUND_DELIVERIES = 100_000  # as bench/test_bench_fanout.py

#: py-spy stack frames -> stage, matched from the innermost frame outwards.
STAGES: tuple[tuple[str, str], ...] = (
    ("EventStore.write_rows", "storage: insert + FTS index + commit (one per batch)"),
    ("EventStore.write_batch", "storage: insert + FTS index + commit (one per batch)"),
    ("WriterProcess.write_batch", "server: hand the batch to the writer (marshal, pipe)"),
    ("SendMmsg.send", "sends (sendmmsg; kernel: ~all of it)"),
    ("SendTo.send", "sends (sendto loop; kernel: ~all of it)"),
    ("bad_text_char", "core: text check (bad_text_char)"),
    ("is_loopback", "core: classic policy (is_loopback)"),
    ("classic_allowed", "core: classic policy (is_loopback)"),
    ("Registry.find_address", "core: registry lookup"),
    ("Directory.find_address", "core: registry lookup"),
    ("Registry.get", "core: registry lookup"),
    ("parse (chatroom/protocol", "core: parse"),
    ("fan_out", "core: fan-out (recipients, classic line)"),
    ("EventLog.record", "core: event log (ids, ring)"),
    ("Membership.publish", "core: publish"),
    ("ClassicDialect.", "core: classic dialect"),
    ("Hub.", "core: dispatch and the rest"),
    ("Committer.", "server: commit and release sends"),
    ("Server._apply", "server: apply effects"),
    ("Server._drain", "server: receive loop (recvfrom, clocks)"),
)


def messages_for(n: int) -> int:
    return max(50, ROUND_DELIVERIES // n)


# ---------------------------------------------------------------------------- py-spy


#: Innermost frames that are waiting, not working: the loop in select, the
#: commit thread for its next batch, the writer process (storage/writer.py)
#: for its next batch. py-spy's idle detection (``--nonblocking``) misses some
#: of these blocked calls and counts them busy (the writer's pipe reads filed
#: under the line before), so they are dropped here.
IDLE = ("EpollSelector.select", "CommitThread._run", "(storage/writer.py")


def stage_of(stack: str) -> str | None:
    """The stage a sample belongs to; None for a wait."""
    frames = stack.split(";")
    if any(w in frames[-1] for w in IDLE):
        return None
    for frame in reversed(frames):
        for needle, stage in STAGES:
            if needle in frame:
                return stage
    return "other (timers, start-up)"


def spy(n: int, rounds: int, registry: str, py_spy: str, raw: Path | None) -> None:
    msgs = messages_for(n)
    with tempfile.TemporaryDirectory() as tmp, Rig(n, msgs) as rig:
        out = raw or Path(tmp) / "spy.txt"
        with Relay.server(Path(tmp) / "chat.db", registry) as srv:
            rig.login(srv.addr)
            rig.measure(srv.addr, msgs // 4, rig.window)  # warm up
            cmd = [py_spy, "record", "-p", str(srv.proc.pid), "-r", "1000", "-f", "raw"]
            # --subprocesses: the server's database writer (storage/writer.py) too.
            cmd += ["-o", str(out), "--nonblocking", "--subprocesses"]
            sampler = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                time.sleep(1.0)  # py-spy attaches
                results = [rig.measure(srv.addr, msgs, rig.window) for _ in range(rounds)]
            finally:
                sampler.send_signal(2)  # SIGINT: py-spy writes its output and exits
                _, err = sampler.communicate(timeout=60)
            if not out.exists():
                raise SystemExit(f"py-spy wrote nothing: {err.decode(errors='replace')}")
        rate = statistics.median(r.deliveries_per_s for r in results)
        per_message_us = n / rate * 1e6
        counts: collections.Counter[str] = collections.Counter()
        for line in out.read_text().splitlines():
            stack, _, samples = line.rpartition(" ")
            stage = stage_of(stack)
            if stage is not None:
                counts[stage] += int(samples)
        total = sum(counts.values())
        print(f"N={n} {registry}: {rate:,.0f} deliveries/s = {per_message_us:.1f} µs/message")
        print(f"{'stage':55} {'share':>7} {'µs/msg':>8}")
        for stage, count in counts.most_common():
            share = count / total
            print(f"{stage:55} {share:7.1%} {share * per_message_us:8.2f}")


# ---------------------------------------------------------------------------- cProfile


def cprofile(n: int, rounds: int, registry: str, out: Path, top: int) -> None:
    msgs = messages_for(n)
    profiler = ("-m", "cProfile", "-o", str(out))
    with (
        tempfile.TemporaryDirectory() as tmp,
        Rig(n, msgs) as rig,
        Relay.server(Path(tmp) / "chat.db", registry, *profiler) as srv,
    ):
        rig.login(srv.addr)
        for _ in range(rounds):
            print(f"{rig.measure(srv.addr, msgs, rig.window).deliveries_per_s:,.0f}/s")
    pstats.Stats(str(out)).sort_stats("tottime").print_stats(top)


# ---------------------------------------------------------------------------- A/B


def extract(rev: str, into: Path) -> Path:
    """A source tree with ``chatroom/`` as it was at ``rev`` (via git archive, nothing
    checked out) and the working tree's storage/ and alembic/: the comparison is of
    the server's code, with the storage layer held the same on both sides."""
    into.mkdir(parents=True, exist_ok=True)
    archive = into / "src.tar"
    with archive.open("wb") as fh:
        subprocess.run(["git", "archive", rev, "chatroom"], cwd=ROOT, stdout=fh, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    for name in ("storage", "alembic"):
        shutil.copytree(ROOT / name, into / name, ignore=shutil.ignore_patterns("__pycache__"))
    return into


def ab(baseline_rev: str, sizes: list[int], rounds: int, registry: str, out: Path | None) -> None:
    label = subprocess.run(
        ["git", "rev-parse", "--short", baseline_rev], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    report: dict[str, object] = {"baseline": label, "registry": registry, "sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        base_src = extract(baseline_rev, Path(tmp) / "baseline")
        for n in sizes:
            msgs = messages_for(n)
            idle = max(20, min(300, 20_000 // n))
            runs: dict[str, list[RoundStats]] = {"bare": [], "before": [], "after": []}
            idles: dict[str, list[RoundStats]] = {"bare": [], "before": [], "after": []}
            with (
                Rig(n, msgs) as rig,
                Relay.server(
                    Path(tmp) / f"before{n}.db", registry, source=base_src, name="before"
                ) as before,
                Relay.server(Path(tmp) / f"after{n}.db", registry, name="after") as after,
            ):
                rig.login(before.addr)
                rig.login(after.addr)
                with Relay.bare(rig.addresses) as bare:
                    rig.settle(bare.addr)
                    relays = {"bare": bare, "before": before, "after": after}
                    for relay in relays.values():
                        rig.measure(relay.addr, msgs // 4, rig.window)  # warm up
                    order = list(relays)
                    for i in range(rounds):
                        for name in order[i % 3 :] + order[: i % 3]:  # rotate the order
                            addr = relays[name].addr
                            idles[name].append(rig.measure(addr, idle, 1))
                            runs[name].append(rig.measure(addr, msgs, rig.window))
            row = summarize(runs, idles)
            report["sizes"][str(n)] = row  # type: ignore[index]
            print(f"N={n}: " + json.dumps(row))
    if out is not None:
        out.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {out}")


def summarize(
    runs: dict[str, list[RoundStats]], idles: dict[str, list[RoundStats]]
) -> dict[str, float]:
    def med(values: list[float]) -> float:
        return float(statistics.median(values))

    row: dict[str, float] = {}
    for name, rs in runs.items():
        row[f"{name}_deliveries_per_s"] = round(med([r.deliveries_per_s for r in rs]))
        row[f"{name}_idle_p50_us"] = round(med([r.latency_us(0.5) for r in idles[name]]), 1)
        row[f"{name}_lost"] = sum(r.lost for r in rs)

    def ratio(a: list[RoundStats], b: list[RoundStats]) -> float:
        pairs = zip(a, b, strict=True)  # the same round index: measured moments apart
        return round(med([x.deliveries_per_s / y.deliveries_per_s for x, y in pairs]), 3)

    def best(rs: list[RoundStats]) -> float:
        return max(r.deliveries_per_s for r in rs)

    row["before_ratio"] = ratio(runs["before"], runs["bare"])
    row["after_ratio"] = ratio(runs["after"], runs["bare"])
    row["after_vs_before"] = ratio(runs["after"], runs["before"])
    # Best rounds, as the fan-out suite reports them (load from elsewhere only slows).
    row["before_best_ratio"] = round(best(runs["before"]) / best(runs["bare"]), 3)
    row["after_best_ratio"] = round(best(runs["after"]) / best(runs["bare"]), 3)
    row["after_vs_before_best"] = round(best(runs["after"]) / best(runs["before"]), 3)
    return row


# ---------------------------------------------------------------------------- Room.handle

#: Times Room.handle for one classic chat line with N other users (no sockets, no
#: storage: the room's own cost per message); run in a source tree's directory.
ROOM_TIMER = """
import json, sys, timeit
from chatroom.registry import make_registry
from chatroom.server import Hub, ServerConfig
out = {}
for n in map(int, sys.argv[1:]):
    room = Hub(lambda: make_registry("indexed"), lambda: "ab" * 16,
               ServerConfig(rate=None, login_rate=None))
    for i in range(n):
        room.handle(b"L r%d" % i, ("127.0.0.1", 41000 + i), 0.0, 0.0)
    room.handle(b"L sender", ("127.0.0.1", 40000), 0.0, 0.0)
    data, addr = b"C sender 12345 1764258000123456789", ("127.0.0.1", 40000)
    k = max(200, 200_000 // n)
    out[n] = min(timeit.repeat(lambda: room.handle(data, addr, 1.0, 1.0), number=k, repeat=5)) / k
print(json.dumps(out))
"""


def room_ab(baseline_rev: str, sizes: list[int], repeats: int) -> None:
    """Room.handle per message, chatroom/ at REV vs the working tree, alternated;
    the best of ``repeats`` runs each (CPU-bound, one process: little noise)."""
    args = [str(n) for n in sizes]
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"before": extract(baseline_rev, Path(tmp) / "baseline"), "after": ROOT}
        best: dict[str, dict[str, float]] = {name: {} for name in trees}
        for _ in range(repeats):
            for name, tree in trees.items():
                cmd = [sys.executable, "-c", ROOM_TIMER, *args]
                res = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, check=True)
                for n, secs in json.loads(res.stdout).items():
                    best[name][n] = min(best[name].get(n, secs), secs)
    print(f"{'N':>6} {'before':>10} {'after':>10} {'after/before':>13}")
    for n in args:
        b, a = best["before"][n], best["after"][n]
        print(f"{n:>6} {b * 1e6:8.2f}µs {a * 1e6:8.2f}µs {a / b:13.2f}")


# ---------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.tools.profile_server",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("spy", help="py-spy sampling, grouped by hot-path stage")
    s.add_argument("--n", type=int, default=10)
    s.add_argument("--rounds", type=int, default=3)
    s.add_argument("--registry", default="indexed")
    s.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy")
    s.add_argument("--raw", type=Path, help="keep py-spy's raw (collapsed) stacks here")
    c = sub.add_parser("cprofile", help="cProfile the server, top functions by own time")
    c.add_argument("--n", type=int, default=10)
    c.add_argument("--rounds", type=int, default=3)
    c.add_argument("--registry", default="indexed")
    c.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "server.prof")
    c.add_argument("--top", type=int, default=30)
    a = sub.add_parser("ab", help="another commit's server vs the working tree's vs bare")
    a.add_argument("--baseline-rev", required=True)
    a.add_argument("--n", type=int, nargs="+", default=[10, 100, 1000])
    a.add_argument("--rounds", type=int, default=5)
    a.add_argument("--registry", default="indexed")
    a.add_argument("--json", type=Path)
    r = sub.add_parser("room", help="Room.handle per message: chatroom/ at REV vs now")
    r.add_argument("--baseline-rev", required=True)
    r.add_argument("--n", type=int, nargs="+", default=[10, 100, 1000])
    r.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if args.cmd == "spy":
        spy(args.n, args.rounds, args.registry, args.py_spy, args.raw)
    elif args.cmd == "cprofile":
        cprofile(args.n, args.rounds, args.registry, args.out, args.top)
    elif args.cmd == "room":
        room_ab(args.baseline_rev, args.n, args.repeats)
    else:
        ab(args.baseline_rev, args.n, args.rounds, args.registry, args.json)


if __name__ == "__main__":
    main()
