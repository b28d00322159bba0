"""Alembic migrations on real databases, SQLite files and PostgreSQL (tests/pg.py):
up, down, agreement with the models, refusal. What only SQLite has (files that are
not databases, FTS5, its table rebuilds, query plans) is tested on SQLite only."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from storage import migrations
from storage.config import describe, sqlite_url
from storage.engine import make_engine
from storage.errors import NoDatabase, SchemaTooNew, StorageError
from storage.fts import is_fts_object
from storage.models import Base
from tests.pg import Database

pytestmark = pytest.mark.storage

EVENT_INDEXES = {
    "ix_events_name_id",
    "ix_events_kind_id",
    "ix_events_created_at",
    "ix_events_recipient_id",
    "ix_events_dm_sender_id",
}


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as c:
        return {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tables_of(db: Database) -> set[str]:
    if db.postgresql:
        rows = db.sql("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    else:
        rows = db.sql("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {name for (name,) in rows}


def indexes_of(db: Database) -> set[str]:
    if db.postgresql:
        rows = db.sql(
            "SELECT indexname FROM pg_indexes "
            "WHERE tablename = 'events' AND schemaname = current_schema()"
        )
    else:
        rows = db.sql("SELECT name FROM pragma_index_list('events')")
    return {name for (name,) in rows}


def pg_fts_objects(db: Database) -> set[str]:
    """Migration 0005's objects that exist (PostgreSQL)."""
    rows = db.sql(
        "SELECT 'function' FROM pg_proc WHERE proname = 'events_fts_document' "
        "UNION ALL SELECT 'config' FROM pg_ts_config WHERE cfgname = 'chatroom_fts' "
        "UNION ALL SELECT 'index' FROM pg_indexes WHERE indexname = 'ix_events_fts'"
    )
    return {kind for (kind,) in rows}


def snapshot(db: Database) -> object:
    """Everything a migration could change: the file's bytes (SQLite), the schema's
    objects with their definitions and the revision (PostgreSQL)."""
    if db.path is not None:
        return digest(db.path)
    objects = db.sql(
        "SELECT c.relname, c.relkind::text, pg_get_indexdef(c.oid), "
        "(SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' "
        "ORDER BY attnum) FROM pg_attribute WHERE attrelid = c.oid AND attnum > 0) "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() ORDER BY c.relname"
    )
    if "alembic_version" not in {row[0] for row in objects}:
        return objects
    return objects + db.sql("SELECT version_num FROM alembic_version")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "sub" / "dir" / "chat.db"


def test_upgrade_head_on_empty_database_creates_everything(database: Database) -> None:
    url = database.url
    assert migrations.current(url) is None
    if database.path is not None:
        assert not database.path.exists(), "current() must not create the database"
    migrations.upgrade(url)
    assert migrations.current(url) == migrations.head() == "0005"
    assert {"events", "alembic_version"} <= tables_of(database)
    assert indexes_of(database) >= EVENT_INDEXES
    if database.postgresql:
        assert pg_fts_objects(database) == {"function", "config", "index"}
        # The configuration ignores case and accents (unaccent, in contrib).
        (vector,) = database.sql("SELECT events_fts_document('Wörld, ÉCLAIR e-mail')::text")
        assert vector == ("'e':3 'eclair':2 'mail':4 'world':1",)
        return
    path = database.path
    assert path is not None
    assert {"events_fts", "events_fts_defer"} <= tables(path)
    with sqlite3.connect(path) as c:
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        triggers = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='trigger'")}
        # id is the rowid alias (INTEGER PRIMARY KEY): no separate primary-key index
        plan = c.execute("EXPLAIN QUERY PLAN SELECT * FROM events WHERE id = 5").fetchall()
    assert triggers == {"events_fts_ai", "events_fts_ad", "events_fts_au"}
    assert "INTEGER PRIMARY KEY" in str(plan)


def test_upgrade_creates_the_directory(db: Path) -> None:
    url = sqlite_url(db)
    assert migrations.current(url) is None
    assert not db.parent.exists(), "current() must not create the database"
    migrations.upgrade(url)
    assert migrations.current(url) == migrations.head()


