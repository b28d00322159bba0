"""One ``chatroom serve`` per database: an advisory lock held for the server's life.

The server numbers events itself (it is the single writer), so a second server
on the same database would clash on event ids mid-run. It is refused at start
instead, with a message naming the server that holds the database.

SQLite: ``flock(2)`` on ``<database>.lock`` beside the file, which names its
holder (pid and address). The kernel releases the lock when the holder dies,
even by SIGKILL, so a stale file never blocks a restart; the file is left in
place (removing it would race with a server starting). PostgreSQL: a
session-level advisory lock on a dedicated connection. Other databases: no
lock (a documented limit).

The nodes of a cluster (``chatroom serve --cluster``) all write one PostgreSQL
database, numbering through it (storage/sequencer.py): each holds the same lock
*shared*, so any number of nodes run together, and a single server (which
numbers itself) and a cluster never do.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Final

from sqlalchemy import Connection, text

from storage.config import describe, make_parent, parse_url, sqlite_file
from storage.engine import make_engine
from storage.errors import StorageError

#: pg_advisory_lock's key: "chatroom" in ASCII, as one bigint.
PG_LOCK_KEY: Final = 0x63686174726F6F6D


class DatabaseInUse(StorageError):
    """Another live ``chatroom serve`` writes this database."""


class WriterLock:
    def __init__(self, fd: int | None = None, conn: Connection | None = None) -> None:
        self._fd = fd
        self._conn = conn

    @classmethod
    def claim(cls, url: str, owner: str, *, shared: bool = False) -> WriterLock:
        """Take the database for this server (``owner`` says who, for the message
        another server gets); ``shared``: as one node of a cluster, beside the
        other nodes. Raises DatabaseInUse if another server has it."""
        path = sqlite_file(url)
        if path is not None:
            return cls(fd=_claim_file(path, owner))
        if parse_url(url).get_backend_name() == "postgresql":
            return cls(conn=_claim_pg(url, shared))
        return cls()

    def inheritable(self) -> tuple[int, ...]:
        """The descriptors a helper process of the server must hold to keep the
        database taken while it lives (SQLite: the locked file; the lock is the
        open file's, so it holds until every process with it has exited). The
        server's writer process (storage/writer.py) holds it: a server killed
        by SIGKILL cannot leave a writer still committing its last batch under
        a restarted server that has already read the last id."""
        return () if self._fd is None else (self._fd,)

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        if self._conn is not None:
            _close(self._conn)
            self._conn = None


def lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".lock")


def _claim_file(database: Path, owner: str) -> int:
    path = lock_path(database)
    make_parent(path)  # claimed before the database is created (chatroom/serving.py)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StorageError(f"cannot create {path}: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise DatabaseInUse(
            f"{database} is in use by another chatroom serve ({holder}); "
            "stop it first, or give this one another --db"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, owner.encode(), 0)
    return fd


def _claim_pg(url: str, shared: bool) -> Connection:
    conn = make_engine(url).connect()
    lock = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
    got = conn.execute(text(f"SELECT {lock}(:k)"), {"k": PG_LOCK_KEY}).scalar()
    conn.commit()
    if not got:
        _close(conn)
        holder = "a single chatroom serve" if shared else "another chatroom serve"
        raise DatabaseInUse(
            f"{describe(url)} is in use by {holder} (a cluster's nodes share a database "
            "only with each other); stop it first, or give this one another --db"
        )
    return conn


def _close(conn: Connection) -> None:
    """Close the lock's connection for real: an advisory lock belongs to the
    database session, which closing a pooled Connection would keep open (and
    locked) in the pool until the engine is collected."""
    engine = conn.engine
    conn.close()
    engine.dispose()
