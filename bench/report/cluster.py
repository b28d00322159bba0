"""The ``cluster.*`` section (bench/test_bench_cluster.py): the latency and
throughput tables, instead of the generic tables, which would print the nested
``rows`` as one cell.

``python -m bench.report.cluster FILE.json`` renders the two tables of a
``pytest bench/test_bench_cluster.py --benchmark-json=FILE.json`` run as markdown
(docs/cluster-bench.md is made from it).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.report.results import Result


def _f(value: Any, unit: str = "") -> str:
    if isinstance(value, float) and value != value:  # NaN
        return "–"
    if isinstance(value, float) and value >= 1000:
        value = round(value)
    if isinstance(value, int | float) and abs(value) >= 10_000:
        return f"{value:,.0f}{unit}"
    return f"{value}{unit}"


def _ms(us: float) -> str:
    return f"{us / 1000:.2f} ms"


def latency_table(info: dict[str, Any]) -> list[str]:
    """The latency suite's rows as a markdown table."""
    head = (
        "| row | where the receiver is | deliveries | p50 | p99 | node CPU / message "
        "| of which per node | PostgreSQL CPU / message |"
    )
    out = [head, "|:--|:--|--:|--:|--:|--:|:--|--:|"]
    for row, r in info["rows"].items():
        per_node = ", ".join(f"{k} {_f(v)} µs" for k, v in r.get("per_node_us_per_msg", {}).items())
        for where in ("same", "cross"):
            if not r.get(f"{where}_count"):
                continue
            label = "same node as the sender" if where == "same" else "the other node"
            first = where == "same" or not r.get("same_count")
            out.append(
                f"| {row} | {label} | {_f(r[f'{where}_count'])} | {_ms(r[f'{where}_p50_us'])} "
                f"| {_ms(r[f'{where}_p99_us'])} | "
                + (
                    f"{_f(r['node_us_per_msg'])} µs | {per_node} | {_f(r['pg_us_per_msg'])} µs |"
                    if first
                    else "〃 | | |"
                )
            )
    return out


def throughput_table(info: dict[str, Any]) -> list[str]:
    """The throughput suite's rows as a markdown table."""
    head = (
        "| row | nodes | rooms | messages/s | deliveries/s | × one cluster node | p50 / p99 "
        "| node CPU / message | per node | PostgreSQL / message | Redis / message "
        "| CPU share: nodes / PostgreSQL / clients | machine busy |"
    )
    out = [head, "|:--|--:|--:|--:|--:|--:|--:|--:|:--|--:|--:|--:|--:|"]
    for row, r in info["rows"].items():
        per_node = ", ".join(f"{k} {_f(v)} µs" for k, v in r.get("per_node_us_per_msg", {}).items())
        ratio = r.get("ratio_to_one_node")
        shares = " / ".join(
            str(r.get(k, "–")) for k in ("node_cpu_share", "pg_cpu_share", "client_cpu_share")
        )
        out.append(
            f"| {row} | {r['nodes']} | {r.get('rooms', 1)} | {_f(r['msgs_per_s'])} "
            f"| {_f(r['deliveries_per_s'])} | {'' if ratio is None else f'{ratio:.2f}×'} "
            f"| {_ms(r['p50_us'])} / {_ms(r['p99_us'])} | {_f(r['node_us_per_msg'])} µs "
            f"| {per_node} | {_f(r['pg_us_per_msg'])} µs | {_f(r['redis_us_per_msg'])} µs "
            f"| {shares} | {r['machine_busy']} |"
        )
    return out


def tables(groups: Iterable[tuple[str, dict[str, Any]]]) -> list[str]:
    """Markdown for the ``cluster.*`` groups among ``(group, extra_info)`` pairs."""
    out: list[str] = []
    for group, info in groups:
        if group == "cluster.latency":
            out += ["### Latency at a light rate", "", *latency_table(info), ""]
        elif group == "cluster.throughput":
            out += ["### Messages/s, one node against two", "", *throughput_table(info), ""]
    return out


def render_cluster(results: list[Result], img_dir: Path) -> list[str]:
    """The ``cluster`` area of the report."""
    return ["## `cluster`", "", *tables((r.group, r.extra) for r in results)]


def render(path: Path) -> str:
    """Markdown tables of a pytest-benchmark JSON file's ``cluster.*`` groups."""
    data = json.loads(path.read_text())
    pairs = [(b.get("group") or "", b.get("extra_info") or {}) for b in data.get("benchmarks", [])]
    return "\n".join(tables(pairs))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m bench.report.cluster RESULTS.json")
    print(render(Path(sys.argv[1])))
