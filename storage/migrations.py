"""Schema migrations without an alembic.ini: the Config is built here, pointing at the
migration scripts (see :func:`find_alembic_dir`), and each command runs on our own engine
(so the SQLite pragmas apply) inside one transaction.

``ensure_schema`` is what ``chatroom serve`` calls: upgrade to head, and refuse (never
touch) a database whose revision this code does not know.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Final

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from storage.config import describe, make_parent, sqlite_file
from storage.engine import BEGIN_IMMEDIATE, make_engine
from storage.errors import NoDatabase, SchemaTooNew, StorageError

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

# Alembic is imported only where a migration or the script directory is needed: it
# costs ~0.1 s, and `chatroom history` (which only reads) should not pay for it.


def find_alembic_dir() -> Path:
    """Where the migration scripts are.

    A wheel (``pip install .``, pipx) ships the repository's top-level ``alembic/`` as
    ``storage/_alembic`` (see setup.py); a checkout (source tree or editable
    install) has no such directory, and uses the repository's ``alembic/`` next to
    ``storage/``. A directory without our env.py and versions/ is never taken: next to
    an installed ``storage/`` sits the Alembic library itself.
    """
    package = resources.files("storage")
    # Alembic needs real files: a package that is not on the file system (a zip
    # import) finds nothing, and config() says the migrations are missing.
    if isinstance(package, Path):
        for candidate in (package / "_alembic", package.resolve().parent / "alembic"):
            if (candidate / "env.py").is_file() and (candidate / "versions").is_dir():
                return candidate
    return Path(str(package)) / "_alembic"  # where a wheel has them, for the message


ALEMBIC_DIR = find_alembic_dir()
BASE = "base"
# The newest revision in alembic/versions, as a fast path for readers: a database at
# this revision needs no look at the scripts. If it goes stale (a new migration added
# without updating it), readers only get slower: head() stays the authority, and
# tests/test_migrations.py fails until it is updated.
#: The advisory lock migrations on PostgreSQL take: "chat-mig" in ASCII.
MIGRATION_LOCK_KEY: Final = 0x636861742D6D6967
HEAD: Final = "0005"


def config() -> Config:
    """An Alembic Config for this repository's migrations (no ini file)."""
    from alembic.config import Config

    if not (ALEMBIC_DIR / "env.py").is_file():
        raise StorageError(f"migrations not found: {ALEMBIC_DIR} (is chatroom installed whole?)")
    cfg = Config()
    # ConfigParser interpolates '%'; a path may contain one.
    cfg.set_main_option("script_location", str(ALEMBIC_DIR).replace("%", "%%"))
    return cfg


def _script() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(config())


def head() -> str:
    """The newest revision this code knows."""
    rev = _script().get_current_head()
    if rev is None:
        raise StorageError(f"no migrations in {ALEMBIC_DIR}")
    return rev


def known_revisions() -> set[str]:
    """Every revision id this code knows."""
    return {script.revision for script in _script().walk_revisions()}


def current(url: str) -> str | None:
    """The database's revision; None for an empty or missing database (never creates one).

    Another program's database (tables, but no chatroom revision) raises
    :class:`StorageError`, as every command that would use it does.
    """
    path = _sqlite_file(url)
    if path is not None and not path.exists():
        return None
    with _connect(url, read_only=path is not None) as conn:
        have = _revision(conn, url)
        if have is None:
            _refuse_foreign(conn, url)
        return have


def check_target(url: str, rev: str, *, upgrade: bool) -> str | None:
    """Raise what :func:`upgrade` (or :func:`downgrade`) to ``rev`` would refuse, and
    return the database's revision; changes nothing, creates nothing.

    For a command to call before it asks "are you sure?": an unknown ``rev``, a file
    that is not a database, another program's database, a database newer than this
    code, and (downgrading) a missing database are all reported first.
    """
    return _preflight(url, rev, upgrade=upgrade, known=known_revisions(), top=head())


def upgrade(url: str, rev: str = "head") -> None:
    """Upgrade to ``rev`` (default: head). Refuses a database newer than this code."""
    _migrate(url, rev, upgrade=True)


def downgrade(url: str, rev: str) -> None:
    """Downgrade to ``rev`` (a revision id or ``base``). Destroys what later revisions held."""
    _migrate(url, rev, upgrade=False)


def ensure_schema(url: str) -> None:
    """Make the database ready for the server: create it or upgrade it to head.

    A database at a revision this code does not know raises :class:`SchemaTooNew` and
    is left exactly as it was; a file that is not a database, or another program's
    database, raises :class:`StorageError`.
    """
    _migrate(url, "head", upgrade=True)


def check_at_head(url: str) -> None:
    """Raise unless the database exists and is exactly at head (for readers)."""
    rev = current(url)
    if rev is not None and rev == HEAD:
        return
    top = head()
    if rev is None:
        path = _sqlite_file(url)
        if path is not None and not path.exists():
            raise NoDatabase(f"no database at {describe(url)}; start `chatroom serve` first")
        raise NoDatabase(
            f"{describe(url)} holds no chatroom schema yet; start `chatroom serve` "
            "or run `chatroom db upgrade`"
        )
    if rev == top:
        return
    if rev not in known_revisions():
        raise _too_new(url, rev, top)
    raise StorageError(
        f"database {describe(url)} is at revision {rev}, older than this chatroom "
        f"(head {top}); run `chatroom db upgrade`"
    )


