"""Shared benchmark settings.

``QUICK`` (env ``CHATROOM_BENCH_QUICK=1``) shrinks every suite to tiny sizes so that
``CHATROOM_BENCH_QUICK=1 pytest bench --benchmark-disable`` runs in seconds in CI: it
checks that the benchmarks still run and give correct answers, and that no speed
target is clearly missed: each suite with a target asserts a floor well below it
(about half), measured as a same-run comparison cheap enough for quick mode and
robust to a busy machine (issue 17). Without it, suites use their full sizes and
assert the same floors.

Conventions the report (bench/report/) relies on, for every suite:

- ``benchmark.group = "<area>.<op>"`` or ``"<area>.<op>.<size>"``: one group compares
  implementations for one operation (and size) side by side;
- ``benchmark.extra_info["impl"]`` names the implementation (the table row and the
  chart line), ``benchmark.extra_info["size"]`` the size (the chart's x axis); any
  other ``extra_info`` is shown in the report as it is.
"""

from __future__ import annotations

import os

import pytest

QUICK: bool = os.environ.get("CHATROOM_BENCH_QUICK", "") not in ("", "0")


def sizes(full: tuple[int, ...], quick: tuple[int, ...]) -> tuple[int, ...]:
    """The sizes to parametrize over: ``quick`` under CHATROOM_BENCH_QUICK=1."""
    return quick if QUICK else full


def pytest_benchmark_update_json(
    config: pytest.Config, benchmarks: list[object], output_json: dict[str, object]
) -> None:
    """Mark quick runs in the JSON, so the report can say its numbers mean nothing."""
    output_json["chatroom_quick"] = QUICK
