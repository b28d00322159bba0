"""Shared fixtures: a real `chatroom serve` process on loopback, port 0, raw UDP
peers, databases on SQLite and PostgreSQL; and the test tiers.

What the fixtures use lives in tests/support/ (and testkit/, shared with the
benchmarks). Every process started here is reaped at teardown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Databases on SQLite and PostgreSQL, one per test (tests/pg.py).
from tests.pg import database, migrated_database, module_database, postgres  # noqa: F401
from tests.support.server import ServerProcess, UdpPeer, start_server

#: The test tiers (markers in pyproject.toml); every test is in exactly one.
TIERS = ("pure", "storage", "integration")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Refuse a test in no tier or in two, before ``-m`` picks a tier: a test
    nobody marked would silently run in no tier's selection."""
    for item in items:
        tiers = sorted({m.name for m in item.iter_markers() if m.name in TIERS})
        if len(tiers) != 1:
            message = (
                f"{item.nodeid} is in {' and '.join(tiers) or 'no'} tier: mark it with exactly "
                "one of " + ", ".join(f"pytest.mark.{t}" for t in TIERS) + " (a module: pytestmark)"
            )
            if hasattr(config, "workerinput"):
                # An xdist worker (make test runs `pytest -n 2`): an exception here
                # would reach the terminal as an INTERNALERROR without this message.
                # Run nothing and stop: xdist shows the reason and the run fails.
                items.clear()
                session.shouldstop = message
                return
            raise pytest.UsageError(message)


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def factory(
        *args: str,
        db: Path | None = None,
        env: dict[str, str] | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> ServerProcess:
        srv = start_server(db or tmp_path / "chat.db", *args, env=env, preexec_fn=preexec_fn)
        started.append(srv)
        return srv

    yield factory
    for srv in started:
        srv.stop()


@pytest.fixture
def server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory()


@pytest.fixture
def peers() -> Iterator[Callable[[tuple[str, int]], UdpPeer]]:
    made: list[UdpPeer] = []

    def make(addr: tuple[str, int]) -> UdpPeer:
        peer = UdpPeer(addr)
        made.append(peer)
        return peer

    yield make
    for peer in made:
        peer.close()