# --------------------------------------------------------------------------- internals


def _too_new(url: str, rev: str, top: str) -> SchemaTooNew:
    return SchemaTooNew(
        f"database {describe(url)} is at revision {rev}, newer than this chatroom "
        f"(head {top}); upgrade chatroom"
    )


def _migrate(url: str, rev: str, *, upgrade: bool) -> None:
    known = known_revisions()
    top = head()
    have = _preflight(url, rev, upgrade=upgrade, known=known, top=top)
    path = _sqlite_file(url)
    if have == top and upgrade and rev == "head":
        return  # nothing to do: no write connection, no Alembic run (~0.15 s)
    if path is not None:
        make_parent(path)
    with _connect(url, read_only=False) as conn:
        if conn.dialect.name == "postgresql":
            # The nodes of a cluster may start together on a new database: one
            # migrates while the others wait, then find it done. (SQLite: the
            # BEGIN IMMEDIATE of this connection does the same.)
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        _check(conn, url, known, top)
        from alembic import command
        from alembic.util.exc import CommandError

        cfg = config()
        cfg.attributes["connection"] = conn
        try:
            if upgrade:
                command.upgrade(cfg, rev)
            else:
                command.downgrade(cfg, rev)
        except CommandError as exc:
            raise StorageError(f"migration failed on {describe(url)}: {exc}") from exc
        conn.commit()


def _sqlite_file(url: str) -> Path | None:
    path = sqlite_file(url)
    if path is not None and path.is_dir():
        raise StorageError(f"{path} is a directory; give --db a database file")
    return path


def _check(conn: Connection, url: str, known: set[str], top: str) -> str | None:
    """The database's revision, after refusing one that is too new or not ours."""
    have = _revision(conn, url)
    if have is not None and have not in known:
        raise _too_new(url, have, top)
    if have is None:
        _refuse_foreign(conn, url)
    return have


def _preflight(url: str, rev: str, *, upgrade: bool, known: set[str], top: str) -> str | None:
    """See :func:`check_target`."""
    if rev not in ("head", BASE) and rev not in known:
        raise StorageError(
            f"unknown revision {rev!r}; known: {', '.join(sorted(known))}, head, base"
        )
    path = _sqlite_file(url)
    if path is not None and not path.exists():
        if not upgrade:
            raise NoDatabase(f"no database at {describe(url)}")
        return None
    # A read-only connection: even switching on WAL mode would change a file this code
    # must refuse (too new, or not ours).
    with _connect(url, read_only=path is not None) as conn:
        return _check(conn, url, known, top)


def _refuse_foreign(conn: Connection, url: str) -> None:
    """Raise for a database without a chatroom revision that holds tables: another
    program's (or a hand-made one), which no chatroom command may use or change."""
    names = _foreign_tables(conn)
    if not names:
        return
    shown = ", ".join(sorted(names)[:5]) + (", ..." if len(names) > 5 else "")
    raise StorageError(
        f"{describe(url)} is not a chatroom database: it holds other tables ({shown}) "
        "and no chatroom schema revision; use another --db"
    )


def _revision(conn: Connection, url: str) -> str | None:
    """What alembic_version holds (read directly: no need to load Alembic for it)."""
    try:
        if not inspect(conn).has_table("alembic_version"):
            return None
        heads = list(
            conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()
        )
    except SQLAlchemyError as exc:
        raise _db_error(url, exc) from exc
    if len(heads) > 1:
        raise StorageError(f"database {describe(url)} has several revisions: {', '.join(heads)}")
    return heads[0] if heads else None


def _foreign_tables(conn: Connection) -> list[str]:
    names = inspect(conn).get_table_names()
    return [n for n in names if n != "alembic_version"]


@contextmanager
def _connect(url: str, *, read_only: bool) -> Iterator[Connection]:
    engine: Engine | None = None
    try:
        engine = make_engine(url, read_only=read_only)
        with engine.connect() as conn:
            yield conn.execution_options(**{BEGIN_IMMEDIATE: not read_only})
    except SQLAlchemyError as exc:
        raise _db_error(url, exc) from exc
    finally:
        if engine is not None:
            engine.dispose()


def _db_error(url: str, exc: SQLAlchemyError) -> StorageError:
    """A driver error as a message a person can act on."""
    detail = str(getattr(exc, "orig", None) or exc).strip()
    if "file is not a database" in detail or "file is encrypted" in detail:
        return StorageError(f"{describe(url)} is not a chatroom database (not an SQLite file)")
    if "unable to open database file" in detail:
        return StorageError(f"cannot open database {describe(url)}: unable to open the file")
    if "locked" in detail or "busy" in detail:
        return StorageError(f"database {describe(url)} is busy (locked by another process)")
    return StorageError(f"database {describe(url)}: {detail}")
