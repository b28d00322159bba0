"""A database per test, on SQLite and on PostgreSQL: the storage and history tests
run against both (issue 14).

Fixtures (loaded by tests/conftest.py as a plugin):

- ``database``: an empty database (no schema yet) on each backend: an SQLite file
  that does not exist yet, or a PostgreSQL database just created;
- ``migrated_database``: the same, at the newest schema, with no events;
- ``module_database``: a migrated database shared by one module's tests.

PostgreSQL: the server of ``CHATROOM_TEST_PG`` (default
``postgresql+psycopg://postgres@127.0.0.1/test``, the machines' local server, trust
auth). Each test gets a database of its own, ``chatroom_t_<pid>_<n>``, so parallel
runs never meet; it is dropped WITH (FORCE) at teardown. A migrated one is a copy
of a template migrated once per run (``CREATE DATABASE ... TEMPLATE``: ~50 ms,
where running the migrations takes ~0.4 s). Databases left behind by a run that
died are dropped by the next run.

PostgreSQL unreachable is a test FAILURE with the reason, never a skip: CI runs
these tests, and a skip would hide that half of them did not run. ``.ci/services``
starts the server.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from storage import migrations
from storage.config import sqlite_url

ADMIN_URL = os.environ.get("CHATROOM_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1/test")
BACKENDS = ("sqlite", "postgresql")
PREFIX = f"chatroom_t_{os.getpid()}_"
_LEFTOVER = re.compile(r"chatroom_t_(\d+)_")
_LOCAL_HOSTS = {None, "", "localhost", "127.0.0.1", "::1"}


@dataclass(frozen=True)
class Database:
    """One test database: what ``--db`` takes, and a way in for checks by hand."""

    backend: str
    url: str
    path: Path | None = None  # the SQLite file

    @property
    def postgresql(self) -> bool:
        return self.backend == "postgresql"

    @property
    def arg(self) -> str:
        """What a user gives ``--db``: the file's path, or the URL."""
        return str(self.path) if self.path is not None else self.url

    def sql(self, statement: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run one statement and commit, as someone with ``sqlite3`` or ``psql`` would
        (not through chatroom's engine: its triggers, pragmas and checks stay out)."""
        if self.path is not None:
            with contextlib.closing(sqlite3.connect(self.path)) as conn, conn:
                cursor = conn.execute(statement, params or {})
                return [tuple(row) for row in cursor.fetchall()]
        engine = create_engine(self.url)
        try:
            with engine.begin() as conn:
                result = conn.execute(text(statement), params or {})
                return [tuple(row) for row in result.all()] if result.returns_rows else []
        finally:
            engine.dispose()


class PostgresServer:
    """The PostgreSQL server the tests use: creates and drops their databases."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = make_url(admin_url)
        self._engine: Engine | None = None
        self._error: str | None = None
        self._template: str | None = None
        self._counter = itertools.count(1)

    def url(self, name: str) -> str:
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    def create(self, *, migrated: bool) -> str:
        """A new database (at head if ``migrated``); its URL."""
        name = f"{PREFIX}{next(self._counter)}"
        template = self._migrated_template() if migrated else "template0"
        self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return self.url(name)

    def drop(self, url: str) -> None:
        name = make_url(url).database
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        if self._engine is None:
            return
        if self._template is not None:
            with contextlib.suppress(SQLAlchemyError):
                self._admin(f'DROP DATABASE IF EXISTS "{self._template}" WITH (FORCE)')
        self._engine.dispose()

    def _migrated_template(self) -> str:
        if self._template is None:
            name = f"{PREFIX}template"
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            self._admin(f'CREATE DATABASE "{name}" TEMPLATE template0')
            migrations.upgrade(self.url(name))  # closes its connections: copyable
            self._template = name
        return self._template

    def _admin(self, statement: str) -> None:
        """Run a statement on the admin database, in autocommit (CREATE and DROP
        DATABASE cannot run in a transaction)."""
        with self._connect().connect() as conn:
            conn.execute(text(statement))

    def _connect(self) -> Engine:
        if self._error is not None:
            pytest.fail(self._error, pytrace=False)
        if self._engine is None:
            engine = create_engine(
                self.admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
            )
            try:
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
                    self._drop_leftovers(conn)
            except (SQLAlchemyError, ImportError) as exc:
                engine.dispose()
                where = self.admin_url.render_as_string(hide_password=True)
                reason = str(getattr(exc, "orig", None) or exc).strip()
                self._error = (
                    f"PostgreSQL is not reachable at {where}: {reason}\n"
                    "The storage and history tests run on PostgreSQL as well as SQLite, "
                    "and fail rather than skip without it. Start it with .ci/services, "
                    "or point CHATROOM_TEST_PG at a server where this role may create "
                    "databases."
                )
            if self._error is not None:  # outside the except: no chained traceback
                pytest.fail(self._error, pytrace=False)
            self._engine = engine
        return self._engine

    def _drop_leftovers(self, conn: Any) -> None:
        """Drop the databases of earlier runs on this machine that died before their
        teardown (their process is gone), so that they do not pile up."""
        if self.admin_url.host not in _LOCAL_HOSTS:
            return  # another machine's runs: their pids mean nothing here
        names = conn.execute(
            text("SELECT datname FROM pg_database WHERE datname LIKE 'chatroom\\_t\\_%'")
        ).scalars()
        for name in list(names):
            match = _LEFTOVER.match(name)
            if match is None or _alive(int(match.group(1))):
                continue
            with contextlib.suppress(SQLAlchemyError):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer(ADMIN_URL)
    yield server
    server.close()


_SQLITE_TEMPLATE: list[Path] = []


def _sqlite_at_head(path: Path, factory: pytest.TempPathFactory) -> None:
    """An SQLite file at head: a copy of one migrated once per run (the same shortcut
    as PostgreSQL's template; a copy takes a millisecond)."""
    if not _SQLITE_TEMPLATE:
        template = factory.mktemp("template") / "chat.db"
        migrations.upgrade(sqlite_url(template))  # its last connection checkpoints the WAL
        _SQLITE_TEMPLATE.append(template)
    shutil.copyfile(_SQLITE_TEMPLATE[0], path)


@contextlib.contextmanager
def provide(
    request: pytest.FixtureRequest, directory: Path, *, migrated: bool
) -> Iterator[Database]:
    """A database on ``request.param``'s backend; dropped afterwards (PostgreSQL)."""
    backend: str = request.param
    if backend == "sqlite":
        path = directory / "chat.db"
        if migrated:
            _sqlite_at_head(path, request.getfixturevalue("tmp_path_factory"))
        yield Database(backend, sqlite_url(path), path)
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    url = server.create(migrated=migrated)
    try:
        yield Database(backend, url)
    finally:
        server.drop(url)


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty database: no file yet (SQLite), a new empty database (PostgreSQL)."""
    with provide(request, tmp_path, migrated=False) as db:
        yield db


@pytest.fixture(params=BACKENDS)
def migrated_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A database at the newest schema, with no events."""
    with provide(request, tmp_path, migrated=True) as db:
        yield db


@pytest.fixture(scope="module", params=BACKENDS)
def module_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    """A migrated database shared by the tests of one module (which only read it)."""
    with provide(request, tmp_path_factory.mktemp("db"), migrated=True) as db:
        yield db
