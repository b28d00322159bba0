"""The benchmark results a report is made from: pytest-benchmark's JSON, read into
``Result``s (one implementation of one group) and a ``Run`` (the results and where
they were measured)."""

from __future__ import annotations

import json
import platform
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


LATEST = ROOT / ".benchmarks" / "latest.json"


@dataclass(frozen=True)
class Result:
    """One benchmark of one implementation, as pytest-benchmark measured it."""

    group: str
    area: str  # "registry" in "registry.get.1000"
    op: str  # "get"
    size: int | None  # 1000, from extra_info["size"] or a trailing ".<int>"
    impl: str  # the table row / chart line
    mean: float  # seconds per call
    median: float
    ops: float
    rounds: int
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Run:
    results: list[Result]
    meta: list[dict[str, Any]]  # one entry per JSON file: date, commit, python, quick


def parse_group(group: str) -> tuple[str, str, int | None]:
    parts = group.split(".")
    size = int(parts[-1]) if len(parts) >= 2 and parts[-1].isdigit() else None
    if size is not None:
        parts = parts[:-1]
    return parts[0], ".".join(parts[1:]) or parts[0], size


def load(paths: Iterable[Path]) -> Run:
    """Results from pytest-benchmark JSON files (a later file's groups replace an
    earlier one's)."""
    by_group: dict[str, list[Result]] = {}
    meta = []
    for path in paths:
        data = json.loads(path.read_text())
        machine, commit = data.get("machine_info", {}), data.get("commit_info", {})
        meta.append(
            {
                "date": str(data.get("datetime", "?"))[:16].replace("T", " ") + " UTC",
                "commit": (commit.get("id") or "?")[:10],
                "branch": commit.get("branch", "?"),
                "dirty": commit.get("dirty", False),
                "python": " ".join(
                    (
                        machine.get("python_implementation", platform.python_implementation()),
                        machine.get("python_version", platform.python_version()),
                    )
                ),
                "quick": data.get("chatroom_quick", False),
            }
        )
        fresh: dict[str, list[Result]] = {}
        for b in data.get("benchmarks", []):
            stats = b.get("stats")
            if not stats:  # --benchmark-disable leaves no numbers
                continue
            group = b.get("group") or b["name"].split("[")[0]
            area, op, size = parse_group(group)
            extra = dict(b.get("extra_info") or {})
            impl = str(extra.pop("impl", None) or b.get("param") or b["name"])
            size = extra.pop("size", size)
            extra.pop("op", None)
            fresh.setdefault(group, []).append(
                Result(
                    group,
                    area,
                    op,
                    size,
                    impl,
                    stats["mean"],
                    stats["median"],
                    stats["ops"],
                    stats["rounds"],
                    extra,
                )
            )
        by_group.update(fresh)
    return Run([r for rs in by_group.values() for r in rs], meta)
