"""The engine factory: every SQLite connection gets the same pragmas.

On every new SQLite connection (a ``connect`` event listener):

- ``busy_timeout = 5000``: a writer or reader waits up to 5 s for a lock instead of
  failing at once with "database is locked";
- ``journal_mode = WAL``: readers never block the writer and the writer never blocks
  readers (``chatroom history -f`` runs next to ``chatroom serve``);
- ``synchronous = NORMAL``: in WAL mode a commit is durable against a process crash;
  a power loss can take the last commits, never corrupt the file (docs/storage.md);
- ``foreign_keys = ON``.

pysqlite's legacy transaction handling (no BEGIN before SELECT or DDL) is replaced by
SQLAlchemy's documented recipe: the driver runs in autocommit mode and SQLAlchemy emits
``BEGIN`` itself, so a migration's DDL is transactional and a read sees one snapshot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import SQLAlchemyError

from storage.config import describe, parse_url
from storage.errors import StorageError

BUSY_TIMEOUT_MS = 5000
# Execution option: ``conn.execution_options(**{BEGIN_IMMEDIATE: True})``.
BEGIN_IMMEDIATE = "chatroom_begin_immediate"


def make_engine(url: str, *, read_only: bool = False) -> Engine:
    """An engine for ``url`` (any SQLAlchemy URL) with the SQLite pragmas set.

    ``read_only=True`` opens an SQLite file with ``mode=ro`` (and ``query_only``): the
    connection can never create or change the database. The file must exist. On
    PostgreSQL every transaction is read-only instead.
    """
    u = parse_url(url)
    if u.get_backend_name() != "sqlite":
        try:
            engine = create_engine(u, pool_pre_ping=True)
            if u.get_backend_name() == "postgresql":
                _install_postgresql_listeners(engine, read_only=read_only)
            return engine
        except ImportError as exc:
            raise StorageError(
                f"no database driver for {u.drivername} (Python module {exc.name!r} is "
                "not installed); install it, or use another --db"
            ) from exc
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot use database {describe(url)}: {exc}") from exc
    target: str | URL = u
    if read_only and u.database and u.database != ":memory:" and not u.database.startswith("file:"):
        path = str(Path(u.database).absolute())
        target = u.set(
            database="file:" + quote(path),
            query={**u.query, "mode": "ro", "uri": "true"},
        )
    engine = create_engine(target)
    _install_sqlite_listeners(engine, read_only=read_only)
    return engine


def is_sqlite(engine: Engine | Connection) -> bool:
    """Whether ``engine`` talks to SQLite."""
    return engine.dialect.name == "sqlite"


def _install_postgresql_listeners(engine: Engine, *, read_only: bool) -> None:
    """PostgreSQL's counterparts of the SQLite pragmas, on every new connection:

    - ``lock_timeout``: a statement waits BUSY_TIMEOUT_MS for a lock, then fails
      (PostgreSQL's default is to wait for ever): another session's ``LOCK TABLE``
      or long DDL makes a commit fail and be retried, as SQLite's busy_timeout
      does, instead of stalling the server's writer without a word;
    - ``default_transaction_read_only`` for readers: ``chatroom history`` can never
      change the database, as SQLite's ``mode=ro`` promises.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"SET lock_timeout = {BUSY_TIMEOUT_MS}")
            if read_only:
                cursor.execute("SET default_transaction_read_only = on")
        finally:
            cursor.close()
        dbapi_connection.commit()  # a SET in a transaction lasts only that long


def _install_sqlite_listeners(engine: Engine, *, read_only: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide where transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if not read_only:
                cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            if read_only:
                cursor.execute("PRAGMA query_only = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # BEGIN IMMEDIATE (take the write lock now, waiting up to busy_timeout) for
        # connections that will write after reading; plain BEGIN otherwise.
        if conn.get_execution_options().get(BEGIN_IMMEDIATE):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")
