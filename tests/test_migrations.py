"""Alembic migrations on real SQLite files: up, down, agreement with the models, refusal."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from storage import migrations
from storage.config import sqlite_url
from storage.engine import make_engine
from storage.errors import NoDatabase, SchemaTooNew, StorageError
from storage.fts import is_fts_table
from storage.models import Base


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as c:
        return {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "sub" / "dir" / "chat.db"


def test_upgrade_head_on_empty_database_creates_everything(db: Path) -> None:
    url = sqlite_url(db)
    assert migrations.current(url) is None
    assert not db.exists(), "current() must not create the database"
    migrations.upgrade(url)
    assert migrations.current(url) == migrations.head() == "0004"
    assert {"events", "events_fts", "events_fts_defer", "alembic_version"} <= tables(db)
    with sqlite3.connect(db) as c:
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        indexes = {r[1] for r in c.execute("PRAGMA index_list(events)")}
        triggers = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='trigger'")}
        # id is the rowid alias (INTEGER PRIMARY KEY): no separate primary-key index
        plan = c.execute("EXPLAIN QUERY PLAN SELECT * FROM events WHERE id = 5").fetchall()
    assert {
        "ix_events_name_id",
        "ix_events_kind_id",
        "ix_events_created_at",
        "ix_events_recipient_id",
        "ix_events_dm_sender_id",
    } <= indexes
    assert triggers == {"events_fts_ai", "events_fts_ad", "events_fts_au"}
    assert "INTEGER PRIMARY KEY" in str(plan)


def test_the_readers_fast_path_head_is_current() -> None:
    # Update storage.migrations.HEAD when adding a migration.
    assert migrations.head() == migrations.HEAD


def test_downgrade_to_base_and_up_again(db: Path) -> None:
    url = sqlite_url(db)
    migrations.upgrade(url)
    migrations.downgrade(url, "base")
    assert migrations.current(url) is None
    assert tables(db) == {"alembic_version"}
    migrations.upgrade(url, "head")
    assert migrations.current(url) == migrations.head()
    assert "events_fts" in tables(db)


def test_upgrade_twice_is_a_no_op(db: Path) -> None:
    url = sqlite_url(db)
    migrations.ensure_schema(url)
    before = digest(db)
    migrations.ensure_schema(url)
    assert digest(db) == before


def test_models_and_migrations_agree(db: Path) -> None:
    url = sqlite_url(db)
    migrations.upgrade(url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    "include_name": lambda name, type_, _parents: (
                        not (type_ == "table" and name is not None and is_fts_table(name))
                    ),
                },
            )
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_unknown_revision_is_refused_and_left_unchanged(db: Path) -> None:
    url = sqlite_url(db)
    migrations.upgrade(url)
    with sqlite3.connect(db) as c:
        c.execute("UPDATE alembic_version SET version_num = 'abc123'")
    before = digest(db)
    with pytest.raises(SchemaTooNew) as err:
        migrations.ensure_schema(url)
    assert str(err.value) == (
        f"database {db} is at revision abc123, newer than this chatroom "
        f"(head {migrations.head()}); upgrade chatroom"
    )
    with pytest.raises(SchemaTooNew):
        migrations.upgrade(url)
    with pytest.raises(SchemaTooNew):
        migrations.downgrade(url, "base")
    assert digest(db) == before
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


def test_another_programs_database_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as c:
        c.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    with pytest.raises(StorageError, match="not a chatroom database"):
        migrations.ensure_schema(sqlite_url(other))
    assert tables(other) == {"invoices"}


def test_unknown_target_revision(db: Path) -> None:
    with pytest.raises(StorageError, match="unknown revision 'nope'"):
        migrations.upgrade(sqlite_url(db), "nope")


def test_downgrade_without_a_database(db: Path) -> None:
    with pytest.raises(NoDatabase):
        migrations.downgrade(sqlite_url(db), "base")
    assert not db.exists()


def test_current_refuses_another_programs_database(tmp_path: Path) -> None:
    # Not "no schema": an upgrade would refuse the file, so current() says why now.
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as c:
        c.execute("CREATE TABLE t (x)")
    before = digest(other)
    url = sqlite_url(other)
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
    assert digest(other) == before


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
    assert migrations.check_target(url, "base", upgrade=False) == "0004"
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
    assert migrations.current(url) == "0004"
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
    assert migrations.current(url) == "0004"
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
    assert migrations.current(url) == "0004"

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


def test_downgrade_to_base_drops_rooms_and_direct_messages_too(tmp_path: Path) -> None:
    from chatroom.events import Event
    from storage.store import EventStore

    path = tmp_path / "chat.db"
    url = sqlite_url(path)
    with EventStore.open(url) as store:
        store.write_batch([Event(1, "message", "alice", "in dev", T0, room="#dev")])
    migrations.downgrade(url, "base")
    assert migrations.current(url) is None
    assert tables(path) == {"alembic_version"}


def test_0003_drops_the_room_id_index_and_a_downgrade_restores_it(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    url = sqlite_url(db)
    migrations.upgrade(url, "0002")

    def indexes() -> set[str]:
        with sqlite3.connect(db) as c:
            return {r[1] for r in c.execute("PRAGMA index_list(events)")}

    assert "ix_events_room_id" in indexes()
    migrations.upgrade(url)
    assert migrations.current(url) == "0004" and "ix_events_room_id" not in indexes()
    with sqlite3.connect(db) as c:  # one room's last N still walk an index, not the table
        plan = c.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM events WHERE room = '#dev' "
            "ORDER BY room_seq DESC LIMIT 50"
        ).fetchall()
    assert "INDEX" in str(plan) and "TEMP B-TREE" not in str(plan), plan
    migrations.downgrade(url, "0002")
    assert "ix_events_room_id" in indexes()
