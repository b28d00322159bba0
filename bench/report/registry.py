"""The ``registry.*`` section: the four registries, tables, charts and findings
computed from the numbers (bench/test_bench_registry.py)."""

from __future__ import annotations

from pathlib import Path

from bench.report.fmt import (
    OP_TITLES,
    fmt_rate,
    fmt_ratio,
    fmt_time,
    generic_tables,
    ordered_impls,
    plot_bars,
    sized_chart,
    table,
)
from bench.report.results import Result
from chatroom.registry import REGISTRY_KINDS

SENDTO_COST = 4.5e-6  # one loopback sendto on the 2-core reference machine (design notes)


def registry_findings(results: list[Result]) -> list[str]:
    """The explanation, with every number (and every comparison) taken from this run."""
    med = {(r.op, r.impl, r.size): r.median for r in results}
    sizes = sorted({r.size for r in results if r.op != "build" and r.size})
    if not sizes or not set(REGISTRY_KINDS) <= {r.impl for r in results}:
        return []
    big, small = sizes[-1], sizes[0]
    mid = 1_000 if 1_000 in sizes else sizes[len(sizes) // 2]

    def v(op: str, impl: str, n: int = big) -> float:
        return med.get((op, impl, n), float("nan"))

    def t(op: str, impl: str, n: int = big) -> str:
        return fmt_time(v(op, impl, n)) if (op, impl, n) in med else "n/a"

    def x(op: str, a: str, b: str, n: int = big) -> str:
        return fmt_ratio(v(op, a, n) / v(op, b, n))

    def span(op: str, impl: str) -> str:
        low, high = t(op, impl, small), t(op, impl)
        return f"~{low}" if low == high else f"{low}–{high}"

    def ns_per_user(impl: str) -> str:
        return f"{v('iterate', impl) / big * 1e9:.0f} ns"

    fa = "find_address"
    vs_sendto = v(fa, "list", mid) / SENDTO_COST
    scan_ratio = v("get", "linked") / v("get", "list")
    scan_words = "about as fast as" if 0.8 < scan_ratio < 1.25 else "at"
    iterate_share = v("iterate", "indexed") / big / SENDTO_COST
    return [
        f"**Why the server defaults to `indexed`.** The server looks up the source address "
        f"of every datagram it receives. At {big:,} users that lookup takes {t(fa, 'indexed')} "
        f"in `indexed`, against {t(fa, 'dict')} in `dict`, {t(fa, 'list')} in `list` and "
        f"{t(fa, 'linked')} in `linked` ({x(fa, 'list', 'indexed')} slower for `list`): a "
        f"ceiling of about {fmt_rate(1 / v(fa, 'list'))} datagrams/s from that lookup alone. "
        f"At {mid:,} users it is {t(fa, 'list', mid)} vs {t(fa, 'indexed', mid)} "
        f"({x(fa, 'list', 'indexed', mid)}), {vs_sendto:.2g}× the ~4.5 µs `sendto` that "
        f"follows it. `indexed` takes {t(fa, 'indexed', small)} at {small:,} users and "
        f"{t(fa, 'indexed')} at {big:,}; its price is a second dict entry per user "
        f"(memory below).",
        "",
        f"**Complexity: where list and linked list fall behind.** `list` and `linked` scan: "
        f"every lookup, `remove`, and the duplicate check inside `add` is O(n). `list` is "
        f"already {x('get', 'list', 'indexed', small)} slower than `indexed` by name at "
        f"{small:,} users, {x('get', 'list', 'indexed', mid)} at {mid:,} and "
        f"{x('get', 'list', 'indexed')} at {big:,}. From {small:,} to {big:,} users "
        f"({big // small:,}× more) the `list` lookup by name grows "
        f"{fmt_ratio(v('get', 'list') / v('get', 'list', small))} ({t('get', 'list', small)} "
        f"to {t('get', 'list')}): linear, once the call's fixed cost is amortised. `indexed` "
        f"and `dict` stay at {span('get', 'indexed')} (one hash "
        f"lookup). `dict` is the course's `{{name: address}}`: O(1) by name, but O(n) by "
        f"address and O(n) to `add` ({t('add', 'dict')} at {big:,}, vs {t('add', 'indexed')} "
        f"for `indexed`) because refusing a taken address scans the values. It speeds up the "
        f"lookup the server makes once per login, not the one it makes once per datagram.",
        "",
        f"**List vs linked list.** Same O(n), different constants. A lookup by name in "
        f"`linked` runs {scan_words} `list` ({x('get', 'linked', 'list')} of its time at "
        f"{big:,}): both are Python loops that load an attribute and compare per step. "
        f"Walking all users is where the linked list falls behind: {ns_per_user('linked')} "
        f"per user against {ns_per_user('list')} for `list` "
        f"({x('iterate', 'linked', 'list')}), because it resumes a Python generator and "
        f"follows `node.next` for each node, where a list's iterator is a C loop over a "
        f"contiguous array of pointers. Building {big:,} users takes {t('build', 'linked')} "
        f"vs {t('build', 'list')} for `list` (one Python `Node` object per user). `remove` "
        f"from the middle: {t('remove', 'linked')} for `linked` (scan, then an O(1) unlink) "
        f"vs {t('remove', 'list')} for `list` (scan, then a C scan and a shift of the tail).",
        "",
        f"**Fan-out.** Iterating costs ~{ns_per_user('indexed')} per user for `indexed` "
        f"({t('iterate', 'indexed')} for {big:,} users), {iterate_share:.1%} of the ~4.5 µs "
        f"`sendto` each recipient costs: the registry does not limit a broadcast.",
        "",
    ]


def registry_pivots(results: list[Result]) -> list[str]:
    """One table per operation: median per implementation and size, × the fastest."""
    best: dict[str, float] = {}
    for r in results:
        best[r.group] = min(best.get(r.group, r.median), r.median)
    sizes = sorted({r.size for r in results if r.size})
    out = ["### Median time per operation (× the fastest of the same size)", ""]
    for op in dict.fromkeys(r.op for r in results):
        cells = {
            (r.impl, r.size): f"{fmt_time(r.median)} ({fmt_ratio(r.median / best[r.group])})"
            for r in results
            if r.op == op
        }
        rows = [
            [f"`{impl}`", *(cells.get((impl, n), "") for n in sizes)]
            for impl in ordered_impls(results)
        ]
        out += [f"**{OP_TITLES.get(op, op)}**", ""]
        out += table(["implementation", *(f"N = {n:,}" for n in sizes)], rows)
    return out


def memory_cost(values: dict[str, float], record: float) -> str:
    if not {"indexed", "dict", "list"} <= set(values) or record != record:
        return ""
    extra = values["indexed"] - values["dict"]
    total = (record + values["indexed"]) / (record + values["list"]) - 1
    return (
        f" The second index costs {extra:.0f} B/user more than `dict`; counting the User "
        f"record, a user registered in `indexed` takes {total:.0%} more memory than in `list`."
    )


def render_registry(results: list[Result], img_dir: Path) -> list[str]:
    out = ["## Registries", ""]
    out += registry_findings(results)
    timed = [r for r in results if r.op != "build"]
    out += sized_chart(
        "registry",
        timed,
        img_dir,
        "Registry: median time per operation vs number of users (log-log)",
        "users (N, log)",
        "Lower is better.\n\nEach point: median time of one\ncall over the pytest-benchmark\n"
        "rounds, with N users registered.\n\nLookups and remove target the\nuser in the "
        "middle of the join\norder (a scan's average case).",
    )
    out += registry_pivots(timed)
    memory = [r for r in results if "bytes_per_user" in r.extra]
    if memory:
        n = memory[0].extra.get("users", memory[0].size)
        record = float(memory[0].extra.get("user_record_bytes", "nan"))
        path = img_dir / "registry_memory.png"
        values = {r.impl: float(r.extra["bytes_per_user"]) for r in memory}
        values = {k: values[k] for k in ordered_impls(memory)}
        plot_bars(
            values,
            path,
            title=f"Registry: structure memory per user at {n:,} users",
            ylabel="bytes per registered user (tracemalloc)",
            note=f"User records excluded: {record:.0f} B/user, same for all",
        )
        out += ["### Memory", "", f"![registry memory](img/{path.name})", ""]
        out += [
            f"Bytes the structure itself allocates per registered user at {n:,} users "
            f"(tracemalloc); each User record (name, key, address) adds {record:.0f} B/user "
            f"whichever structure holds it. `list` stores one pointer; `dict` a hash-table "
            f"entry; `linked` one `Node` (4 slots + the GC header); `indexed` two dict entries."
            + memory_cost(values, record),
            "",
        ]
    out += ["<details><summary>Every registry group (pytest-benchmark tables)</summary>", ""]
    out += [*generic_tables(results, "####"), "</details>", ""]
    return out
