"""History queries (``chatroom history``): filters, full-text search, paging, counting.

Full-text search uses SQLite's FTS5 index or PostgreSQL's GIN index (migration
0005; see storage/fts.py); other databases test every word as a substring.

Results are oldest first (newest last) unless ``reverse``; ``limit`` keeps the newest
N matching events (0 = all). With ``after_id`` and no ``before_id`` the query pages
forward instead: the oldest N events after that id, which is what "next page" and
``--follow`` need.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Integer,
    Select,
    and_,
    bindparam,
    cast,
    column,
    func,
    or_,
    select,
    table,
    text,
    true,
    union_all,
)
from sqlalchemy.dialects.postgresql import TSQUERY
from sqlalchemy.exc import SQLAlchemyError

from chatroom.events import DM_PREFIX, Event, EventKind
from storage import fts
from storage.config import describe
from storage.errors import StorageError
from storage.models import event_columns, events, to_us
from storage.store import EventStore, detail, event_from_row, has_fts, rooms_ignoring_case

S = TypeVar("S", bound=Select[Any])

_CHUNK = 1000

_fts_table = table(fts.FTS_TABLE, column("rowid", Integer))


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """What ``chatroom history`` asks for. Datetimes are UTC (naive ones are taken as UTC).

    ``users`` match ignoring case (ASCII letters on SQLite); ``search`` is words,
    ``"phrases"`` and ``prefix*`` terms, all required (see storage.fts.plan_search).

    ``rooms`` and ``dms`` say where: the events of these rooms (as stored, matched
    ignoring case like names), plus the direct messages sent or received by these
    names. Both empty: everywhere, direct messages included. The other filters
    narrow that down (``dms=("alice",), users=("bob",)``: what bob wrote to alice).
    """

    limit: int = 20
    reverse: bool = False
    users: tuple[str, ...] = ()
    rooms: tuple[str, ...] = ()
    dms: tuple[str, ...] = ()
    kinds: tuple[EventKind, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    search: str | None = None
    after_id: int | None = None
    before_id: int | None = None

    @property
    def forward(self) -> bool:
        """Paging forward from ``after_id``: the limit keeps the oldest N."""
        return self.after_id is not None and self.before_id is None


def query_events(source: Engine | EventStore, q: HistoryQuery) -> list[Event]:
    """The events matching ``q``, oldest first (newest first with ``q.reverse``)."""
    return list(iter_events(source, q))


def iter_events(source: Engine | EventStore, q: HistoryQuery) -> Iterator[Event]:
    """Like :func:`query_events`, but streams: ``limit=0`` over a million rows never
    holds them all in memory."""
    engine, url = _engine(source)
    descending = not q.forward if q.limit > 0 else q.reverse
    try:
        with engine.connect() as conn:
            stmt, fts_joined, one_room = _filtered(conn, q, select(*event_columns))
            order_col = _fts_table.c.rowid if fts_joined else events.c.id
            if descending and not fts_joined and one_room:
                # The same order, through the (room, room_seq) index (migration 0003).
                order_col = events.c.room_seq
            stmt = stmt.order_by(order_col.desc() if descending else order_col.asc())
            if q.limit > 0:
                stmt = stmt.limit(q.limit)
                rows: Iterable[Sequence[Any]] = conn.execute(stmt).all()
                if descending != q.reverse:
                    rows = reversed(list(rows))
            else:
                rows = conn.execution_options(yield_per=_CHUNK).execute(stmt)
            for row in rows:
                yield event_from_row(row)
    except SQLAlchemyError as exc:
        raise StorageError(f"querying {describe(url)}: {detail(exc)}") from exc


def count_events(source: Engine | EventStore, q: HistoryQuery) -> int:
    """How many events match ``q``'s filters (``limit`` and order are ignored)."""
    engine, url = _engine(source)
    try:
        with engine.connect() as conn:
            stmt, _, _ = _filtered(conn, q, select(func.count()))
            return int(conn.execute(stmt).scalar_one())
    except SQLAlchemyError as exc:
        raise StorageError(f"querying {describe(url)}: {detail(exc)}") from exc


