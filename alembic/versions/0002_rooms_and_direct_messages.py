"""Rooms and direct messages: events.room, events.room_seq, events.recipient.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

Existing events land in ``#lobby`` with ``room_seq = id`` (the single-room releases
numbered the lobby with the ids themselves, contiguously), and no recipient.

On SQLite, making ``room_seq`` NOT NULL and adding the unique constraint rebuilds the
``events`` table (batch mode: copy, drop, rename). The rebuild keeps every id, so the
FTS5 index (external content keyed by id) stays valid as it is, but dropping the old
table drops its triggers: they are created again here, word for word as 0001 made them.
The table is rebuilt from a written-out definition (``copy_from``), not from
reflection: SQLite reflection does not return ``COLLATE NOCASE``, and a rebuild from
it would silently make ``name`` case-sensitive.

Downgrading to 0001 drops the three columns. The single-room schema has nowhere to
keep a room or a direct message: turned into lobby rows they would be replayed to
everyone who logs in (a private message shown to the whole lobby), and deleting them
silently is no better. So the downgrade refuses while any event is outside
``#lobby``; the operator deletes those rows first, knowingly (docs/storage.md). Then
the lobby's ids have gaps where those rows were, which a single-room client reads as
lost events: the ids are renumbered to the lobby's positions (``id = room_seq``, same
order). A downgrade to ``base`` drops the whole table anyway and does not refuse.

Migrations are frozen history: literal SQL and sqlalchemy types only, never storage's
live models or constants.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op
from alembic.util import CommandError

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LOBBY = "#lobby"


def _room_type() -> sa.types.TypeEngine[str]:
    return sa.String(length=160).with_variant(sa.String(length=160, collation="NOCASE"), "sqlite")


def _name_type() -> sa.types.TypeEngine[str]:
    return sa.String(length=64).with_variant(sa.String(length=64, collation="NOCASE"), "sqlite")


# The 0001 triggers, as 0001 created them: a table rebuild drops a table's triggers.
SQLITE_FTS_TRIGGERS = [
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
]
SQLITE_DROP_FTS_TRIGGERS = [
    "DROP TRIGGER IF EXISTS events_fts_au",
    "DROP TRIGGER IF EXISTS events_fts_ad",
    "DROP TRIGGER IF EXISTS events_fts_ai",
]


def _events(*, rooms: bool) -> sa.Table:
    """``events`` as 0001 left it (``rooms=False``), or after this revision's ADD
    COLUMNs (``rooms=True``, before the constraints): what a batch rebuild copies."""
    columns: list[sa.Column[object]] = [
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", _name_type(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("session", sa.String(length=64), nullable=True),
        sa.Column("seq", sa.BigInteger(), nullable=True),
    ]
    if rooms:
        columns += [
            sa.Column("room", _room_type(), nullable=False),
            sa.Column("room_seq", sa.BigInteger(), nullable=True),
            sa.Column("recipient", _name_type(), nullable=True),
        ]
    table = sa.Table(
        "events",
        sa.MetaData(),
        *columns,
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.UniqueConstraint("session", "seq", name="uq_events_session_seq"),
    )
    sa.Index("ix_events_name_id", table.c.name, table.c.id)
    sa.Index("ix_events_kind_id", table.c.kind, table.c.id)
    sa.Index("ix_events_created_at", table.c.created_at)
    return table


def _sqlite_with_fts() -> bool:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return False
    found = bind.exec_driver_sql(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'events_fts'"
    ).scalar_one()
    return bool(found)


def _recreate_fts_triggers(fts: bool) -> None:
    if not fts:
        return
    for statement in (*SQLITE_DROP_FTS_TRIGGERS, *SQLITE_FTS_TRIGGERS):
        op.execute(statement)


def upgrade() -> None:
    fts = _sqlite_with_fts()
    # Plain ADD COLUMNs first (SQLite: no rebuild). The default fills the existing
    # rows' room; room_seq is filled from id before it becomes NOT NULL.
    with op.batch_alter_table("events") as batch:
        batch.add_column(
            sa.Column("room", _room_type(), nullable=False, server_default=sa.text(f"'{LOBBY}'"))
        )
        batch.add_column(sa.Column("room_seq", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("recipient", _name_type(), nullable=True))
    op.execute("UPDATE events SET room_seq = id")
    # Then the constraints (SQLite: one rebuild of the table; others: ALTERs).
    with op.batch_alter_table("events", copy_from=_events(rooms=True)) as batch:
        batch.alter_column("room", existing_type=_room_type(), server_default=None)
        batch.alter_column("room_seq", existing_type=sa.BigInteger(), nullable=False)
        batch.create_unique_constraint(op.f("uq_events_room_room_seq"), ["room", "room_seq"])
        batch.create_index(op.f("ix_events_room_id"), ["room", "id"], unique=False)
        # Partial: only direct messages (the rows with a recipient) are in these two.
        for name, columns in (
            ("ix_events_recipient_id", ["recipient", "id"]),
            ("ix_events_dm_sender_id", ["name", "id"]),
        ):
            batch.create_index(
                op.f(name),
                columns,
                unique=False,
                sqlite_where=sa.text("recipient IS NOT NULL"),
                postgresql_where=sa.text("recipient IS NOT NULL"),
            )
    _recreate_fts_triggers(fts)


def downgrade() -> None:
    bind = op.get_bind()
    fts = _sqlite_with_fts()
    if context.get_revision_argument() is not None:
        # Not to base (which drops the table next): the rows stay, in one room.
        outside = bind.execute(
            sa.text("SELECT count(*) FROM events WHERE room <> :lobby"), {"lobby": LOBBY}
        ).scalar_one()
        if outside:
            raise CommandError(
                f"cannot downgrade to 0001: {outside} stored event(s) are in other rooms "
                f"or direct conversations, and the single-room schema would show them to "
                f"everyone in {LOBBY}. If they may go, delete them first "
                f"(DELETE FROM events WHERE room <> '{LOBBY}') and downgrade again"
            )
        # The single-room schema numbers the lobby by id, and its clients take a gap
        # in the ids for a lost event: where other rooms' events were deleted, the ids
        # become the lobby's own positions again (the order is unchanged).
        moved = bind.execute(sa.text("SELECT count(*) FROM events WHERE id <> room_seq"))
        if moved.scalar_one():
            if fts:  # reindex once at the end, not twice per row through the trigger
                for statement in SQLITE_DROP_FTS_TRIGGERS:
                    op.execute(statement)
            op.execute("UPDATE events SET id = -id")
            op.execute("UPDATE events SET id = room_seq")
            if fts:
                op.execute("INSERT INTO events_fts (events_fts) VALUES ('rebuild')")
    table = _events(rooms=True)
    table.c.room_seq.nullable = False
    sa.UniqueConstraint(table.c.room, table.c.room_seq, name="uq_events_room_room_seq")
    sa.Index("ix_events_room_id", table.c.room, table.c.id)
    direct = sa.text("recipient IS NOT NULL")
    sa.Index("ix_events_recipient_id", table.c.recipient, table.c.id, sqlite_where=direct)
    sa.Index("ix_events_dm_sender_id", table.c.name, table.c.id, sqlite_where=direct)
    with op.batch_alter_table("events", copy_from=table) as batch:
        batch.drop_index(op.f("ix_events_dm_sender_id"))
        batch.drop_index(op.f("ix_events_recipient_id"))
        batch.drop_index(op.f("ix_events_room_id"))
        batch.drop_constraint(op.f("uq_events_room_room_seq"), type_="unique")
        batch.drop_column("recipient")
        batch.drop_column("room_seq")
        batch.drop_column("room")
    _recreate_fts_triggers(fts)
