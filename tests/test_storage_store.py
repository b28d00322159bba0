"""EventStore on real databases, SQLite and PostgreSQL (tests/pg.py): the batched
writer, reads, rooms, search consistency; SQLite's pragmas and FTS5 index."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatroom.events import LOBBY, Event, dm_key
from storage import migrations
from storage.config import sqlite_url
from storage.errors import NoDatabase, SchemaTooNew, StorageError
from storage.models import EVENT_COLUMNS
from storage.queries import HistoryQuery, query_events
from storage.store import EventStore, event_from_row, row_from_event
from tests.pg import Database

pytestmark = pytest.mark.storage

T0 = 1_795_000_000.0


def ev(i: int, text: str = "", kind: str = "message", name: str = "alice", **kw: object) -> Event:
    return Event(i, kind, name, text or f"message {i}", T0 + i, **kw)  # type: ignore[arg-type]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """An SQLite file, for what only SQLite has (files, pragmas, FTS5's own checks)."""
    return tmp_path / "data" / "chat.db"


@pytest.fixture
def sqlite_store(path: Path) -> Iterator[EventStore]:
    with EventStore.open(sqlite_url(path)) as s:
        yield s


@pytest.fixture
def db(migrated_database: Database) -> Database:
    """A database at head on each backend (SQLite, PostgreSQL)."""
    return migrated_database


@pytest.fixture
def store(db: Database) -> Iterator[EventStore]:
    with EventStore.open(db.url) as s:
        yield s


def found(store: EventStore, search: str) -> list[int]:
    """The ids ``chatroom history -q SEARCH`` finds, through either database's index."""
    return [e.id for e in query_events(store, HistoryQuery(search=search, limit=0))]


def index_consistent(db: Database) -> None:
    """SQLite: the FTS5 index equals the table. PostgreSQL's index is an expression
    index, which the database itself keeps equal to the table (migration 0005)."""
    if db.path is not None:
        fts_integrity_ok(db.path)


def fts_integrity_ok(path: Path) -> None:
    with sqlite3.connect(path) as c:
        # rank 1: also compare the index with the content table (external content).
        c.execute("INSERT INTO events_fts (events_fts, rank) VALUES ('integrity-check', 1)")
        assert c.execute("SELECT count(*) FROM events_fts_defer").fetchone() == (0,)


def test_open_creates_parent_directory_and_schema(path: Path, sqlite_store: EventStore) -> None:
    # SQLite only: a file and its directory (PostgreSQL: the next test).
    assert path.is_file()
    assert sqlite_store.last_id() == 0
    assert sqlite_store.recent(10) == []
    assert sqlite_store.after(0, 10) == []


def test_open_creates_the_schema(database: Database) -> None:
    with EventStore.open(database.url) as store:
        assert store.last_id() == 0
        assert store.recent(10) == []
        assert store.after(0, 10) == []
        assert store.room_heads() == {}
    assert database.sql("SELECT version_num FROM alembic_version") == [(migrations.head(),)]


def test_write_then_read_back(db: Database, store: EventStore) -> None:
    batch = [
        Event(1, "join", "alice", "", T0 + 0.000001),
        Event(2, "message", "alice", "hello, world", T0 + 1.5, "s" * 32, 1),
        Event(3, "announce", "server", "maintenance at five", T0 + 2.25),
        Event(4, "quit", "alice", "", T0 + 3),
    ]
    store.write_batch(batch)
    store.write_batch([Event(5, "timeout", "bob", "", T0 + 4)])
    assert store.last_id() == 5
    got = store.recent(10)
    assert [e.id for e in got] == [1, 2, 3, 4, 5]
    for stored, sent in zip(got, [*batch, Event(5, "timeout", "bob", "", T0 + 4)], strict=True):
        assert stored.created_at == pytest.approx(sent.created_at, abs=1e-6)
        assert (stored.id, stored.kind, stored.name, stored.text, stored.session, stored.seq) == (
            sent.id,
            sent.kind,
            sent.name,
            sent.text,
            sent.session,
            sent.seq,
        )
    assert [e.id for e in store.recent(2)] == [4, 5]
    assert [e.id for e in store.after(2, 2)] == [3, 4]
    assert [e.id for e in store.after(5, 10)] == []
    assert store.recent(0) == []
    assert found(store, "maintenance") == [3]
    index_consistent(db)


def test_created_at_is_stored_as_integer_microseconds_utc(db: Database, store: EventStore) -> None:
    store.write_batch([Event(1, "message", "a", "x", 1_795_000_000.123456)])
    type_of = "pg_typeof(created_at)::text" if db.postgresql else "typeof(created_at)"
    ((value, kind),) = db.sql(f"SELECT created_at, {type_of} FROM events")
    assert (value, kind) == (1_795_000_000_123_456, "bigint" if db.postgresql else "integer")


def test_duplicate_session_seq_in_a_later_batch_keeps_the_rest(
    db: Database, store: EventStore
) -> None:
    store.write_batch([ev(1, "first try", session="S", seq=7), ev(2, "other")])
    # The client retried seq 7; the room gave the retry a new id in a batch with others.
    store.write_batch([ev(3, "before"), ev(4, "first try", session="S", seq=7), ev(5, "after")])
    assert [e.id for e in store.recent(10)] == [1, 2, 3, 5]
    assert found(store, "first") == [1]
    assert found(store, "after") == [5]
    index_consistent(db)


def test_duplicate_within_one_batch_and_exact_replay(db: Database, store: EventStore) -> None:
    a = ev(1, "once", session="S", seq=1)
    store.write_batch([a, ev(2, "once", session="S", seq=1), ev(3, "three")])
    store.write_batch([a])  # the very same event again: already stored, skipped
    assert [e.id for e in store.recent(10)] == [1, 3]
    assert found(store, "once") == [1]
    index_consistent(db)


def test_null_sessions_never_conflict(store: EventStore) -> None:
    store.write_batch([ev(1, kind="join"), ev(2, kind="join"), ev(3, seq=None)])
    assert store.last_id() == 3


def test_reused_id_rolls_the_whole_batch_back(db: Database, store: EventStore) -> None:
    store.write_batch([ev(1, "one")])
    with pytest.raises(StorageError, match="could not store 2 events"):
        store.write_batch([ev(2, "two"), ev(1, "clash", session="X", seq=1)])
    assert [e.id for e in store.recent(10)] == [1]
    store.write_batch([ev(2, "two again")])  # the writer is usable afterwards
    assert [e.text for e in store.recent(10)] == ["one", "two again"]
    assert found(store, "clash") == []
    index_consistent(db)


def test_a_failed_batch_says_which_database(db: Database, store: EventStore) -> None:
    store.write_batch([ev(1, "one")])
    with pytest.raises(StorageError) as err:
        store.write_batch([ev(1, "again")])
    assert "constraint" in str(err.value)
    where = str(db.path) if db.path is not None else db.url.split("@")[-1]
    assert where in str(err.value)


def test_ids_below_the_maximum_are_stored_and_indexed(db: Database, store: EventStore) -> None:
    store.write_batch([ev(10, "ten")])
    store.write_batch([ev(5, "five"), ev(11, "eleven")])
    assert [e.id for e in store.recent(10)] == [5, 10, 11]
    assert found(store, "five") == [5]
    assert found(store, "eleven") == [11]
    index_consistent(db)


def test_rows_written_by_other_code_paths_are_searchable(db: Database, store: EventStore) -> None:
    store.write_batch([ev(1, "from the server")])
    # Someone with the sqlite3 shell or psql.
    db.sql(
        "INSERT INTO events (id, kind, name, text, created_at, room, room_seq) "
        "VALUES (2, 'announce', 'ops', 'written by hand', 0, '#lobby', 2)"
    )
    db.sql("UPDATE events SET text = 'edited from the server' WHERE id = 1")
    assert found(store, "hand") == [2]
    assert found(store, "edited") == [1]
    db.sql("DELETE FROM events WHERE id = 2")
    assert found(store, "hand") == []
    index_consistent(db)


def test_generic_write_path_dedups_too(db: Database, store: EventStore) -> None:
    # The path for databases other than SQLite and PostgreSQL (Core insert after a
    # SELECT of the stored pairs), exercised here on both.
    store.write_batch([ev(1, "orig", session="S", seq=1)])
    conn = store._writer_connection()
    rows = [row_from_event(e) for e in (ev(2, "orig", session="S", seq=1), ev(3, "new"))]
    rows.append(row_from_event(ev(4, "dup in batch", session="T", seq=1)))
    rows.append(row_from_event(ev(5, "dup in batch", session="T", seq=1)))
    store._write_generic(conn, rows)
    conn.commit()
    assert [e.id for e in store.recent(10)] == [1, 3, 4]
    assert found(store, "new") == [3]
    index_consistent(db)


def test_pragmas_on_every_connection(sqlite_store: EventStore) -> None:
    with sqlite_store.engine.connect() as conn:
        pragma = {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
        }
    assert pragma == {
        "journal_mode": "wal",
        "synchronous": 1,
        "busy_timeout": 5000,
        "foreign_keys": 1,
    }


def test_reader_does_not_create_a_database(path: Path) -> None:
    with pytest.raises(NoDatabase, match=r"no database at .*; start `chatroom serve` first"):
        EventStore.open(sqlite_url(path), create=False)
    assert not path.exists() and not path.parent.exists()


def test_reader_does_not_create_a_schema(database: Database) -> None:
    if database.path is not None:
        database.path.touch()  # an empty file: SQLite's "database without a schema"
    with pytest.raises(NoDatabase, match="holds no chatroom schema yet"):
        EventStore.open(database.url, create=False)
    assert "events" not in {t for (t,) in _tables(database)}


def _tables(db: Database) -> list[tuple[str]]:
    if db.postgresql:
        return db.sql("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    return db.sql("SELECT name FROM sqlite_master WHERE type = 'table'")


def test_reader_is_read_only_and_sees_new_commits(db: Database, store: EventStore) -> None:
    store.write_batch([ev(1)])
    with EventStore.open(db.url, create=False) as reader:
        assert reader.last_id() == 1
        store.write_batch([ev(2), ev(3)])  # a server keeps writing
        assert reader.last_id() == 3
        assert [e.id for e in reader.after(1, 10)] == [2, 3]
        with reader.engine.connect() as conn:
            if db.postgresql:
                assert conn.exec_driver_sql("SHOW transaction_read_only").scalar() == "on"
            else:
                assert conn.exec_driver_sql("PRAGMA query_only").scalar() == 1
        with pytest.raises(StorageError, match=r"readonly|read-only"):
            reader.write_batch([ev(4)])
    assert store.last_id() == 3


def test_reader_refuses_a_database_newer_than_the_code(db: Database, store: EventStore) -> None:
    store.close()
    db.sql("UPDATE alembic_version SET version_num = 'zzz999'")
    with pytest.raises(SchemaTooNew, match="newer than this chatroom"):
        EventStore.open(db.url, create=False)
    with pytest.raises(SchemaTooNew):
        EventStore.open(db.url)


# ------------------------------------------------------------------ rooms and DMs

DM = dm_key("alice", "bob")


def rooms_batch() -> list[Event]:
    """Two rooms and a direct conversation, interleaved as a server numbers them:
    ``id`` the global order, ``room_seq`` each room's own."""
    return [
        ev(1, kind="join"),
        ev(2, "lobby one", room_seq=2),
        ev(3, "dev one", room="#dev", room_seq=1),
        ev(4, "psst", room=DM, room_seq=1, to="bob"),
        ev(5, "dev two", name="bob", room="#dev", room_seq=2),
        ev(6, "back", name="bob", room=DM, room_seq=2, to="alice"),
        ev(7, "lobby three", room_seq=3),
    ]


def test_rooms_recipients_and_room_seqs_are_stored_and_read_back(
    db: Database, store: EventStore
) -> None:
    batch = rooms_batch()
    store.write_batch(batch[:3])
    store.write_batch(batch[3:])
    got = store.recent(10)
    assert got == batch  # every field, room, room_seq and to included
    assert [(e.room, e.room_seq, e.to) for e in got] == [
        (LOBBY, 1, None),
        (LOBBY, 2, None),
        ("#dev", 1, None),
        ("@alice bob", 1, "bob"),
        ("#dev", 2, None),
        ("@alice bob", 2, "alice"),
        (LOBBY, 3, None),
    ]
    assert [e.direct for e in got] == [False, False, False, True, False, True, False]
    assert store.after(3, 2) == batch[3:5]
    stored = db.sql("SELECT room, room_seq, recipient FROM events WHERE id = 6")
    assert stored == [("@alice bob", 2, "alice")]
    index_consistent(db)


def test_recent_is_the_global_order_or_one_room(db: Database, store: EventStore) -> None:
    store.write_batch(rooms_batch())
    assert [e.id for e in store.recent(3)] == [5, 6, 7]
    assert [e.id for e in store.recent(10, room="#dev")] == [3, 5]
    if not db.postgresql:
        # SQLite's room column collates NOCASE. PostgreSQL's compares as stored:
        # `chatroom history --room` finds every stored spelling itself.
        assert [e.id for e in store.recent(1, room="#DEV")] == [5]
    assert [e.id for e in store.recent(2, room=LOBBY)] == [2, 7]
    assert [e.text for e in store.recent(5, room=DM)] == ["psst", "back"]
    assert store.recent(5, room="#nowhere") == []


def test_room_heads_continue_every_sequence(db: Database, store: EventStore) -> None:
    assert store.room_heads() == {}
    store.write_batch(rooms_batch())
    heads = {LOBBY: 3, "#dev": 2, "@alice bob": 2}
    assert store.room_heads() == heads
    assert store.rooms("#") == ["#dev", LOBBY]
    assert store.rooms("@") == ["@alice bob"]
    assert sorted(store.rooms()) == sorted(heads)
    # A room whose newest events are older than other rooms' still reports its own max.
    store.write_batch([ev(8, "late", room="#dev", room_seq=3), ev(9, "x", room_seq=4)])
    assert store.room_heads() == {LOBBY: 4, "#dev": 3, "@alice bob": 2}
    with EventStore.open(db.url, create=False) as reader:  # read-only works too
        assert reader.room_heads() == {LOBBY: 4, "#dev": 3, "@alice bob": 2}
        assert reader.rooms("#") == ["#dev", LOBBY]


def test_a_room_position_used_twice_rolls_the_batch_back(db: Database, store: EventStore) -> None:
    store.write_batch([ev(1, "one", room="#dev", room_seq=1)])
    # The same room ignoring ASCII case on SQLite (NOCASE); PostgreSQL compares as stored.
    same = "#dev" if db.postgresql else "#Dev"
    with pytest.raises(StorageError, match="could not store 2 events"):
        store.write_batch([ev(2, "two", room_seq=2), ev(3, "clash", room=same, room_seq=1)])
    assert [e.id for e in store.recent(10)] == [1]


def test_room_seq_zero_means_the_id(store: EventStore) -> None:
    # Events of the single-room releases (and tests) leave room_seq at 0: the id.
    store.write_batch([Event(41, "message", "a", "x", T0)])
    (got,) = store.recent(1)
    assert (got.room, got.room_seq, got.to) == (LOBBY, 41, None)


def test_one_column_list_for_rows_and_events() -> None:
    e = ev(3, "hi", session="S", seq=9, room=DM, room_seq=2, to="bob")
    row = row_from_event(e)
    assert len(row) == len(EVENT_COLUMNS)
    assert dict(zip(EVENT_COLUMNS, row, strict=True))["recipient"] == "bob"
    assert event_from_row(row) == e


def test_generic_write_path_stores_rooms_too(db: Database, store: EventStore) -> None:
    conn = store._writer_connection()
    store._write_generic(conn, [row_from_event(e) for e in rooms_batch()])
    conn.commit()
    assert store.recent(10) == rooms_batch()
    assert store.room_heads() == {LOBBY: 3, "#dev": 2, "@alice bob": 2}
    index_consistent(db)


def test_size_is_what_the_database_takes(db: Database, store: EventStore) -> None:
    # `chatroom status` shows it: the file and its WAL, or pg_database_size.
    store.write_batch([ev(i, "x" * 500) for i in range(1, 101)])
    size = store.size_bytes()
    assert size is not None and size > 50_000
    if db.path is not None:
        assert size >= db.path.stat().st_size


def test_the_lock_wait_is_shortened_while_retrying_and_restored(
    db: Database, store: EventStore
) -> None:
    # The server shortens it while a failed commit is retried (docs/architecture.md).
    conn = store._writer_connection()

    def wait() -> object:
        if db.postgresql:
            return conn.exec_driver_sql("SHOW lock_timeout").scalar()
        driver = conn.connection.driver_connection
        return driver.execute("PRAGMA busy_timeout").fetchone()[0]

    assert wait() == ("5s" if db.postgresql else 5000)
    store.set_lock_wait(0.05)
    assert wait() == ("50ms" if db.postgresql else 50)
    store.write_batch([ev(1)])  # and the writer writes as before
    store.set_lock_wait(None)
    assert wait() == ("5s" if db.postgresql else 5000)
    assert store.last_id() == 1
