"""The README's two set-up commands, as make plans them (``make -n``: nothing is
installed): `make run` installs only the runtime, `make test` the development tools
too, and neither reinstalls what is already there."""

from __future__ import annotations

import os
import shlex
import shutil
import time
from pathlib import Path

import pytest

from tests.support.server import make_plan

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("make") is None, reason="no make"),
]


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    shutil.copy2(ROOT / "Makefile", tmp_path / "Makefile")
    (tmp_path / "pyproject.toml").write_text("")
    past = time.time() - 100
    os.utime(tmp_path / "pyproject.toml", (past, past))
    return tmp_path


def plan(checkout: Path, target: str) -> list[str]:
    return make_plan(checkout, target)


def installs(lines: list[str]) -> list[str]:
    return [line for line in lines if "pip install" in line]


def test_make_run_installs_only_the_runtime(checkout: Path) -> None:
    lines = plan(checkout, "run")
    assert any(" -m venv .venv" in line for line in lines)
    (install,) = installs(lines)
    assert install.endswith(" -e .")
    assert "serve" in lines[-1]


def test_make_test_installs_the_development_tools(checkout: Path) -> None:
    lines = plan(checkout, "test")
    (install,) = installs(lines)
    assert install.endswith(" -e '.[dev]'")
    # What it installs includes the runtime: `make run` need not install again.
    assert any(line.startswith("touch") and ".installed-run" in line for line in lines)
    assert any("pytest" in line for line in lines)


def _fake_venv(checkout: Path, *stamps: str) -> None:
    (checkout / ".venv" / "bin").mkdir(parents=True)
    (checkout / ".venv" / "bin" / "python").touch()
    for stamp in stamps:
        (checkout / ".venv" / stamp).touch()


def test_second_run_starts_at_once(checkout: Path) -> None:
    _fake_venv(checkout, ".installed-run")
    assert installs(plan(checkout, "run")) == []
    # The runtime alone is not enough for the tests.
    assert len(installs(plan(checkout, "test"))) == 1


def test_after_make_test_make_run_installs_nothing(checkout: Path) -> None:
    _fake_venv(checkout, ".installed-dev", ".installed-run")
    assert installs(plan(checkout, "test")) == []
    assert installs(plan(checkout, "run")) == []


def test_a_changed_pyproject_reinstalls(checkout: Path) -> None:
    _fake_venv(checkout, ".installed-dev", ".installed-run")
    future = time.time() + 10  # newer than the stamps
    os.utime(checkout / "pyproject.toml", (future, future))
    assert len(installs(plan(checkout, "run"))) == 1
    assert len(installs(plan(checkout, "test"))) == 1


def test_make_cluster_installs_the_cluster_extra_and_runs_the_nodes_asked_for(
    checkout: Path,
) -> None:
    lines = plan(checkout, "cluster")
    (install,) = installs(lines)
    assert install.endswith(" -e '.[cluster]'")
    plan_text = "\n".join(lines)
    assert 'CREATE DATABASE "chatroom"' in plan_text and "8001 8002 8003" in plan_text
    variables = ("CLUSTER_DBNAME=mine", "CLUSTER_NAME=crew", "CLUSTER_PORTS=9001")
    mine = "\n".join(make_plan(checkout, "cluster", *variables))
    assert (
        'CREATE DATABASE "mine"' in mine and "postgresql+psycopg://postgres@127.0.0.1/mine" in mine
    )
    assert "--cluster-name crew" in mine and "set -- 9001;" in mine
    # After make test (whose dev extra includes the cluster one): nothing to install.
    _fake_venv(checkout, ".installed-dev", ".installed-run", ".installed-cluster")
    assert installs(plan(checkout, "cluster")) == []


def test_make_run_takes_a_port_and_a_database(checkout: Path) -> None:
    """The README's server command, on another port and database without
    copying it out of the Makefile (a path with a space stays one argument)."""
    serve = make_plan(checkout, "run", "PORT=8890", "DB=/tmp/my chat.db")[-1]
    assert shlex.split(serve)[-5:] == ["127.0.0.1", "--port", "8890", "--db", "/tmp/my chat.db"]
    assert shlex.split(make_plan(checkout, "run")[-1])[-2:] == ["--port", "8888"]


def test_make_test_starts_the_services_the_suite_needs(checkout: Path) -> None:
    lines = plan(checkout, "test")
    services = lines.index(".ci/services")
    assert services < next(i for i, line in enumerate(lines) if "pytest -n 2" in line)
