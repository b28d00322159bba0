"""Persistent event history: SQLAlchemy models, the SQLite engine, the batched writer,
history queries and the Alembic migration helpers. Knows nothing about sockets.

The public surface:

- :mod:`storage.config`: where the database lives (``default_db_path``, ``resolve_url``);
- :mod:`storage.engine`: ``make_engine`` (SQLite pragmas on every connection);
- :mod:`storage.migrations`: ``upgrade``, ``downgrade``, ``current``, ``head``,
  ``ensure_schema``;
- :mod:`storage.store`: ``EventStore`` (open, write_batch, recent, after, last_id,
  room_heads, rooms);
- :mod:`storage.queries`: ``HistoryQuery``, ``query_events``, ``count_events``.

See docs/storage.md for the schema and the durability guarantees.
"""

from storage.errors import SchemaTooNew, StorageError

__all__ = ["SchemaTooNew", "StorageError"]
