"""Drop the (room, id) index: a room's order is its positions, (room, room_seq).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

0002 indexed (room, id) for "the last N of a room". The unique (room, room_seq)
index already orders a room the same way (positions grow with ids within a room),
and the second index cost the write path dearly: the server's store of one event
went from ~12 to ~30 us (median, 200-event batches; 15 us without it), which made
a small room's messages 45% slower end to end (docs/benchmarks.md). History
queries of one room order by room_seq instead (storage/queries.py).

Migrations are frozen history: literal names only.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_events_room_id", table_name="events")


def downgrade() -> None:
    op.create_index("ix_events_room_id", "events", ["room", "id"], unique=False)
