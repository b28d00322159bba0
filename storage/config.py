"""Where the database lives: the XDG default path and ``--db`` / ``CHATROOM_DB`` values.

``serve``, ``history`` and ``db`` all resolve their ``--db`` option through
:func:`resolve_url`, so they agree on the default.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from storage.errors import StorageError

APP_NAME = "chatroom"
DB_FILENAME = "chatroom.db"


def default_db_path() -> Path:
    """``$XDG_DATA_HOME/chatroom/chatroom.db``; ``~/.local/share/chatroom/chatroom.db`` unset.

    Follows the XDG base-directory spec on every platform (a relative or empty
    ``XDG_DATA_HOME`` is ignored, as the spec requires), so the path is the same one
    a user reads in the docs.
    """
    xdg = os.environ.get("XDG_DATA_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".local" / "share"
    return base / APP_NAME / DB_FILENAME


def resolve_url(db: str | None) -> str:
    """Turn a ``--db`` value into an SQLAlchemy URL.

    ``None`` (or empty) means the default path; anything containing ``://`` is taken as
    an SQLAlchemy URL as given; anything else is a file path (``~`` expanded, made
    absolute) for SQLite. Nothing is created here: the parent directory is created
    when the database is opened for writing (``EventStore.open(create=True)``).
    """
    if not db:
        return sqlite_url(default_db_path())
    if "://" in db:
        return db
    problem = db_value_problem(db)
    if problem is not None:
        raise StorageError(f"cannot read {db!r} as a database: {problem}")
    return sqlite_url(Path(db).expanduser())


#: ``sqlite:``, ``postgresql+psycopg:``...: what a URL starts with.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


def db_value_problem(db: str) -> str | None:
    """Why a ``--db`` value is neither a path nor a URL, or None. A URL missing
    its ``//`` (``sqlite:/tmp/chat.db``) would otherwise be taken as a relative
    path, and a server would start on a new, empty database in a folder named
    ``sqlite:``."""
    if "://" not in db and _SCHEME.match(db):
        return (
            "a URL needs '://' (sqlite:////abs/chat.db, postgresql+psycopg://user@host/chat); "
            f"a file of that name is ./{db}"
        )
    return None


def sqlite_url(path: Path) -> str:
    """``sqlite:///<absolute path>`` for a file path."""
    return f"sqlite:///{path.absolute()}"


def parse_url(url: str) -> URL:
    """``url`` parsed; a malformed one is a StorageError that says so."""
    try:
        return make_url(url)
    except ArgumentError:
        raise StorageError(
            f"cannot read {url!r} as a database: give a file path or an SQLAlchemy URL "
            "such as sqlite:///path/chat.db or postgresql+psycopg://user@host/chat"
        ) from None


def make_parent(path: Path) -> None:
    """Create the directory ``path`` goes in (a database file or its lock);
    StorageError saying which directory could not be made."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create {path.parent}: {exc.strerror}") from exc


def sqlite_file(url: str) -> Path | None:
    """The database file of an SQLite URL, or None (another database, ``:memory:``,
    or a ``file:`` URI the caller manages itself)."""
    u = parse_url(url)
    if u.get_backend_name() != "sqlite":
        return None
    database = u.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def describe(url: str) -> str:
    """How to name a database in a message: its file path, or the URL without password."""
    path = sqlite_file(url)
    if path is not None:
        return str(path)
    u = parse_url(url)
    return url if u.password is None else u.render_as_string(hide_password=True)
