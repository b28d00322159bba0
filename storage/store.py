"""EventStore: the server's batched event writer and the simple reads the room needs.

The write path (``write_batch``) is one transaction per batch. On SQLite it runs at
the driver level through SQLAlchemy's connection (``exec_driver_sql`` with a list of
tuples is the driver's ``executemany``), which measures at ~0.9-1x raw sqlite3,
where Core ``insert()`` executemany is ~0.3x (docs/architecture.md, "Storage").
On PostgreSQL it is one ``INSERT ... ON CONFLICT (session, seq) DO NOTHING``
executemany (psycopg sends the rows in one pipeline); other databases skip stored
(session, seq) pairs with a SELECT first.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any, Final, Self, cast

from sqlalchemy import Connection, Engine, bindparam, func, insert, select, text, tuple_
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.default import DefaultDialect
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from chatroom.events import Event, EventKind
from storage import fts
from storage.config import describe, sqlite_file
from storage.engine import BEGIN_IMMEDIATE, BUSY_TIMEOUT_MS, is_sqlite, make_engine
from storage.errors import NoDatabase, SchemaTooNew, StorageError
from storage.migrations import check_at_head, ensure_schema
from storage.models import EVENT_COLUMNS, event_columns, from_us, to_us
from storage.models import events as events_t

__all__ = ["EventStore", "NoDatabase", "SchemaTooNew", "StorageError"]

_MAX_ID = "SELECT coalesce(max(id), 0) FROM events"
#: Most rows per multi-row INSERT on SQLite (10 columns: 1,280 parameters, far
#: under SQLite's limit of 32,766 since 3.32).
SQLITE_CHUNK: Final = 128


@functools.cache
def _insert_sqlite_rows(count: int) -> str:
    """One INSERT of ``count`` rows. A retried client message (same session and
    seq) is stored once: the conflict target is only (session, seq), so a clash
    on the primary key still raises. ``count`` is a power of two up to SQLITE_CHUNK,
    so a handful of statements cover every batch and stay in the driver's cache."""
    row = "(" + ", ".join("?" * len(EVENT_COLUMNS)) + ")"
    return (
        f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES {', '.join([row] * count)} "
        "ON CONFLICT (session, seq) DO NOTHING"
    )


def _insert_sqlite(raw: sqlite3.Connection, rows: Sequence[Row]) -> None:
    """``rows`` in a few multi-row INSERTs rather than one ``executemany``.

    Why: ``executemany`` steps the statement once per row, and the driver gives
    up the GIL around every step and takes it back after. With the commit on its
    own thread (chatroom/server/commits.py), each take-back waits for the
    server's loop thread: measured, the batch's wall time grew several-fold
    under a busy loop, and even alone a multi-row INSERT costs ~30% less per
    row (docs/benchmarks.md, "Profile")."""
    i, total = 0, len(rows)
    while i < total:
        count = min(SQLITE_CHUNK, 1 << ((total - i).bit_length() - 1))
        raw.execute(_insert_sqlite_rows(count), [v for r in rows[i : i + count] for v in r])
        i += count


# PostgreSQL: a retried message is skipped by the database itself, in the same
# statement, including a retry within the batch (each row of an executemany is its
# own execution, so the second one sees the first).
_INSERT_PG = postgresql.insert(events_t).on_conflict_do_nothing(
    index_elements=[events_t.c.session, events_t.c.seq]
)


def _positional_sql(dialect: Dialect) -> str:
    """``_INSERT_PG`` compiled for the driver with ``%s`` placeholders, so that the
    batch goes to the driver's executemany as tuples: Core's executemany of the same
    statement with a dict per row took ~30% longer for 100 events (16 vs 12 ms
    here), all of it Python work per row."""
    positional = cast(type[DefaultDialect], type(dialect))(paramstyle="format")
    return str(_INSERT_PG.compile(dialect=positional))


_SELECT = select(*event_columns)
# Each room's newest position, without reading every row: a loose index scan of the
# (room, room_seq) unique index, one seek per room (and one more for its maximum),
# where GROUP BY would read the whole index. Rooms compare with the column's
# collation (NOCASE on SQLite), as the unique constraint does.
_WALK_ROOMS = """
    WITH RECURSIVE rooms(room) AS (
        SELECT min(room) FROM events
        UNION ALL
        SELECT (SELECT min(room) FROM events WHERE room > rooms.room)
        FROM rooms WHERE rooms.room IS NOT NULL
    )
"""
_ROOM_HEADS = text(
    _WALK_ROOMS
    + """
    SELECT room, (SELECT max(room_seq) FROM events WHERE events.room = rooms.room)
    FROM rooms WHERE room IS NOT NULL
    """
)
# The stored rooms equal to some of :wanted ignoring case (lower() on both sides).
_ROOMS_LOWER_IN = text(
    _WALK_ROOMS + "SELECT room FROM rooms WHERE lower(room) IN :wanted"
).bindparams(bindparam("wanted", expanding=True))
# The same scan, within [lo, hi) (the rooms that start with a prefix). SQLite only:
# under another database's collation (en_US, ICU) '#' and '@' need not sort as in
# ASCII, so [prefix, next character) could miss rooms or take others.
_ROOMS_BETWEEN = text(
    """
    WITH RECURSIVE rooms(room) AS (
        SELECT min(room) FROM events WHERE room >= :lo AND room < :hi
        UNION ALL
        SELECT (SELECT min(room) FROM events WHERE room > rooms.room AND room < :hi)
        FROM rooms WHERE rooms.room IS NOT NULL
    )
    SELECT room FROM rooms WHERE room IS NOT NULL
    """
)

