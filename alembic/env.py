"""Alembic environment bound to storage's metadata.

There is no alembic.ini: storage/migrations.py builds the Config in code and hands
this script an open connection (``config.attributes["connection"]``) inside a
transaction, so a whole upgrade is one transaction (SQLite has transactional DDL).
Used directly (``alembic -x url=sqlite:///path ...`` with a Config that points here),
it opens its own engine through storage.engine.make_engine.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from storage.engine import make_engine
from storage.fts import is_fts_object
from storage.models import Base

config = context.config
target_metadata = Base.metadata


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Leave the full-text indexes (SQLite's FTS5 tables, PostgreSQL's expression
    index) to the migrations' explicit SQL."""
    return not is_fts_object(name, type_)


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        include_name=include_name,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("no database URL: pass -x url=... or use `chatroom db`")
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) mode is not supported; use `chatroom db upgrade`")
run_migrations_online()
