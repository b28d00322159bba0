"""Numbering events in PostgreSQL, for several server nodes sharing one database.

A single node numbers its events itself (it is the database's only writer). In a
cluster (``chatroom serve --cluster``) every node writes, so the numbers are
given where the events are stored, in the one transaction that stores them:

- each room's next positions (``room_seq``) under a transaction-level advisory
  lock on that room, taken in a fixed order (no deadlock between two nodes that
  write the same rooms), so a room's positions are contiguous and committed in
  order: the next writer of the room waits for the commit, then reads the head;
- ids from the ``events_id_seq`` sequence (migration 0004), drawn after every
  lock is held, so within a room ids grow with positions too;
- a client message whose (session, seq) is already stored (a retry that reached
  another node after its first node committed it) is not stored again: the
  stored event is returned in its place, so the sender is acknowledged with the
  numbers it already has.

What is returned is committed; that is what a node may then show and publish.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Sequence

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from chatroom.events import Event
from storage.config import describe
from storage.errors import StorageError
from storage.models import EVENT_COLUMNS
from storage.store import detail, event_from_row, row_from_event

#: The advisory lock class of room locks (the two-int form: another key space
#: than the writer lock's single bigint).
ROOM_LOCK_CLASS = 0x6368  # "ch"

_COLUMNS = ", ".join(EVENT_COLUMNS)
_INSERT = text(
    f"INSERT INTO events ({_COLUMNS}) VALUES (" + ", ".join(f":{c}" for c in EVENT_COLUMNS) + ")"
)
# The rooms' locks in the order given (sorted by key: two nodes never wait for
# each other in opposite orders).
_LOCKS = text("SELECT pg_advisory_xact_lock(:cls, k) FROM unnest(CAST(:keys AS integer[])) AS t(k)")
# What numbering needs, in one round trip: each room's head, one id per draft,
# and the messages (session, seq) already stored, as stored rows.
_STATE = text(
    f"""
    SELECT
      (SELECT json_object_agg(room, head) FROM (
          SELECT room, max(room_seq) AS head FROM events
          WHERE room = ANY(:rooms) GROUP BY room) h),
      (SELECT array_agg(nextval('events_id_seq')) FROM generate_series(1, :n)),
      (SELECT json_agg(json_build_array({_COLUMNS})) FROM events
       WHERE (session, seq) IN (
          SELECT * FROM unnest(CAST(:sessions AS varchar[]), CAST(:seqs AS bigint[]))))
    """
)
_HEADS = text("SELECT room, max(room_seq) FROM events WHERE room = ANY(:rooms) GROUP BY room")
_SINCE = text(
    f"SELECT {_COLUMNS} FROM events WHERE room = :room AND room_seq > :after "
    "ORDER BY room_seq LIMIT :limit"
)
_CATCH_UP = text(
    "SELECT setval('events_id_seq', greatest("
    "(SELECT coalesce(max(id), 0) FROM events), "
    "(SELECT last_value FROM events_id_seq)))"
)


def room_lock_key(room: str) -> int:
    """A stable signed 32-bit key for ``room``'s advisory lock."""
    digest = hashlib.blake2b(room.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


class Sequencer:
    """Stores drafts (events with id 0) with the numbers PostgreSQL gives them.

    One writer connection, used by one thread at a time (the node's commit
    thread); reads (``since``, ``heads``) open their own pooled connections.
    """

    def __init__(self, engine: Engine, url: str) -> None:
        if engine.dialect.name != "postgresql":
            raise StorageError(
                f"a cluster needs PostgreSQL (--db postgresql+psycopg://...), not {describe(url)}"
            )
        self.engine = engine
        self.url = url
        self._writer: Connection | None = None

    def catch_up_ids(self) -> None:
        """Move the id sequence past ids a single node stored itself (it numbers
        without the sequence), so that no id is ever used twice."""
        with self.engine.begin() as conn:
            conn.execute(_CATCH_UP)

    def commit(self, drafts: Sequence[Event]) -> list[Event]:
        """Store ``drafts`` in one transaction; the stored events, in the drafts'
        order (a retried message: the event stored the first time)."""
        if not drafts:
            return []
        conn = self._connection()
        try:
            out = self._commit(conn, drafts)
            conn.commit()
        except SQLAlchemyError as exc:
            # A fresh connection next time: this one may be broken (a restarted
            # server), and a rollback on it can fail too.
            self._writer = None
            with contextlib.suppress(SQLAlchemyError):
                conn.close()
            raise StorageError(f"could not store {len(drafts)} events: {detail(exc)}") from exc
        return out

    def _commit(self, conn: Connection, drafts: Sequence[Event]) -> list[Event]:
        """Four round trips: the locks; the heads, the ids and the messages
        already stored, in one statement (after the locks: its snapshot must
        see the last commit of each room); the insert; the commit."""
        rooms = sorted({d.room for d in drafts}, key=room_lock_key)
        conn.execute(_LOCKS, {"cls": ROOM_LOCK_CLASS, "keys": [room_lock_key(r) for r in rooms]})
        keys = [(d.session, d.seq) for d in drafts if d.session is not None and d.seq is not None]
        found_heads, found_ids, found = conn.execute(
            _STATE,
            {
                "rooms": rooms,
                "n": len(drafts),
                "sessions": [k[0] for k in keys],
                "seqs": [k[1] for k in keys],
            },
        ).one()
        heads: dict[str, int] = {str(r): int(h) for r, h in (found_heads or {}).items()}
        stored = {(e.session, e.seq): e for e in map(event_from_row, found or [])}
        # One id per draft, in order (a retried message's goes unused: ids may
        # have gaps, never repeats).
        taken = iter(sorted(int(i) for i in found_ids))
        out: list[Event] = []
        rows: list[dict[str, object]] = []
        for d in drafts:
            event_id = next(taken)
            if (d.session, d.seq) in stored:
                out.append(stored[(d.session, d.seq)])
                continue
            pos = heads.get(d.room, 0) + 1
            heads[d.room] = pos
            event = Event(
                event_id, d.kind, d.name, d.text, d.created_at, d.session, d.seq,
                d.room, pos, d.to,
            )  # fmt: skip
            if d.session is not None and d.seq is not None:
                stored[(d.session, d.seq)] = event  # the same message twice in one batch
            out.append(event)
            rows.append(dict(zip(EVENT_COLUMNS, row_from_event(event), strict=True)))
        if rows:
            conn.execute(_INSERT, rows)
        return out

    def since(self, room: str, after: int, limit: int = 500) -> list[Event]:
        """``room``'s stored events after position ``after``, in order: how a
        node repairs what the broker did not bring it."""
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(_SINCE, {"room": room, "after": after, "limit": limit}).all()
        except SQLAlchemyError as exc:
            raise StorageError(f"reading {describe(self.url)}: {detail(exc)}") from exc
        return [event_from_row(r) for r in rows]

    def heads(self, rooms: Sequence[str]) -> dict[str, int]:
        """The newest stored position of each of ``rooms`` (absent: none)."""
        if not rooms:
            return {}
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(_HEADS, {"rooms": list(rooms)}).all()
        except SQLAlchemyError as exc:
            raise StorageError(f"reading {describe(self.url)}: {detail(exc)}") from exc
        return {str(r): int(h) for r, h in rows}

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _connection(self) -> Connection:
        if self._writer is None:
            try:
                self._writer = self.engine.connect()
            except SQLAlchemyError as exc:
                raise StorageError(f"cannot open {describe(self.url)}: {detail(exc)}") from exc
        return self._writer