def test_the_readers_fast_path_head_is_current() -> None:
    # Update storage.migrations.HEAD when adding a migration.
    assert migrations.head() == migrations.HEAD


def test_downgrade_to_base_and_up_again(database: Database) -> None:
    url = database.url
    migrations.upgrade(url)
    migrations.downgrade(url, "base")
    assert migrations.current(url) is None
    assert tables_of(database) == {"alembic_version"}
    if database.postgresql:
        assert pg_fts_objects(database) == set()
    migrations.upgrade(url, "head")
    assert migrations.current(url) == migrations.head()
    if database.postgresql:
        assert pg_fts_objects(database) == {"function", "config", "index"}
    else:
        assert "events_fts" in tables_of(database)


def test_upgrade_twice_is_a_no_op(database: Database) -> None:
    migrations.ensure_schema(database.url)
    before = snapshot(database)
    migrations.ensure_schema(database.url)
    assert snapshot(database) == before


def test_models_and_migrations_agree(database: Database) -> None:
    migrations.upgrade(database.url)
    engine = make_engine(database.url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    # The full-text objects are the migrations' own SQL, not models.
                    "include_name": lambda name, type_, _parents: not is_fts_object(name, type_),
                },
            )
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_unknown_revision_is_refused_and_left_unchanged(database: Database) -> None:
    url = database.url
    migrations.upgrade(url)
    database.sql("UPDATE alembic_version SET version_num = 'abc123'")
    before = snapshot(database)
    with pytest.raises(SchemaTooNew) as err:
        migrations.ensure_schema(url)
    assert str(err.value) == (
        f"database {describe(url)} is at revision abc123, newer than this chatroom "
        f"(head {migrations.head()}); upgrade chatroom"
    )
    with pytest.raises(SchemaTooNew):
        migrations.upgrade(url)
    with pytest.raises(SchemaTooNew):
        migrations.downgrade(url, "base")
    assert snapshot(database) == before
    assert migrations.current(url) == "abc123"
    assert isinstance(err.value, StorageError)


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_bytes(b"these are my notes, not a database\n" * 200)
    before = digest(junk)
    with pytest.raises(StorageError, match="is not a chatroom database"):
        migrations.ensure_schema(sqlite_url(junk))
    with pytest.raises(StorageError, match="is not a chatroom database"):
        migrations.current(sqlite_url(junk))
    assert digest(junk) == before


