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
    assert migrations.current(url) == migrations.head() == "0001"
    assert {"events", "events_fts", "events_fts_defer", "alembic_version"} <= tables(db)
    with sqlite3.connect(db) as c:
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        indexes = {r[1] for r in c.execute("PRAGMA index_list(events)")}
        triggers = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='trigger'")}
        # id is the rowid alias (INTEGER PRIMARY KEY): no separate primary-key index
        plan = c.execute("EXPLAIN QUERY PLAN SELECT * FROM events WHERE id = 5").fetchall()
    assert {"ix_events_name_id", "ix_events_kind_id", "ix_events_created_at"} <= indexes
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
    assert migrations.check_target(url, "base", upgrade=False) == "0001"
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
