"""The schema, as SQLAlchemy 2 typed models. Alembic (alembic/versions/) owns the DDL;
a test checks that these models and the migrations agree.

One ``events`` table is the source of truth:

=========== ============================================================================
id          integer primary key, assigned by the writer (the room), ascending: the order
kind        ``join`` | ``message`` | ``quit`` | ``timeout`` | ``announce``
name        who (for ``announce``: the operator label the room gives); on SQLite the
            column collates NOCASE, so ``name = ?`` ignores ASCII case and can use the
            (name, id) index
text        the message or announcement text, exactly as received ('' for join/quit)
created_at  **integer microseconds since the Unix epoch, UTC**. An integer sorts and
            compares correctly on every database, needs no time-zone handling, costs
            nothing to convert on the write path and keeps microsecond precision
session     v2 session id of a client message (NULL otherwise)
seq         the client's sequence number for that message (NULL otherwise)
room        where it happened: a room (``#lobby``, ``#dev``) or, for a direct message,
            the conversation's key (``@alice bob``: ``chatroom.events.dm_key``); NOCASE
            on SQLite like ``name`` (revision 0002)
room_seq    the event's position in its room's own contiguous sequence (0002)
recipient   a direct message's recipient (display name, like ``name``); NULL for
            everything else (0002)
=========== ============================================================================

``UNIQUE (session, seq)`` makes a retried client message idempotent (NULLs never
conflict, so server-made events are unconstrained). ``UNIQUE (room, room_seq)``: one
event per position of a room. ``(room, id)`` serves "the last N of a room" and
``(recipient, id)`` "the direct messages to NAME" and ``ix_events_dm_sender_id``
``(name, id)`` "the direct messages from NAME", both partial: only rows with a
recipient (direct messages) are in them.

:data:`EVENT_COLUMNS` is the one list of the columns in the order every reader and
writer uses (``storage.store.row_from_event`` / ``event_from_row``, the inserts, the
selects of ``storage.queries``); it follows the field order of
``chatroom.events.Event`` (``recipient`` is ``Event.to``).

On SQLite the migrations also create ``events_fts`` (an FTS5 index of ``text``) and its
triggers; those are not models (see storage/fts.py).
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import (
    BigInteger,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

MAX_KIND = 16
MAX_NAME = 64  # the protocol allows 32 characters; room to grow without a migration
MAX_SESSION = 64
# A room is '#' and a name; a direct conversation '@' and two name keys and a space.
MAX_ROOM = 160

# SQLite only makes a column the rowid alias when its type is exactly INTEGER.
IdType = BigInteger().with_variant(Integer(), "sqlite")
NameType = String(MAX_NAME).with_variant(String(MAX_NAME, collation="NOCASE"), "sqlite")
RoomType = String(MAX_ROOM).with_variant(String(MAX_ROOM, collation="NOCASE"), "sqlite")


#: What the direct-message indexes hold (and a query must say to use them).
_DIRECT = text("recipient IS NOT NULL")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class EventRow(Base):
    """One stored event (see the module docstring for the columns)."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("session", "seq"),
        # A room's order, also "the last N of a room" (positions grow with ids
        # within a room; a second (room, id) index doubled the write cost: 0003).
        UniqueConstraint("room", "room_seq"),
        # "last N by name": WHERE name = ? ORDER BY id DESC LIMIT N walks this index.
        Index(None, "name", "id"),
        Index(None, "kind", "id"),
        Index(None, "created_at"),
        # Direct messages to NAME, and from NAME: partial indexes, holding the direct
        # messages only (the rows with a recipient), not a NULL for every other row.
        Index(None, "recipient", "id", sqlite_where=_DIRECT, postgresql_where=_DIRECT),
        Index(
            "ix_events_dm_sender_id",
            "name",
            "id",
            sqlite_where=_DIRECT,
            postgresql_where=_DIRECT,
        ),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(MAX_KIND))
    name: Mapped[str] = mapped_column(NameType)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)
    session: Mapped[str | None] = mapped_column(String(MAX_SESSION))
    seq: Mapped[int | None] = mapped_column(BigInteger)
    room: Mapped[str] = mapped_column(RoomType)
    room_seq: Mapped[int] = mapped_column(BigInteger)
    recipient: Mapped[str | None] = mapped_column(NameType)


events = cast(Table, EventRow.__table__)

#: Every column, in the order of ``chatroom.events.Event``'s fields: the one place
#: the column list is written (store.py's inserts and row mapping, queries.py's
#: selects and the benchmarks all take it from here).
EVENT_COLUMNS: tuple[str, ...] = (
    "id",
    "kind",
    "name",
    "text",
    "created_at",
    "session",
    "seq",
    "room",
    "room_seq",
    "recipient",
)
#: The same, as the table's columns (for ``select(*event_columns)``).
event_columns = tuple(events.c[name] for name in EVENT_COLUMNS)

US_PER_SECOND = 1_000_000


def to_us(epoch_seconds: float) -> int:
    """``Event.created_at`` (float seconds) -> the stored integer microseconds."""
    return round(epoch_seconds * US_PER_SECOND)


def from_us(us: int) -> float:
    """Stored integer microseconds -> ``Event.created_at`` (float seconds)."""
    return us / US_PER_SECOND
