"""A sequence for event ids on PostgreSQL: several server nodes number events.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

A single node is its database's only writer and assigns ids itself. Several nodes
sharing one PostgreSQL database (``chatroom serve --cluster``) cannot: each
takes ids from this sequence inside the transaction that stores the events, so
an id is never used twice, whichever node dies or retries (storage/sequencer.py).
It starts after the highest stored id; a node also moves it past anything a
single node stored later (``setval`` on start). SQLite never runs a cluster:
nothing changes there.

Migrations are frozen history: literal names only.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE SEQUENCE events_id_seq AS bigint OWNED BY events.id")
    op.execute(
        "SELECT setval('events_id_seq', (SELECT coalesce(max(id), 0) + 1 FROM events), false)"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP SEQUENCE events_id_seq")