def follow_events(
    store: EventStore, q: HistoryQuery, sleep: Callable[[float], object], poll_seconds: float
) -> Iterator[Iterator[Event]]:
    """``chatroom history -f``: the newest matches up to now, then every
    ``poll_seconds`` the matches stored since, one batch per poll that found new
    events. It never ends by itself (Ctrl-C ends it, through ``sleep``)."""
    top = store.last_id()
    yield iter_events(store, replace(q, before_id=_below(q.before_id, top + 1)))
    cursor = top
    while True:
        sleep(poll_seconds)
        newest = store.last_id()
        if newest <= cursor:
            continue
        yield iter_events(
            store,
            replace(
                q,
                limit=0,
                reverse=False,
                after_id=max(cursor, q.after_id or 0),
                before_id=_below(q.before_id, newest + 1),
            ),
        )
        cursor = newest


def _below(limit: int | None, bound: int) -> int:
    return bound if limit is None else min(limit, bound)


def _one_room(q: HistoryQuery) -> bool:
    """Whether ``q`` reads one room only (its spellings are one room: the column
    compares ignoring case), where positions order the events as ids do."""
    return len({r.casefold() for r in q.rooms}) == 1 and not q.dms


def _engine(source: Engine | EventStore) -> tuple[Engine, str]:
    if isinstance(source, EventStore):
        return source.engine, source.url
    return source, source.url.render_as_string(hide_password=True)


def _filtered(conn: Connection, q: HistoryQuery, stmt: S) -> tuple[S, bool, bool]:
    """``stmt`` with ``q``'s filters; whether it joined SQLite's FTS5 table (whose
    rowid then orders), and whether it reads one stored room only (whose positions
    then order, through the ``(room, room_seq)`` index)."""
    sqlite = conn.dialect.name == "sqlite"
    where: list[ColumnElement[bool]] = []
    if q.users:
        where.append(_among(sqlite, events.c.name, q.users))
    scope, one_room = _scope(conn, q, sqlite)
    if scope:
        where.append(or_(*scope))
    if q.kinds:
        where.append(events.c.kind.in_(q.kinds))
    if q.since is not None:
        where.append(events.c.created_at >= _us(q.since))
    if q.until is not None:
        where.append(events.c.created_at <= _us(q.until))
    if q.after_id is not None:
        where.append(events.c.id > q.after_id)
    if q.before_id is not None:
        where.append(events.c.id < q.before_id)
    joined = False
    if q.search is not None and q.search.strip():
        stmt, joined = _searched(conn, q.search, stmt, where)
    if not joined:
        stmt = stmt.select_from(events)
    return stmt.where(and_(true(), *where)), joined, one_room


def _among(sqlite: bool, col: ColumnElement[str], values: tuple[str, ...]) -> ColumnElement[bool]:
    """``col`` is one of ``values``, ignoring case."""
    if sqlite:  # the column collates NOCASE: IN uses it, and the (col, id) index
        return col.in_(values)
    return func.lower(col).in_([v.lower() for v in values])


def _scope(
    conn: Connection, q: HistoryQuery, sqlite: bool
) -> tuple[list[ColumnElement[bool]], bool]:
    """Where the events may be (any of them: the rooms asked for, the direct
    messages of the names asked for), and whether that is one stored room."""
    one_room = _one_room(q)
    scope: list[ColumnElement[bool]] = []
    if q.rooms and sqlite:
        scope.append(events.c.room.in_(q.rooms))
    elif q.rooms:
        # Not lower(room) IN (...), which reads every event: the stored spellings,
        # each then found through the index. On PostgreSQL '#Dev' and '#dev' are
        # two rooms with a sequence each: positions order only one.
        stored = rooms_ignoring_case(conn, q.rooms)
        scope.append(events.c.room.in_(stored))
        one_room = len(stored) == 1 and not q.dms
    if q.dms:
        # A direct message has a recipient. The two partial indexes of direct messages
        # find the ids sent by and to the names; the ids' order then gives "the last
        # N" without sorting every message these names ever wrote (docs/storage.md).
        direct = events.c.recipient.is_not(None)
        sent = select(events.c.id).where(direct, _among(sqlite, events.c.name, q.dms))
        received = select(events.c.id).where(_among(sqlite, events.c.recipient, q.dms))
        scope.append(
            and_(
                events.c.room.startswith(DM_PREFIX, autoescape=True),
                events.c.id.in_(union_all(sent, received)),
            )
        )
    return scope, one_room


