"""The ``storage.*`` section: the write path and the history queries
(bench/test_bench_storage.py)."""

from __future__ import annotations

from pathlib import Path

from bench.report.fmt import fmt_time, generic_tables
from bench.report.results import Result


def render_storage(results: list[Result], img_dir: Path) -> list[str]:
    """``storage.*`` groups (bench/test_bench_storage.py): the server's write path
    against raw sqlite3 in the same run, and history queries on a large database."""
    out = ["## Storage", ""]
    writes = [r for r in results if r.op == "write" and r.size]
    by_batch: dict[int, dict[str, Result]] = {}
    for r in writes:
        by_batch.setdefault(int(r.size or 0), {})[r.impl] = r
    rows = []
    for batch in sorted(by_batch):
        impls = by_batch[batch]
        raw, ours = impls.get("raw sqlite3"), impls.get("EventStore.write_batch")
        if raw is None or ours is None:
            continue
        fts = impls.get("raw sqlite3 + FTS")
        core = impls.get("SQLAlchemy Core insert")
        rows.append(
            f"| {batch:,} | {fmt_time(raw.median)} | "
            f"{fmt_time(fts.median) if fts else '–'} | {fmt_time(ours.median)} | "
            f"{raw.median / ours.median:.2f}× | "
            f"{fmt_time(core.median) if core else '–'} |"
        )
    if rows:
        out += [
            "**Write path.** The server commits each batch of events with "
            "`EventStore.write_batch` (one transaction, the batch's rows indexed for "
            "search with one statement). Target: at least 0.5× the rate of raw sqlite3 "
            "`executemany` into the same table, measured in the same run. Rate ratio = "
            "raw median / ours (time per batch; higher is better).",
            "",
            "| batch | raw sqlite3 | raw + search index | EventStore.write_batch | "
            "rate vs raw | SQLAlchemy Core insert |",
            "|--:|--:|--:|--:|--:|--:|",
            *rows,
            "",
            "Most of the gap to raw sqlite3 is the full-text index itself (compare the "
            "third column); see docs/architecture.md, Storage.",
            "",
        ]
    queries = [r for r in results if r.op == "query" or r.group.startswith("storage.query")]
    if queries:
        size = next((r.size for r in queries if r.size), None)
        extra = next((r.extra for r in queries if r.extra.get("db_mb")), {})
        gen = (
            f" (generated in {extra['db_generated_s']:g} s, {extra['db_mb']:g} MB)" if extra else ""
        )
        worst = max((r for r in queries if "no index" not in r.impl), key=lambda r: r.median)
        out += [
            f"**History queries** on a database of {size or 0:,} events{gen}. Target: "
            f"each under 50 ms. Slowest indexed query: {fmt_time(worst.median)} "
            f"(`{worst.impl}`).",
            "",
            "| query | median | mean |",
            "|:--|--:|--:|",
            *[f"| `{r.impl}` | {fmt_time(r.median)} | {fmt_time(r.mean)} |" for r in queries],
            "",
        ]
    if not rows and not queries:
        out += ["No storage results in this run.", ""]
    return out + generic_tables(results)
