"""The ``crowd.*`` section (bench/test_bench_crowd.py): one room of 1,000 to
10,000 v2 sessions, a table per size and a chart of the costs that must stay
flat, against the issue's targets (issue 12)."""

from __future__ import annotations

from pathlib import Path

from bench.report.fmt import pyplot, table
from bench.report.results import Result

#: Before (the issue's figures, measured before large rooms existed).
BEFORE = {
    1_000: ("3.7 s", "1.4%", "9.4 KB", "13 ms / 16 ms"),
    5_000: ("100 s", "3.2%", "4.6 KB", "42 ms / 58 ms"),
    10_000: ("439 s", "5.7%", "4.8 KB", "84 ms / 96 ms"),
}


def render_crowd(results: list[Result], img_dir: Path) -> list[str]:
    rows_by_size = sorted((r for r in results if r.size), key=lambda r: r.size or 0)
    out = [
        "## One large room (`crowd.room.*`)",
        "",
        "bench/test_bench_crowd.py: a real `chatroom serve` (SQLite) and N lean, protocol-"
        "correct v2 sessions in one process (bench/harness/crowd.py), all in `#lobby`. "
        "CPU per recipient is the server's, from the SAY until every member has the message, "
        "less its idle rate; *with HEAD* adds the half second after, when a large room sends "
        "its HEAD to the members that had to repair (none at 0% loss: the two columns differ by "
        "the noise of two CPU counters). *One sendto* is a "
        "`sendto` of a datagram of the same size to the same sockets, timed in the same run. "
        "*Idle CPU* is the server's while every session only heartbeats (a PING every 20 s "
        "each); *bare loop* is bench/procs/bare_echo.py answering the same heartbeats at the "
        "same rate (a select loop that only replies): what this machine charges for being "
        "woken that often.",
        "",
    ]
    header = [
        "users",
        "all logged in",
        "slowest login (p99)",
        "idle CPU (bare loop)",
        "RSS / user",
        "fan-out p50 / max",
        "CPU / recipient",
        "with HEAD",
        "one sendto",
        "before: login / idle / RSS / fan-out",
    ]
    rows = []
    for r in rows_by_size:
        e = r.extra
        before = BEFORE.get(r.size or 0, ("–",) * 4)
        rows.append(
            [
                f"{r.size:,}",
                f"{e['login_total_s']} s",
                f"{e['login_max_s'] * 1000:.0f} ms ({e['login_p99_s'] * 1000:.0f} ms)",
                f"{e['idle_cpu_pct']}% ({e.get('echo_cpu_pct', '–')}%)",
                f"{e['rss_per_user_kb']} KB",
                f"{e['fanout_p50_ms']} ms / {e['fanout_max_ms']} ms",
                f"{e['cpu_per_recipient_us']} µs ({e['per_recipient_vs_sendto']}×)",
                f"{e['with_head_us']} µs ({e['with_head_vs_sendto']}×)",
                f"{e['sendto_us']} µs",
                " / ".join(before),
            ]
        )
    out += table(header, rows)
    out += [
        "",
        "Targets (issue 12, at 10,000): all logged in under 10 s, no login over 1 s; "
        "fan-out p50 under 30 ms; CPU per recipient within 1.5× one sendto; idle under 1% "
        "CPU and 4 KB per user.",
        "",
    ]
    if rows_by_size:
        out += [_chart(rows_by_size, img_dir), ""]
    return out


def _chart(results: list[Result], img_dir: Path) -> str:
    plt = pyplot()
    sizes = [r.size or 0 for r in results]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    series = [
        ("slowest login (ms)", [r.extra["login_max_s"] * 1000 for r in results]),
        ("fan-out p50 (ms)", [r.extra["fanout_p50_ms"] for r in results]),
        ("CPU per recipient / one sendto", [r.extra["per_recipient_vs_sendto"] for r in results]),
    ]
    for ax, (title, values) in zip(axes, series, strict=True):
        ax.plot(sizes, values, marker="o")
        ax.set_title(title)
        ax.set_xlabel("users in the room")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = img_dir / "crowd.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return f"![One large room: slowest login, fan-out, CPU per recipient](img/{path.name})"