def _searched(
    conn: Connection, search: str, stmt: S, where: list[ColumnElement[bool]]
) -> tuple[S, bool]:
    """The full-text search: through SQLite's FTS5 table (joined to ``stmt``) or
    PostgreSQL's index where there is one, each term the index cannot answer as a
    substring test (added to ``where``). Returns the statement and whether it
    joined the FTS5 table."""
    plan = fts.plan_search(search)
    likes = plan.words
    joined = False
    if plan.match is not None and conn.dialect.name == "sqlite" and has_fts(conn):
        stmt = stmt.select_from(events.join(_fts_table, _fts_table.c.rowid == events.c.id)).where(
            text(f"{fts.FTS_TABLE} MATCH :fts_query").bindparams(fts_query=plan.match)
        )
        joined = True
        likes = plan.likes
    elif plan.terms and conn.dialect.name == "postgresql" and _pg_has_fts(conn):
        tsquery, unindexed = _pg_tsquery(conn, plan.terms)
        if tsquery is not None:
            document = getattr(func, fts.PG_DOCUMENT)(events.c.text)
            where.append(document.bool_op("@@")(cast(bindparam("fts_query", tsquery), TSQUERY)))
        likes = plan.likes + unindexed
    for term in likes:
        where.append(events.c.text.icontains(term, autoescape=True))
    return stmt, joined


def _pg_has_fts(conn: Connection) -> bool:
    """Whether this PostgreSQL database has the full-text index (migration 0005):
    ``chatroom history`` reads only a database at head, but a query may be given
    any engine."""
    found = conn.execute(
        text("SELECT to_regprocedure(:fn) IS NOT NULL"), {"fn": f"{fts.PG_DOCUMENT}(text)"}
    ).scalar_one()
    return bool(found)


def _pg_tsquery(conn: Connection, terms: Sequence[fts.Term]) -> tuple[str | None, tuple[str, ...]]:
    """The terms as one tsquery (its text, all terms required), and the terms that
    the configuration finds no word in, to be tested as substrings instead.

    PostgreSQL parses each term with the index's own configuration (one round trip
    for all of them), so a term is split, folded and unaccented exactly as the texts
    were. A term with no word in it for PostgreSQL (``²``: FTS5 indexes it, the
    parser does not) would make the whole query match nothing; as a substring test
    it matches what SQLite finds.
    """
    config = f"'{fts.PG_CONFIG}'::regconfig"
    columns: list[str] = []
    params: dict[str, str] = {}
    for i, term in enumerate(terms):
        phrase, prefix = term.pg_parts()
        parts: list[str] = []
        if phrase.strip():
            params[f"p{i}"] = phrase
            parts.append(f"phraseto_tsquery({config}, :p{i})")
        if prefix is not None:
            params[f"w{i}"] = prefix
            parts.append(f"to_tsquery({config}, :w{i})")
        if not parts:  # only punctuation (plan_search makes those substring tests)
            columns.append("NULL")
            continue
        # A phrase, a prefix, or a phrase followed by a prefix (tsquery_phrase: <->).
        query = parts[0] if len(parts) == 1 else f"tsquery_phrase({parts[0]}, {parts[1]})"
        columns.append(
            f"(SELECT CAST(q AS text) FROM (SELECT {query} AS q) t WHERE numnode(q) > 0)"
        )
    found = conn.execute(text("SELECT " + ", ".join(columns)), params).one()
    indexed = [f"({tsquery})" for tsquery in found if tsquery is not None]
    unindexed = tuple(t.text for t, tsquery in zip(terms, found, strict=True) if tsquery is None)
    return (" & ".join(indexed) if indexed else None), unindexed


def _us(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return to_us(moment.timestamp())
