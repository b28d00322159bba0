"""Create the events table, its indexes and (SQLite) the FTS5 index of event text.

Revision ID: 0001
Revises:
Create Date: 2026-11-27

Migrations are frozen history: literal SQL and sqlalchemy types only, never storage's
live models or constants.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# FTS5 over events.text, external content (the text is stored once, in events).
# automerge=16: merge level-0 segments in groups of 16 instead of 4 (less rewriting
# per small batch commit; searches still touch few segments).
# events_fts_defer is an always-empty marker: the EventStore writer puts a row in it
# inside its own transaction to silence the per-row insert trigger and then indexes
# the batch with one INSERT ... SELECT (see storage/fts.py). Any other writer gets the
# trigger, so every row is always indexed.
SQLITE_FTS_UP = [
    """CREATE VIRTUAL TABLE events_fts USING fts5(
        text,
        content='events',
        content_rowid='id',
        tokenize='unicode61 remove_diacritics 2'
    )""",
    "INSERT INTO events_fts (events_fts, rank) VALUES ('automerge', 16)",
    "CREATE TABLE events_fts_defer (writer INTEGER NOT NULL)",
    """CREATE TRIGGER events_fts_ai AFTER INSERT ON events
    WHEN NOT EXISTS (SELECT 1 FROM events_fts_defer)
    BEGIN
        INSERT INTO events_fts (rowid, text) VALUES (new.id, new.text);
    END""",
    """CREATE TRIGGER events_fts_ad AFTER DELETE ON events
    BEGIN
        INSERT INTO events_fts (events_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END""",
    """CREATE TRIGGER events_fts_au AFTER UPDATE OF id, text ON events
    BEGIN
        INSERT INTO events_fts (events_fts, rowid, text) VALUES ('delete', old.id, old.text);
        INSERT INTO events_fts (rowid, text) VALUES (new.id, new.text);
    END""",
    # Index whatever the table already holds (nothing on a fresh database).
    "INSERT INTO events_fts (events_fts) VALUES ('rebuild')",
]

SQLITE_FTS_DOWN = [
    "DROP TRIGGER IF EXISTS events_fts_au",
    "DROP TRIGGER IF EXISTS events_fts_ad",
    "DROP TRIGGER IF EXISTS events_fts_ai",
    "DROP TABLE IF EXISTS events_fts_defer",
    "DROP TABLE IF EXISTS events_fts",
]


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column(
            "name",
            sa.String(length=64).with_variant(sa.String(length=64, collation="NOCASE"), "sqlite"),
            nullable=False,
        ),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("session", sa.String(length=64), nullable=True),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("session", "seq", name=op.f("uq_events_session_seq")),
    )
    op.create_index(op.f("ix_events_name_id"), "events", ["name", "id"], unique=False)
    op.create_index(op.f("ix_events_kind_id"), "events", ["kind", "id"], unique=False)
    op.create_index(op.f("ix_events_created_at"), "events", ["created_at"], unique=False)
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_FTS_UP:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_FTS_DOWN:
            op.execute(statement)
    op.drop_index(op.f("ix_events_created_at"), table_name="events")
    op.drop_index(op.f("ix_events_kind_id"), table_name="events")
    op.drop_index(op.f("ix_events_name_id"), table_name="events")
    op.drop_table("events")
