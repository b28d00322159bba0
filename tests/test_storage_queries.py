"""History queries on real databases, SQLite and PostgreSQL (tests/pg.py): filters,
order, paging, full-text search (FTS5 on SQLite, a GIN index on PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatroom.events import Event, dm_key
from storage.fts import SearchPlan, Term, plan_search
from storage.queries import HistoryQuery, count_events, iter_events, query_events
from storage.store import EventStore
from tests.pg import BACKENDS, Database, provide
from tests.support.data import NOW, at, sample_history

pytestmark = pytest.mark.storage

EVENTS = sample_history(
    Event(
        4,
        "message",
        "bob",
        'lunch at noon? AND( "quoted" *star*',
        at(timedelta(days=2, minutes=-1)),
    ),
    Event(5, "message", "alice", "\x1b]0;pwned\x07 title \u202eevil", at(timedelta(days=1))),
    Event(9, "message", "alice", "Hello again, wörld", at(timedelta(minutes=10))),
)


@pytest.fixture(scope="module")
def store(module_database: Database) -> Iterator[EventStore]:
    with EventStore.open(module_database.url) as writer:
        writer.write_batch(EVENTS[:4])
        writer.write_batch(EVENTS[4:])
    with EventStore.open(module_database.url, create=False) as reader:
        yield reader


def ids(store: EventStore, **kw: object) -> list[int]:
    return [e.id for e in query_events(store, HistoryQuery(**kw))]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({}, list(range(1, 11))),
        ({"limit": 3}, [8, 9, 10]),
        ({"limit": 3, "reverse": True}, [10, 9, 8]),
        ({"limit": 0}, list(range(1, 11))),
        ({"limit": 0, "reverse": True}, list(range(10, 0, -1))),
        ({"users": ("BOB",)}, [3, 4, 8]),
        ({"users": ("Alice", "carol"), "limit": 2}, [9, 10]),
        ({"users": ("nobody",)}, []),
        ({"kinds": ("join", "quit")}, [1, 3, 10]),
        ({"kinds": ("announce",)}, [6]),
        ({"since": NOW - timedelta(days=1)}, [5, 6, 7, 8, 9, 10]),
        ({"until": NOW - timedelta(days=2)}, [1, 2, 3]),
        ({"since": NOW - timedelta(hours=3), "until": NOW - timedelta(hours=1)}, [6, 7, 8]),
        ({"since": (NOW - timedelta(hours=2)).replace(tzinfo=None)}, [7, 8, 9, 10]),
        ({"after_id": 3, "limit": 2}, [4, 5]),  # forward paging: the oldest N after
        ({"after_id": 3, "limit": 2, "reverse": True}, [5, 4]),
        ({"before_id": 4, "limit": 2}, [2, 3]),  # backward paging: the newest N before
        ({"after_id": 2, "before_id": 6}, [3, 4, 5]),
        ({"after_id": 2, "before_id": 6, "limit": 2}, [4, 5]),
        ({"users": ("alice",), "kinds": ("message",), "limit": 1}, [9]),
    ],
)
def test_filters_and_order(store: EventStore, kw: dict[str, object], expected: list[int]) -> None:
    assert ids(store, **kw) == expected
    assert count_events(store, HistoryQuery(**kw)) == len(  # type: ignore[arg-type]
        ids(store, **{**kw, "limit": 0})
    )


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("hello", [2, 9]),
        ("HELLO", [2, 9]),
        ("hello world", [2, 9]),  # every word, any order, accents ignored
        ("world hello", [2, 9]),
        ("wörld", [2, 9]),
        ("hello again", [9]),
        ("worl*", [2, 9]),  # prefix
        ('"hello world"', [2]),  # phrase
        ('"world hello"', []),
        ("at", [4, 6]),
        ("AND(", [4]),  # FTS5 syntax is just text
        ("NEAR(", []),
        ('"', [4]),
        ('""', []),  # two quotes side by side: nowhere
        ("\x00", list(range(1, 11))),  # nothing searchable
        ("*", [4]),
        ("***", list(range(1, 11))),  # a prefix of nothing: nothing searchable
        ("*star*", [4]),
        ("title:", [5]),
        ("-lunch", [4]),
        ("a OR b", []),
        ("午饭", [7]),  # inside an unspaced run: substring search
        ("   ", list(range(1, 11))),  # nothing to search for
        ("pwned", [5]),
    ],
)
def test_search(store: EventStore, search: str, expected: list[int]) -> None:
    assert ids(store, search=search, limit=0) == expected
    assert count_events(store, HistoryQuery(search=search)) == len(expected)


def test_search_combines_with_filters_and_limit(store: EventStore) -> None:
    assert ids(store, search="hello", users=("alice",), limit=1) == [9]
    assert ids(store, search="hello", reverse=True) == [9, 2]
    assert ids(store, search="hello", before_id=9) == [2]
    assert ids(store, search="hello", after_id=2) == [9]


def test_search_uses_the_full_text_index(store: EventStore) -> None:
    from sqlalchemy import func, select

    from storage.queries import _filtered

    with store.engine.connect() as conn:
        stmt, _, _ = _filtered(conn, HistoryQuery(search="hello wor*"), select(func.count()))
        sql = str(stmt.compile(conn, compile_kwargs={"literal_binds": True}))
        if conn.dialect.name == "postgresql":
            # Ten rows: a scan is cheaper, unless the planner may not scan.
            conn.exec_driver_sql("SET enable_seqscan = off")
            plan = str(conn.exec_driver_sql("EXPLAIN " + sql).all())
            assert "ix_events_fts" in plan, plan
        else:
            plan = str(conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql).all())
            assert "events_fts VIRTUAL TABLE INDEX" in plan, plan
    assert ids(store, search="hello wor*") == [2, 9]


def test_iter_streams_everything(store: EventStore) -> None:
    assert [e.id for e in iter_events(store, HistoryQuery(limit=0))] == list(range(1, 11))


def test_query_accepts_an_engine(store: EventStore) -> None:
    assert [e.id for e in query_events(store.engine, HistoryQuery(limit=2))] == [9, 10]


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=30))
def test_any_search_text_is_a_valid_query(store: EventStore, text: str) -> None:
    query_events(store, HistoryQuery(search=text, limit=5))


def words(*terms: str) -> tuple[Term, ...]:
    return tuple(Term(t.rstrip("*"), t.endswith("*")) for t in terms)


@pytest.mark.parametrize(
    ("text", "plan"),
    [
        (
            "hello world",
            SearchPlan('"hello" "world"', (), ("hello", "world"), words("hello", "world")),
        ),
        ('"hello world"', SearchPlan('"hello world"', (), ("hello world",), words("hello world"))),
        ("lun*", SearchPlan('"lun"*', (), ("lun",), words("lun*"))),
        ('a"b', SearchPlan('"a""b"', (), ('a"b',), words('a"b'))),
        ("AND(", SearchPlan('"AND("', (), ("AND(",), words("AND("))),
        ("*", SearchPlan(None, ("*",), ("*",))),
        ("午饭 lunch", SearchPlan('"lunch"', ("午饭",), ("午饭", "lunch"), words("lunch"))),
        (
            '"unclosed phrase',
            SearchPlan('"unclosed phrase"', (), ("unclosed phrase",), words("unclosed phrase")),
        ),
        ("", SearchPlan(None, (), ())),
        ("***", SearchPlan(None, (), ())),
        ("** lunch", SearchPlan('"lunch"', (), ("lunch",), words("lunch"))),
    ],
)
def test_plan_search(text: str, plan: SearchPlan) -> None:
    # ``terms`` are what FTS5's MATCH has, for PostgreSQL's index.
    assert plan_search(text) == plan


@pytest.mark.parametrize(
    ("term", "parts"),
    [
        (Term("hello"), ("hello", None)),
        (Term("hello world"), ("hello world", None)),
        (Term("lun", prefix=True), ("", "'lun':*")),
        # FTS5 reads "e-ma"* as the phrase "e ma*": a prefix on the last word only.
        (Term("e-ma", prefix=True), ("e", "'ma':*")),
        # No quote or backslash survives into the to_tsquery literal.
        (Term("it's\\x", prefix=True), ("it s", "'x':*")),
        (Term("alice@example.com"), ("alice example com", None)),
    ],
)
def test_terms_for_postgresql(term: Term, parts: tuple[str, str | None]) -> None:
    phrase, prefix = term.pg_parts()
    assert (" ".join(phrase.split()), prefix) == parts


@pytest.mark.parametrize(
    ("text", "searchable"),
    [
        *[("***", False), ("**", False), ("", False), ("  ", False), ("\x00", False)],
        *[("*", True), ('"', True), ("lunch", True), ("*** lunch", True), ("!!", True)],
    ],
)
def test_searchable_says_whether_a_search_narrows_anything(text: str, searchable: bool) -> None:
    assert plan_search(text).searchable is searchable


# ------------------------------------------------------------------ rooms and DMs


def dm(i: int, sender: str, to: str, text: str, room_seq: int) -> Event:
    return Event(
        i,
        "message",
        sender,
        text,
        at(timedelta(minutes=60 - i)),
        None,
        None,
        dm_key(sender.lower(), to.lower()),
        room_seq,
        to,
    )


ROOM_EVENTS = [
    Event(1, "message", "alice", "hello lobby", at(timedelta(minutes=59))),
    Event(2, "join", "alice", "", at(timedelta(minutes=58)), room="#dev", room_seq=1),
    Event(3, "message", "alice", "hello dev", at(timedelta(minutes=57)), room="#dev", room_seq=2),
    dm(4, "alice", "Bob", "hello bob, privately", 1),
    dm(5, "bob", "alice", "hi alice", 2),
    Event(6, "message", "carol", "ops talk", at(timedelta(minutes=54)), room="#ops", room_seq=1),
    dm(7, "carol", "alice", "lunch?", 1),
    Event(8, "message", "bob", "hello again", at(timedelta(minutes=52)), room_seq=2),
    dm(9, "dave", "carol", "not about alice", 1),
]


@pytest.fixture(scope="module", params=BACKENDS)
def rooms_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EventStore]:
    with provide(request, tmp_path_factory.mktemp("rooms"), migrated=True) as db:
        with EventStore.open(db.url) as writer:
            writer.write_batch(ROOM_EVENTS)
        with EventStore.open(db.url, create=False) as reader:
            yield reader


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({}, list(range(1, 10))),  # everywhere, direct messages included
        ({"rooms": ("#dev",)}, [2, 3]),
        ({"rooms": ("#DEV",)}, [2, 3]),
        ({"rooms": ("#dev", "#lobby")}, [1, 2, 3, 8]),
        ({"rooms": ("#nowhere",)}, []),
        ({"dms": ("alice",)}, [4, 5, 7]),  # to or from alice, in any conversation
        ({"dms": ("BOB",)}, [4, 5]),
        ({"dms": ("alice", "dave")}, [4, 5, 7, 9]),
        ({"dms": ("nobody",)}, []),
        ({"dms": ("alice",), "users": ("bob",)}, [5]),  # what bob wrote to alice
        ({"dms": ("alice",), "limit": 2}, [5, 7]),
        ({"dms": ("alice",), "limit": 2, "reverse": True}, [7, 5]),
        ({"dms": ("alice",), "after_id": 4, "limit": 1}, [5]),
        ({"dms": ("alice",), "search": "hello"}, [4]),
        ({"rooms": ("#dev",), "dms": ("carol",)}, [2, 3, 7, 9]),  # they add up
        ({"rooms": ("#dev", "#lobby"), "search": "hello"}, [1, 3, 8]),
        ({"rooms": ("#lobby",), "kinds": ("message",), "users": ("bob",)}, [8]),
        ({"rooms": ("#ops",), "since": NOW - timedelta(minutes=55)}, [6]),
        ({"rooms": ("#ops",), "until": NOW - timedelta(minutes=55)}, []),
    ],
)
def test_rooms_and_direct_messages(
    rooms_store: EventStore, kw: dict[str, object], expected: list[int]
) -> None:
    assert ids(rooms_store, **{"limit": 0, **kw}) == expected
    assert count_events(rooms_store, HistoryQuery(**kw)) == len(  # type: ignore[arg-type]
        ids(rooms_store, **{**kw, "limit": 0})
    )


# SQLite only: there, -u, --room and --dm compare through the columns' NOCASE
# collation and so through these indexes; PostgreSQL compares lower(...), which
# they do not hold (docs/storage.md, "PostgreSQL").
@pytest.mark.parametrize("rooms_store", ["sqlite"], indirect=True)
def test_direct_message_queries_use_the_direct_message_indexes(rooms_store: EventStore) -> None:
    from sqlalchemy import select

    from storage.models import event_columns
    from storage.queries import _filtered

    with rooms_store.engine.connect() as conn:
        stmt, _, _ = _filtered(conn, HistoryQuery(dms=("alice",)), select(*event_columns))
        sql = str(stmt.compile(conn, compile_kwargs={"literal_binds": True}))
        plan = str(conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql).all())
        stmt, _, _ = _filtered(conn, HistoryQuery(rooms=("#dev",)), select(*event_columns))
        sql = str(stmt.compile(conn, compile_kwargs={"literal_binds": True}))
        room_plan = str(
            # One room's last N: iter_events orders by its positions (migration 0003).
            conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql + " ORDER BY room_seq DESC").all()
        )
    assert "ix_events_dm_sender_id" in plan and "ix_events_recipient_id" in plan
    assert "INDEX" in room_plan and "TEMP B-TREE" not in room_plan, room_plan


# PostgreSQL only: there '#Dev' and '#dev' can be two stored rooms, each with its
# own positions (SQLite's NOCASE column makes them one room, one sequence).
@pytest.mark.parametrize("migrated_database", ["postgresql"], indirect=True)
def test_a_room_stored_in_two_spellings_reads_in_id_order(migrated_database: Database) -> None:
    def said(i: int, room: str, room_seq: int) -> Event:
        return Event(
            i, "message", "a", f"m{i}", at(timedelta(minutes=10 - i)), room=room, room_seq=room_seq
        )

    with EventStore.open(migrated_database.url) as store:
        store.write_batch(
            [said(1, "#Dev", 1), said(2, "#Dev", 2), said(3, "#dev", 1), said(4, "#Dev", 3)]
        )
        assert store.rooms("#") == ["#Dev", "#dev"]
        assert ids(store, rooms=("#DEV",), limit=0) == [1, 2, 3, 4]
        assert ids(store, rooms=("#dev",), limit=2) == [3, 4]  # the newest, not seq 3 and 2
        assert ids(store, rooms=("#Dev",), limit=2, reverse=True) == [4, 3]
        assert count_events(store, HistoryQuery(rooms=("#dev",))) == 4
