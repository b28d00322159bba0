"""How the report writes numbers, tables and charts, for every section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report.results import Result, parse_group
from chatroom.registry import REGISTRY_KINDS


def fmt_time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def fmt_rate(per_second: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if per_second >= scale:
            return f"{per_second / scale:.3g} {unit}"
    return f"{per_second:.3g}"


def fmt_ratio(ratio: float) -> str:
    if ratio != ratio:  # NaN: a missing measurement
        return "?×"
    return f"{ratio:.2f}×" if ratio < 10 else f"{ratio:,.0f}×"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    right = "|".join(":--" if i == 0 else "--:" for i in range(len(header)))
    lines = ["| " + " | ".join(header) + " |", f"|{right}|"]
    return [*lines, *("| " + " | ".join(row) + " |" for row in rows), ""]


def group_table(results: list[Result]) -> list[str]:
    """Implementation, mean, median, ops/s and ratio to the fastest median."""
    rows = sorted(results, key=lambda r: r.median)
    best = rows[0].median
    extras = sorted({k for r in rows for k in r.extra})
    header = ["implementation", "mean", "median", "ops/s", "× fastest", "rounds", *extras]
    body = [
        [
            f"`{r.impl}`",
            fmt_time(r.mean),
            fmt_time(r.median),
            fmt_rate(r.ops),
            fmt_ratio(r.median / best),
            str(r.rounds),
            *(str(r.extra.get(k, "")) for k in extras),
        ]
        for r in rows
    ]
    return table(header, body)


COLORS = {"indexed": "tab:green", "dict": "tab:blue", "list": "tab:orange", "linked": "tab:red"}


MARKERS = "osD^vP*X"


LINESTYLES = {"dict": "--", "linked": "-."}  # so overlapping lines stay visible


OP_TITLES = {
    "add": "add one user",
    "get": "lookup by name (get)",
    "find_address": "lookup by address (find_address)",
    "remove": "remove from the middle",
    "iterate": "iterate over all users",
}


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def ordered_impls(results: list[Result]) -> list[str]:
    seen = list(dict.fromkeys(r.impl for r in results))
    return [k for k in REGISTRY_KINDS if k in seen] + [k for k in seen if k not in REGISTRY_KINDS]


def plot_time_vs_size(
    results: list[Result], path: Path, title: str, xlabel: str, note: str = ""
) -> None:
    """Log-log median time per call vs size: one subplot per op, one line per impl."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    plt = pyplot()
    ops = list(dict.fromkeys(r.op for r in results))
    impls = ordered_impls(results)
    cols = min(3, len(ops))
    rows = -(-len(ops) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.2 * rows), squeeze=False)
    for ax, op in zip(axes.flat, ops, strict=False):
        for i, impl in enumerate(impls):
            points = sorted((r.size, r.median) for r in results if r.op == op and r.impl == impl)
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(
                    xs,
                    ys,
                    marker=MARKERS[i % len(MARKERS)],
                    label=impl,
                    color=COLORS.get(impl),
                    linewidth=1.8,
                    linestyle=LINESTYLES.get(impl, "-"),
                )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(OP_TITLES.get(op, op))
        ax.set_xlabel(xlabel)
        ax.set_ylabel("median time per call (log)")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _pos: fmt_time(y)))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x:,.0f}"))
        ax.grid(True, which="major", alpha=0.35)
        ax.legend(fontsize=8, loc="upper left")
    for ax in list(axes.flat)[len(ops) :]:
        ax.axis("off")
    if note and len(ops) < rows * cols:
        axes.flat[-1].text(
            0.05, 0.5, note, fontsize=10, va="center", transform=axes.flat[-1].transAxes
        )
    fig.suptitle(title, fontsize=13)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_bars(values: dict[str, float], path: Path, title: str, ylabel: str, note: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    names = list(values)
    bars = ax.bar(names, [values[n] for n in names], color=[COLORS.get(n, "grey") for n in names])
    ax.bar_label(bars, labels=[f"{values[n]:.0f} B" for n in names], padding=2)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.set_xlabel(f"implementation ({note})", fontsize=9)
    ax.margins(y=0.15)
    ax.grid(True, axis="y", alpha=0.35)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def group_key(group: str) -> tuple[int, str, int]:
    _area, op, size = parse_group(group)
    known = list(OP_TITLES)
    return (known.index(op) if op in known else len(known)), op, size or 0


def generic_tables(results: list[Result], heading: str = "###") -> list[str]:
    groups: dict[str, list[Result]] = {}
    for r in results:
        groups.setdefault(r.group, []).append(r)
    out: list[str] = []
    for group in sorted(groups, key=group_key):
        out += [f"{heading} `{group}`", "", *group_table(groups[group])]
    return out


def sized_chart(
    area: str,
    results: list[Result],
    img_dir: Path,
    title: str,
    xlabel: str = "size (N, log)",
    note: str = "Lower is better.\nEach point: the median of\nthe pytest-benchmark rounds.",
) -> list[str]:
    """A time-per-operation vs size chart when the area's groups carry sizes."""
    sized = [r for r in results if r.size is not None]
    if len({r.size for r in sized}) < 2:
        return []
    path = img_dir / f"{area}_time.png"
    plot_time_vs_size(sized, path, title, xlabel, note)
    return [f"![{title}](img/{path.name})", ""]


def median(values: list[float]) -> float:
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def fmt_us(us: float) -> str:
    return fmt_time(us * 1e-6)