#: One stored event in ``EVENT_COLUMNS`` order: the driver-level insert's parameters.
Row = tuple[int, str, str, str, int, str | None, int | None, str, int, str | None]


def event_from_row(row: Sequence[Any]) -> Event:
    """A result row (in ``EVENT_COLUMNS`` order) as an Event."""
    kind: EventKind = row[1]
    return Event(
        row[0], kind, row[2], row[3], from_us(row[4]), row[5], row[6], row[7], row[8], row[9]
    )


def row_from_event(e: Event) -> Row:
    """An Event as the row stored for it (``EVENT_COLUMNS`` order)."""
    return (
        e.id,
        e.kind,
        e.name,
        e.text,
        to_us(e.created_at),
        e.session,
        e.seq,
        e.room,
        e.room_seq,
        e.to,
    )


class EventStore:
    """The events of one database. Not thread-safe: one owner (the server loop).

    Open it with :meth:`open`; use it as a context manager or call :meth:`close`.
    """

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        self.url = url
        self._writer: Connection | None = None
        self._fts: bool | None = None
        self._insert_pg: str | None = None

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def open(cls, url: str, *, create: bool = True) -> EventStore:
        """Open the database at ``url``.

        ``create=True`` (the server): create the parent directory and the database if
        needed and upgrade it to head (:func:`storage.migrations.ensure_schema`).
        ``create=False`` (readers such as ``chatroom history``): the database must
        already exist at head; it is opened read-only (SQLite files) and never created.
        """
        if create:
            ensure_schema(url)
            return cls(make_engine(url), url)
        path = sqlite_file(url)
        if path is not None and path.is_dir():
            raise StorageError(f"{path} is a directory; give --db a database file")
        if path is not None and not path.is_file():
            raise NoDatabase(f"no database at {path}; start `chatroom serve` first")
        check_at_head(url)
        return cls(make_engine(url, read_only=True), url)

    @classmethod
    def for_writing(cls, url: str) -> EventStore:
        """The database at ``url``, which the server has already opened (and
        migrated) with :meth:`open`, for its writer process (storage/writer.py):
        no schema work, so a writer starts in milliseconds."""
        return cls(make_engine(url), url)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ reads

    def last_id(self) -> int:
        """The highest stored id; 0 when there are no events."""
        with self._reading() as conn:
            value = conn.execute(select(func.max(events_t.c.id))).scalar()
        return int(value or 0)

    def recent(self, limit: int, *, room: str | None = None) -> list[Event]:
        """The last ``limit`` events, oldest first: of every room and direct
        conversation in id order, or of ``room`` only (its stored key, e.g. ``#dev``
        or ``@alice bob``; by its positions, through the ``(room, room_seq)`` index)."""
        if limit <= 0:
            return []
        stmt = _SELECT
        order = events_t.c.id
        if room is not None:
            stmt = stmt.where(events_t.c.room == room)
            order = events_t.c.room_seq  # the same order within a room (migration 0003)
        stmt = stmt.order_by(order.desc()).limit(limit)
        with self._reading() as conn:
            rows = conn.execute(stmt).all()
        return [event_from_row(r) for r in reversed(rows)]

    def room_heads(self) -> dict[str, int]:
        """Each room's newest position (its max ``room_seq``), rooms and direct
        conversations alike: where the server continues every sequence on start-up.
        Reads one index entry or two per room, not every event."""
        with self._reading() as conn:
            rows = conn.execute(_ROOM_HEADS).all()
        return {str(room): int(head) for room, head in rows}

    def rooms(self, prefix: str = "") -> list[str]:
        """The stored rooms (as stored) that start with ``prefix``, in the column's
        order: ``rooms("#")`` lists the rooms, ``rooms("@")`` the direct
        conversations. One index seek per room."""
        if not prefix:
            return list(self.room_heads())
        if not is_sqlite(self.engine):
            # Any collation: walk every room (a few hundred seeks at most) and keep
            # those that start with the prefix.
            return [room for room in self.room_heads() if room.startswith(prefix)]
        hi = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        with self._reading() as conn:
            rows = conn.execute(_ROOMS_BETWEEN, {"lo": prefix, "hi": hi}).scalars().all()
        return [str(r) for r in rows]

    def after(self, after_id: int, limit: int) -> list[Event]:
        """Events with id > ``after_id``, ascending, at most ``limit``."""
        if limit <= 0:
            return []
        stmt = _SELECT.where(events_t.c.id > after_id).order_by(events_t.c.id).limit(limit)
        with self._reading() as conn:
            rows = conn.execute(stmt).all()
        return [event_from_row(r) for r in rows]

    # ------------------------------------------------------------------ writes

    def write_batch(self, events: Iterable[Event]) -> None:
        """Store ``events`` in one transaction, with the ids they carry.

        A message whose (session, seq) is already stored is a client's retry: it is
        skipped and the rest of the batch is stored. Anything else that fails (an id
        already used, the disk full...) rolls the whole batch back and raises
        :class:`StorageError`.
        """
        self.write_rows([row_from_event(e) for e in events])

    def write_rows(self, rows: list[Row]) -> None:
        """``write_batch`` of rows already made by ``row_from_event`` (what the
        writer process receives)."""
        if not rows:
            return
        conn = self._writer_connection()
        if is_sqlite(conn):
            self._write_sqlite(conn, rows)
            return
        try:
            if conn.dialect.name == "postgresql":
                self._write_postgresql(conn, rows)
            else:
                self._write_generic(conn, rows)
            conn.commit()
        except SQLAlchemyError as exc:
            with contextlib.suppress(SQLAlchemyError):  # the connection may be gone
                conn.rollback()
            raise StorageError(
                f"could not store {len(rows)} events in {describe(self.url)}: {detail(exc)}"
            ) from exc

    def _write_sqlite(self, conn: Connection, rows: list[Row]) -> None:
        """The SQLite write path, on the driver connection SQLAlchemy's pool gave us.

        Six statements per batch; going through SQLAlchemy's execution machinery for
        each would cost more than the FTS indexing does (docs/architecture.md). The
        connection runs in driver autocommit mode (storage.engine), so the BEGIN and
        COMMIT here are the whole transaction.
        """
        raw = cast(sqlite3.Connection, conn.connection.driver_connection)
        try:
            if self._fts is None:
                self._fts = raw.execute(fts.HAS_FTS).fetchone() == (2,)
            use_fts = self._fts
            raw.execute("BEGIN IMMEDIATE")
            if use_fts:
                # The marker silences the FTS insert trigger for this transaction only;
                # the batch is then indexed with one INSERT ... SELECT.
                raw.execute(fts.DEFER_ON)
            (before,) = raw.execute(_MAX_ID).fetchone()
            fresh = [r for r in rows if r[0] > before]
            if fresh:
                _insert_sqlite(raw, fresh)
                if use_fts:
                    raw.execute(fts.INDEX_AFTER, (before,))
            if use_fts:
                raw.execute(fts.DEFER_OFF)
            if len(fresh) < len(rows):
                # Ids at or below the current maximum (not the room's order; only
                # another writer does this): the trigger indexes the rows that go in.
                _insert_sqlite(raw, [r for r in rows if r[0] <= before])
            raw.execute("COMMIT")
        except sqlite3.Error as exc:
            if raw.in_transaction:
                raw.execute("ROLLBACK")
            raise StorageError(
                f"could not store {len(rows)} events in {describe(self.url)}: {exc}"
            ) from exc

    def _write_postgresql(self, conn: Connection, rows: list[Row]) -> None:
        """The PostgreSQL write path: one executemany of INSERT ... ON CONFLICT
        (session, seq) DO NOTHING in the transaction the caller commits.

        The database decides what a retry is, atomically, so this holds with several
        writers too (a cluster's nodes); a clash on anything else (an id, a room's
        position) raises and the caller rolls the whole batch back. The full-text
        index is an expression index (migration 0005): nothing to do for it here.
        """
        if self._insert_pg is None:
            self._insert_pg = _positional_sql(conn.dialect)
        conn.exec_driver_sql(self._insert_pg, rows)

    def _write_generic(self, conn: Connection, rows: list[Row]) -> None:
        # Other databases: skip (session, seq) pairs already stored, then one Core
        # executemany. The server is the only writer, so nothing can slip in between.
        keys = {(r[5], r[6]) for r in rows if r[5] is not None and r[6] is not None}
        if keys:
            found = conn.execute(
                select(events_t.c.session, events_t.c.seq).where(
                    tuple_(events_t.c.session, events_t.c.seq).in_(list(keys))
                )
            ).all()
            seen = {(s, q) for s, q in found}
            unique: list[Row] = []
            for r in rows:
                key = (r[5], r[6])
                if r[5] is not None and r[6] is not None:
                    if key in seen:
                        continue
                    seen.add(key)
                unique.append(r)
            rows = unique
        if rows:
            conn.execute(insert(events_t), [dict(zip(EVENT_COLUMNS, r, strict=True)) for r in rows])

    # ------------------------------------------------------------------ internals

    def size_bytes(self) -> int | None:
        """The database's size on disk: an SQLite file with its WAL, PostgreSQL's
        own ``pg_database_size`` (one query, for ``chatroom status``); None for
        another database, or when PostgreSQL cannot be asked right now (status
        still answers, with the size unknown)."""
        path = sqlite_file(self.url)
        if path is None:
            if self.engine.dialect.name != "postgresql":
                return None
            try:
                with self._reading() as conn:
                    size = conn.execute(text("SELECT pg_database_size(current_database())"))
                    return int(size.scalar_one())
            except StorageError:
                return None
        total = 0
        for part in (path, path.with_name(path.name + "-wal")):
            with contextlib.suppress(OSError):
                total += part.stat().st_size
        return total

    def set_lock_wait(self, seconds: float | None) -> None:
        """How long a write waits for another process's lock before failing
        (None: the engine's default, BUSY_TIMEOUT_MS): SQLite's busy_timeout,
        PostgreSQL's lock_timeout. The server shortens it while it retries a failed
        commit, so that a retry cannot stall its loop for the full wait each time;
        other databases' lock waits are their own."""
        conn = self._writer_connection()
        ms = BUSY_TIMEOUT_MS if seconds is None else round(seconds * 1000)
        if is_sqlite(conn):
            # On the driver's connection: through SQLAlchemy's, the statement would
            # begin a transaction (BEGIN IMMEDIATE: the very lock being waited for).
            driver = conn.connection.driver_connection
            assert isinstance(driver, sqlite3.Connection)
            driver.execute(f"PRAGMA busy_timeout = {int(ms)}")
        elif conn.dialect.name == "postgresql":
            # storage.engine sets lock_timeout on every connection; this one's changes.
            try:
                conn.exec_driver_sql(f"SET lock_timeout = {max(int(ms), 1)}")
                conn.commit()
            except SQLAlchemyError as exc:
                with contextlib.suppress(SQLAlchemyError):
                    conn.rollback()
                raise StorageError(f"cannot use {describe(self.url)}: {detail(exc)}") from exc

    def open_writer(self) -> None:
        """Open the connection writes go through, now and on the calling
        thread, rather than at the first write (which would pay for it)."""
        self._writer_connection()

    def _writer_connection(self) -> Connection:
        if self._writer is None:
            try:
                self._writer = self.engine.connect().execution_options(**{BEGIN_IMMEDIATE: True})
            except SQLAlchemyError as exc:
                raise StorageError(f"cannot open {describe(self.url)}: {detail(exc)}") from exc
        return self._writer

    def _reading(self) -> _Reading:
        return _Reading(self)


