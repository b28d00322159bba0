"""The ``smallrooms.*`` section (bench/test_bench_smallrooms.py): 200 rooms of
three v2 sessions, one sender in each, against the bare relay doing the same
fan-out, per commit mode (issue 13)."""

from __future__ import annotations

from pathlib import Path

from bench.report.fmt import fmt_rate, fmt_ratio, fmt_us, table
from bench.report.results import Result

#: Issue 13: the server's deliveries/s at least this share of the bare relay's.
SMALLROOMS_TARGET = 0.5


def render_smallrooms(results: list[Result], img_dir: Path) -> list[str]:
    rows = sorted(results, key=lambda r: str(r.extra.get("commit", r.impl)) != "process")
    first = rows[0].extra if rows else {}
    out = [
        "## Many small rooms (`smallrooms.*`)",
        "",
        f"bench/test_bench_smallrooms.py: {first.get('rooms', '?')} rooms of "
        f"{first.get('room_size', '?')} lean, protocol-correct v2 sessions "
        "(bench/harness/v2load.py, in one process), the first member of each room sending "
        f"lines with up to {first.get('window', '?')} unacknowledged, the other two "
        "receiving each as an `EV` and acknowledging every 16. A real `chatroom serve` "
        "(SQLite, every line committed before anyone is shown it) against the bare relay "
        "doing the same fan-out (bench/procs/bare_relay.py `--routes`: `recvfrom`, the "
        "source's room from a dict, a `sendto` to each other member), rounds alternating "
        "in the same test, driven by the same fleet. Deliveries/s of the best round; "
        "× bare = best over best, and the median of the per-round ratios. One row per "
        "`--commit` mode: the writer process (the default) and the commit thread it "
        "replaced.",
        "",
    ]
    header = ["server", "deliveries/s", "bare relay", "× bare: best / median"]
    header += ["p50 / p99 (bare)", "server CPU / line", "fleet CPU / line", "rounds"]
    body = []
    for r in rows:
        e = r.extra
        body.append(
            [
                f"`--commit {e.get('commit', '?')}`",
                fmt_rate(float(e["deliveries_per_s"])),
                fmt_rate(float(e["bare_deliveries_per_s"])),
                f"**{fmt_ratio(float(e['ratio_to_bare']))}** / "
                f"{fmt_ratio(float(e['ratio_median']))}",
                f"{fmt_us(float(e['p50_us']))} / {fmt_us(float(e['p99_us']))} "
                f"({fmt_us(float(e['bare_p50_us']))} / {fmt_us(float(e['bare_p99_us']))})",
                fmt_us(float(e["server_cpu_us_per_message"])),
                fmt_us(float(e["fleet_cpu_us_per_message"])),
                str(e.get("rounds", "?")),
            ]
        )
    out += table(header, body)
    default = next((r.extra for r in rows if r.extra.get("commit") == "process"), None)
    if default is not None:
        ratio = float(default["ratio_to_bare"])
        verdict = "meets" if ratio >= SMALLROOMS_TARGET else "misses"
        out += [
            f"**Target.** With its defaults the server delivers "
            f"{fmt_rate(float(default['deliveries_per_s']))} datagrams/s in many small rooms, "
            f"{fmt_ratio(ratio)} the bare relay's: it {verdict} the "
            f"{fmt_ratio(SMALLROOMS_TARGET)} target. Per round: "
            + ", ".join(fmt_rate(v) for v in default.get("rounds_deliveries_per_s", []))
            + " against "
            + ", ".join(fmt_rate(v) for v in default.get("rounds_bare_deliveries_per_s", []))
            + ".",
            "",
        ]
    return out