def test_another_programs_database_is_refused(database: Database) -> None:
    database.sql("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    with pytest.raises(StorageError, match="not a chatroom database"):
        migrations.ensure_schema(database.url)
    assert tables_of(database) == {"invoices"}


def test_unknown_target_revision(db: Path) -> None:
    with pytest.raises(StorageError, match="unknown revision 'nope'"):
        migrations.upgrade(sqlite_url(db), "nope")


def test_downgrade_without_a_database(db: Path) -> None:
    with pytest.raises(NoDatabase):
        migrations.downgrade(sqlite_url(db), "base")
    assert not db.exists()


def test_current_refuses_another_programs_database(database: Database) -> None:
    # Not "no schema": an upgrade would refuse the database, so current() says why now.
    database.sql("CREATE TABLE t (x INTEGER)")
    before = snapshot(database)
    url = database.url
    message = r"is not a chatroom database: it holds other tables \(t\)"
    for call in (
        lambda: migrations.current(url),
        lambda: migrations.check_at_head(url),
        lambda: migrations.check_target(url, "base", upgrade=False),
        lambda: migrations.upgrade(url),
        lambda: migrations.ensure_schema(url),
    ):
        with pytest.raises(StorageError, match=message):
            call()
    assert snapshot(database) == before


def test_check_target_reports_refusals_and_changes_nothing(db: Path, tmp_path: Path) -> None:
    url = sqlite_url(db)
    with pytest.raises(NoDatabase):
        migrations.check_target(url, "base", upgrade=False)
    assert migrations.check_target(url, "head", upgrade=True) is None
    assert not db.exists()
    with pytest.raises(StorageError, match="unknown revision 'nope'"):
        migrations.check_target(url, "nope", upgrade=True)
    migrations.upgrade(url)
    before = digest(db)
    assert migrations.check_target(url, "base", upgrade=False) == "0005"
    assert digest(db) == before
    with sqlite3.connect(db) as c:
        c.execute("UPDATE alembic_version SET version_num = 'abc123'")
    with pytest.raises(SchemaTooNew):
        migrations.check_target(url, "base", upgrade=False)
    junk = tmp_path / "notes.txt"
    junk.write_text("notes\n" * 100)
    with pytest.raises(StorageError, match=r"not a chatroom database \(not an SQLite file\)"):
        migrations.check_target(sqlite_url(junk), "base", upgrade=False)


def test_readers_name_an_empty_file_as_such(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(NoDatabase, match="holds no chatroom schema yet") as err:
        migrations.check_at_head(sqlite_url(empty))
    assert "no database at" not in str(err.value)
    assert empty.read_bytes() == b""


# --------------------------------------------------------------------------- 0001 -> 0002

T0 = 1_795_000_000.0
OLD_COLUMNS = "id, kind, name, text, created_at, session, seq"


def write_like_0001(path: Path, rows: list[tuple[object, ...]]) -> None:
    """A batch stored the way the single-room release's EventStore stored it (its
    seven columns; the FTS trigger held off by the marker row and the batch indexed
    with one INSERT ... SELECT)."""
    c = sqlite3.connect(path, isolation_level=None)
    try:
        c.execute("BEGIN IMMEDIATE")
        c.execute("INSERT INTO events_fts_defer (writer) VALUES (1)")
        (before,) = c.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()
        c.executemany(
            f"INSERT INTO events ({OLD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (session, seq) DO NOTHING",
            rows,
        )
        c.execute(
            "INSERT INTO events_fts (rowid, text) SELECT id, text FROM events WHERE id > ?",
            (before,),
        )
        c.execute("DELETE FROM events_fts_defer")
        c.execute("COMMIT")
    finally:
        c.close()


def database_of_0001(path: Path) -> str:
    """A database as the single-room release left it: five events, four written by
    its server and one by hand (through the insert trigger)."""
    url = sqlite_url(path)
    migrations.upgrade(url, "0001")
    write_like_0001(
        path,
        [
            (1, "join", "alice", "", 1_795_000_000_000_000, "a" * 32, None),
            (2, "message", "alice", "hello old world", 1_795_000_001_000_000, "a" * 32, 1),
            (3, "join", "Bob", "", 1_795_000_002_000_000, None, None),
            (4, "message", "bob", "hello from bob", 1_795_000_003_000_000, "b" * 32, 1),
        ],
    )
    with sqlite3.connect(path) as c:
        c.execute(
            f"INSERT INTO events ({OLD_COLUMNS}) "
            "VALUES (5, 'announce', '', 'hello by hand', 1795000004000000, NULL, NULL)"
        )
    c.close()
    return url


def fts_ids(path: Path, query: str) -> list[int]:
    with sqlite3.connect(path) as c:
        rows = c.execute(
            "SELECT rowid FROM events_fts WHERE events_fts MATCH ? ORDER BY rowid", (query,)
        ).fetchall()
    c.close()
    return [r[0] for r in rows]


def fts_consistent(path: Path) -> None:
    with sqlite3.connect(path) as c:
        c.execute("INSERT INTO events_fts (events_fts, rank) VALUES ('integrity-check', 1)")
        triggers = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='trigger'")}
        count = c.execute("SELECT count(*) FROM events").fetchone()[0]
        indexed = c.execute("SELECT count(*) FROM events_fts_docsize").fetchone()[0]
    c.close()
    assert triggers == {"events_fts_ai", "events_fts_ad", "events_fts_au"}
    assert indexed == count


def columns(path: Path) -> list[str]:
    with sqlite3.connect(path) as c:
        names = [r[1] for r in c.execute("PRAGMA table_info(events)")]
    c.close()
    return names


def events_ddl(path: Path) -> str:
    with sqlite3.connect(path) as c:
        (sql,) = c.execute("SELECT sql FROM sqlite_master WHERE name = 'events'").fetchone()
    c.close()
    return str(sql)


def test_upgrade_from_0001_puts_the_old_events_in_the_lobby(tmp_path: Path) -> None:
    from chatroom.events import Event, dm_key
    from storage.queries import HistoryQuery, query_events
    from storage.store import EventStore

    path = tmp_path / "old.db"
    url = database_of_0001(path)
    migrations.upgrade(url)
    assert migrations.current(url) == "0005"
    with sqlite3.connect(path) as c:
        rows = c.execute("SELECT id, room, room_seq, recipient FROM events ORDER BY id").fetchall()
        # The table was rebuilt: id is still the rowid alias, name still ignores case.
        plan = c.execute("EXPLAIN QUERY PLAN SELECT * FROM events WHERE id = 5").fetchall()
        by_name = c.execute("SELECT id FROM events WHERE name = 'BOB' ORDER BY id").fetchall()
    c.close()
    assert rows == [(i, "#lobby", i, None) for i in range(1, 6)]
    assert "INTEGER PRIMARY KEY" in str(plan)
    assert by_name == [(3,), (4,)]
    assert 'name VARCHAR(64) COLLATE "NOCASE" NOT NULL' in events_ddl(path)
    assert fts_ids(path, "hello") == [2, 4, 5]
    fts_consistent(path)

    with EventStore.open(url) as store:
        assert [(e.id, e.room, e.room_seq, e.to) for e in store.recent(2)] == [
            (4, "#lobby", 4, None),
            (5, "#lobby", 5, None),
        ]
        assert store.room_heads() == {"#lobby": 5}
        store.write_batch(
            [
                Event(6, "message", "alice", "hello new room", T0 + 6, room="#dev", room_seq=1),
                Event(
                    7,
                    "message",
                    "alice",
                    "hello privately",
                    T0 + 7,
                    room=dm_key("alice", "bob"),
                    room_seq=1,
                    to="bob",
                ),
                Event(8, "message", "bob", "hello lobby", T0 + 8, room_seq=6),
            ]
        )
        assert store.room_heads() == {"#lobby": 6, "#dev": 1, "@alice bob": 1}
        found = query_events(store, HistoryQuery(search="hello", limit=0))
        assert [e.id for e in found] == [2, 4, 5, 6, 7, 8]
        lobby = query_events(store, HistoryQuery(search="hello", rooms=("#lobby",)))
        assert [e.id for e in lobby] == [2, 4, 5, 8]
    assert fts_ids(path, "privately") == [7]
    with sqlite3.connect(path) as c:  # the recreated triggers serve every other writer
        c.execute(
            "INSERT INTO events (id, kind, name, text, created_at, room, room_seq) "
            "VALUES (9, 'message', 'eve', 'typed in sqlite3', 0, '#dev', 2)"
        )
        c.execute("UPDATE events SET text = 'edited old words' WHERE id = 2")
        c.execute("DELETE FROM events WHERE id = 4")
    c.close()
    assert fts_ids(path, "sqlite3") == [9]
    assert fts_ids(path, "edited") == [2]
    assert fts_ids(path, "bob") == []
    fts_consistent(path)


def test_downgrade_to_0001_of_a_lobby_only_database_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    url = database_of_0001(path)
    fresh = tmp_path / "fresh.db"
    migrations.upgrade(sqlite_url(fresh), "0001")
    migrations.upgrade(url)
    migrations.downgrade(url, "0001")
    assert migrations.current(url) == "0001"
    assert columns(path) == columns(fresh) == OLD_COLUMNS.split(", ")
    assert events_ddl(path) == events_ddl(fresh).replace(
        "CREATE TABLE events", 'CREATE TABLE "events"'
    )
    with sqlite3.connect(path) as c:
        rows = c.execute(f"SELECT {OLD_COLUMNS} FROM events ORDER BY id").fetchall()
        indexes = {r[1] for r in c.execute("PRAGMA index_list(events)")}
    c.close()
    assert [r[:4] for r in rows] == [
        (1, "join", "alice", ""),
        (2, "message", "alice", "hello old world"),
        (3, "join", "Bob", ""),
        (4, "message", "bob", "hello from bob"),
        (5, "announce", "", "hello by hand"),
    ]
    assert {i for i in indexes if i.startswith("ix_")} == {
        "ix_events_name_id",
        "ix_events_kind_id",
        "ix_events_created_at",
    }
    assert fts_ids(path, "hello") == [2, 4, 5]
    fts_consistent(path)
    migrations.upgrade(url)  # and up again
    assert migrations.current(url) == "0005"
    fts_consistent(path)


def test_downgrade_refuses_while_rooms_or_direct_messages_are_stored(tmp_path: Path) -> None:
    from chatroom.events import Event, dm_key
    from storage.store import EventStore

    path = tmp_path / "old.db"
    url = database_of_0001(path)
    with EventStore.open(url) as store:  # upgrades to head
        store.write_batch(
            [
                Event(6, "message", "alice", "in dev", T0 + 6, room="#dev", room_seq=1),
                Event(7, "message", "bob", "lobby six", T0 + 7, room_seq=6),
                Event(
                    8,
                    "message",
                    "bob",
                    "psst",
                    T0 + 8,
                    room=dm_key("bob", "alice"),
                    to="alice",
                    room_seq=1,
                ),
                Event(9, "message", "alice", "lobby seven", T0 + 9, room_seq=7),
            ]
        )
    before = digest(path)
    message = (
        r"cannot downgrade to 0001: 2 stored event\(s\) are in other rooms or direct "
        r"conversations, and the single-room schema would show them to everyone in #lobby"
    )
    with pytest.raises(StorageError, match=message):
        migrations.downgrade(url, "0001")
    assert digest(path) == before
    assert migrations.current(url) == "0005"

    # The operator deletes them, knowingly; then the downgrade goes through, and the
    # lobby's ids are its positions again (no gap where the deleted rows were).
    with sqlite3.connect(path) as c:
        c.execute("DELETE FROM events WHERE room <> '#lobby'")
    c.close()
    migrations.downgrade(url, "0001")
    assert migrations.current(url) == "0001"
    with sqlite3.connect(path) as c:
        rows = c.execute("SELECT id, text FROM events WHERE kind = 'message' ORDER BY id")
        messages = rows.fetchall()
    c.close()
    assert messages == [
        (2, "hello old world"),
        (4, "hello from bob"),
        (6, "lobby six"),
        (7, "lobby seven"),
    ]
    assert fts_ids(path, "lobby") == [6, 7]
    assert fts_ids(path, "psst") == []
    fts_consistent(path)


def test_downgrade_to_base_drops_rooms_and_direct_messages_too(database: Database) -> None:
    from chatroom.events import Event
    from storage.store import EventStore

    url = database.url
    with EventStore.open(url) as store:
        store.write_batch([Event(1, "message", "alice", "in dev", T0, room="#dev")])
    migrations.downgrade(url, "base")
    assert migrations.current(url) is None
    assert tables_of(database) == {"alembic_version"}


def test_0003_drops_the_room_id_index_and_a_downgrade_restores_it(database: Database) -> None:
    url = database.url
    migrations.upgrade(url, "0002")
    assert "ix_events_room_id" in indexes_of(database)
    migrations.upgrade(url)
    assert migrations.current(url) == "0005" and "ix_events_room_id" not in indexes_of(database)
    if database.path is not None:
        with sqlite3.connect(database.path) as c:  # one room's last N still walk an index
            plan = c.execute(
                "EXPLAIN QUERY PLAN SELECT id FROM events WHERE room = '#dev' "
                "ORDER BY room_seq DESC LIMIT 50"
            ).fetchall()
        assert "INDEX" in str(plan) and "TEMP B-TREE" not in str(plan), plan
    migrations.downgrade(url, "0002")
    assert "ix_events_room_id" in indexes_of(database)


# --------------------------------------------------------------------------- both databases


def test_old_events_through_every_migration_and_back(database: Database) -> None:
    """The single-room release's events on each database: upgraded into the lobby,
    found by search, and back to 0001 once nothing is outside the lobby. (SQLite's
    FTS5 side of this is in the tests above.)"""
    from chatroom.events import Event, dm_key
    from storage.queries import HistoryQuery, query_events
    from storage.store import EventStore

    url = database.url
    migrations.upgrade(url, "0001")
    for row in (
        "(1, 'join', 'alice', '', 1795000000000000, NULL, NULL)",
        "(2, 'message', 'alice', 'hello old wörld', 1795000001000000, 'a', 1)",
        "(3, 'message', 'Bob', 'hello from bob', 1795000002000000, 'b', 1)",
    ):
        database.sql(f"INSERT INTO events ({OLD_COLUMNS}) VALUES {row}")
    migrations.upgrade(url)
    assert database.sql("SELECT id, room, room_seq, recipient FROM events ORDER BY id") == [
        (i, "#lobby", i, None) for i in (1, 2, 3)
    ]
    with EventStore.open(url) as store:
        assert store.room_heads() == {"#lobby": 3}
        # Rows stored before the search index existed are in it (0005 on PostgreSQL).
        assert [e.id for e in query_events(store, HistoryQuery(search="world"))] == [2]
        store.write_batch(
            [
                Event(
                    4,
                    "message",
                    "bob",
                    "hello privately",
                    T0 + 4,
                    room=dm_key("bob", "alice"),
                    room_seq=1,
                    to="alice",
                ),
                Event(5, "message", "alice", "hello lobby", T0 + 5, room_seq=4),
            ]
        )
        found = query_events(store, HistoryQuery(search="hello", limit=0))
        assert [e.id for e in found] == [2, 3, 4, 5]
    with pytest.raises(StorageError, match=r"cannot downgrade to 0001: 1 stored event\(s\)"):
        migrations.downgrade(url, "0001")
    assert migrations.current(url) == "0005"
    database.sql("DELETE FROM events WHERE room <> '#lobby'")
    migrations.downgrade(url, "0001")
    assert migrations.current(url) == "0001"
    # The lobby's ids are its positions again: no gap where the direct message was.
    assert database.sql("SELECT id, text FROM events WHERE kind = 'message' ORDER BY id") == [
        (2, "hello old wörld"),
        (3, "hello from bob"),
        (4, "hello lobby"),
    ]
    migrations.upgrade(url)
    assert migrations.current(url) == "0005"


def test_0005_indexes_words_on_postgresql_and_changes_nothing_on_sqlite(
    database: Database,
) -> None:
    from chatroom.events import Event
    from storage.queries import HistoryQuery, query_events
    from storage.store import EventStore

    url = database.url
    migrations.upgrade(url, "0004")
    schema = "SELECT type, name, sql FROM sqlite_master ORDER BY name"
    before = None if database.postgresql else database.sql(schema)
    database.sql(
        "INSERT INTO events (id, kind, name, text, created_at, room, room_seq) "
        "VALUES (1, 'message', 'a', 'Crème brûlée at https://example.com/menu', 0, '#lobby', 1)"
    )
    migrations.upgrade(url, "0005")

    def search(text: str) -> list[int]:
        with EventStore.open(url, create=False) as store:
            return [e.id for e in query_events(store, HistoryQuery(search=text))]

    if not database.postgresql:
        # SQLite has had its FTS5 index since 0001: 0005 changes nothing there.
        assert database.sql(schema) == before
        assert search("creme brulee") == [1]
        return
    assert pg_fts_objects(database) == {"function", "config", "index"}
    with EventStore.open(url) as store:
        store.write_batch([Event(2, "message", "b", "CREME for the brulee", T0, room_seq=2)])
    assert search("creme brulee") == [1, 2]
    assert search("example menu") == [1]
    assert search("bru*") == [1, 2]
    assert search('"brulee at"') == [1]
    migrations.downgrade(url, "0004")
    assert pg_fts_objects(database) == set()
    assert migrations.current(url) == "0004"
    migrations.upgrade(url)
    assert search("crème") == [1, 2]