class _Reading:
    """A short read on a pooled connection; driver errors become StorageError."""

    def __init__(self, store: EventStore) -> None:
        self._store = store
        self._conn: Connection | None = None

    def __enter__(self) -> Connection:
        try:
            self._conn = self._store.engine.connect()
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot open {describe(self._store.url)}: {detail(exc)}") from exc
        return self._conn

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._conn is not None
        self._conn.close()
        if isinstance(exc, SQLAlchemyError):
            raise StorageError(f"reading {describe(self._store.url)}: {detail(exc)}") from exc


def rooms_ignoring_case(conn: Connection, rooms: Sequence[str]) -> list[str]:
    """The stored rooms that are one of ``rooms`` ignoring case, as stored (for
    databases without SQLite's NOCASE column). One walk of the rooms through the
    ``(room, room_seq)`` index, so that the events are then found through it too:
    ``lower(room) IN (...)`` on the events themselves reads the whole table (70 ms
    for one room of 100 at 200,000 events on PostgreSQL; 6 ms this way)."""
    wanted = sorted({r.lower() for r in rooms})
    return [str(r) for r in conn.execute(_ROOMS_LOWER_IN, {"wanted": wanted}).scalars()]


def has_fts(conn: Connection) -> bool:
    """Whether this database has the FTS5 index (SQLite, migrated)."""
    if not is_sqlite(conn):
        return False
    count = conn.exec_driver_sql(fts.HAS_FTS).scalar_one()
    conn.rollback()
    return bool(count == 2)


def detail(exc: SQLAlchemyError) -> str:
    """The driver's own message for ``exc`` (what a person can act on)."""
    if isinstance(exc, IntegrityError):
        return f"constraint violated ({exc.orig})"
    return str(getattr(exc, "orig", None) or exc).strip()
