"""Storage benchmarks (issue 3): the server's write path and the history queries.

``storage.write.<batch>``: store one batch of events in one transaction.

- ``raw sqlite3``: the baseline. ``executemany`` + ``commit`` of ready-made tuples on a
  plain sqlite3 connection with the same pragmas (WAL, synchronous=NORMAL), into the
  same table and b-tree indexes, without the FTS5 index.
- ``raw sqlite3 + FTS``: the same, plus the FTS work our writer does (marker row, one
  ``INSERT ... SELECT`` into the index): the price of search itself.
- ``EventStore.write_batch``: what the server calls, from ``Event`` values, with FTS.
  Target: at least 50% of the baseline's rate.
- ``SQLAlchemy Core insert``: Core ``insert()`` executemany into the baseline's table,
  for context (the path the writer does not take on SQLite).

``storage.query.<op>``: ``chatroom history`` queries on a database of 1,000,000 events
(2,000 with CHATROOM_BENCH_QUICK=1), generated once per session with raw sqlite3
after running the migrations. Target: each under 50 ms.

- ``last50``: ``-n 50``; ``user``: ``-u NAME -n 50``; ``search``: ``-q ... -n 50``
  (a common word, a rare word, two words, a phrase; and a LIKE scan for comparison);
- ``room``: ``--room '#room07' -n 50`` (the last 50 of one of 100 rooms); ``dm``:
  ``--dm NAME -n 50`` (the direct messages to or from one of 50 users, ~5% of all
  messages are direct); ``heads``: ``EventStore.room_heads()``, what the server reads
  at start-up (100 rooms and ~1,200 direct conversations);
- ``cli``: the whole ``chatroom history -n 50`` command in-process (open the database,
  check its revision, query, format), without interpreter start-up.

Every database is a real file under pytest's tmp dir.
"""

from __future__ import annotations

import itertools
import random
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import insert

from bench.conftest import QUICK
from chatroom.commands.history import build_history
from chatroom.events import Event, EventKind, dm_key
from storage.config import sqlite_url
from storage.engine import make_engine
from storage.migrations import upgrade
from storage.models import EVENT_COLUMNS, events
from storage.queries import HistoryQuery, query_events
from storage.store import EventStore, row_from_event

Benchmark = Any  # pytest-benchmark's fixture has no public type

QUERY_ROWS = 2_000 if QUICK else 1_000_000
PREFILL_ROWS = 500 if QUICK else 20_000
BATCHES = (10,) if QUICK else (10, 100, 1000)
WRITE_ROUNDS = 3 if QUICK else 200
QUERY_ROUNDS = 3 if QUICK else 100
USERS = 50
ROOMS = 100
DM_SHARE = 0.05  # of messages
T0 = 1_795_000_000.0
INSERT = (
    f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
)
PRAGMAS = ("PRAGMA journal_mode = WAL", "PRAGMA synchronous = NORMAL", "PRAGMA busy_timeout = 5000")
DROP_FTS = (
    "DROP TRIGGER events_fts_ai; DROP TRIGGER events_fts_ad; DROP TRIGGER events_fts_au;"
    "DROP TABLE events_fts; DROP TABLE events_fts_defer;"
)


# ------------------------------------------------------------------ realistic events

_rng = random.Random(20261127)
# A Zipf-ish vocabulary: a few very common words, a long tail of rare ones.
VOCAB = [f"w{i}" for i in range(5000)]
CUM_WEIGHTS = list(itertools.accumulate(1 / (i + 1) for i in range(len(VOCAB))))
COMMON = ["hello", "lunch", "deploy", "coffee", "meeting", "bug", "fix", "tomorrow"]


@dataclass(slots=True)
class Generator:
    """Deterministic chat traffic: ~50 users in 100 rooms, mostly v2 messages, some
    joins/quits, ~5% of the messages direct (between two of the users)."""

    next_id: int = 1
    rng: random.Random = _rng
    # Rooms and recipients come from their own stream, so that ``rng`` draws the same
    # users, kinds and texts as before rooms existed (comparable runs).
    where: random.Random = field(default_factory=lambda: random.Random(11))
    heads: dict[str, int] = field(default_factory=dict)

    def events(self, n: int) -> list[Event]:
        out: list[Event] = []
        rng, where = self.rng, self.where
        heads = self.heads
        for _ in range(n):
            i = self.next_id
            self.next_id += 1
            user = rng.randrange(USERS)
            name = f"user{user:02d}"
            r = rng.random()
            kind: EventKind = "message" if r < 0.9 else "join" if r < 0.95 else "quit"
            room, to = f"#room{where.randrange(ROOMS):02d}", None
            if kind == "message":
                words = rng.choices(VOCAB, cum_weights=CUM_WEIGHTS, k=rng.randrange(2, 15))
                if rng.random() < 0.3:
                    words.append(rng.choice(COMMON))
                text, session, seq = " ".join(words), f"{user:032x}", i
                if where.random() < DM_SHARE:
                    to = f"user{(user + where.randrange(1, USERS)) % USERS:02d}"
                    room = dm_key(name, to)
            else:
                text, session, seq = "", None, None
            heads[room] = position = heads.get(room, 0) + 1
            out.append(Event(i, kind, name, text, T0 + i * 0.01, session, seq, room, position, to))
        return out


def raw_connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in PRAGMAS:
        conn.execute(pragma)
    return conn


def bulk_load(path: Path, gen: Generator, n: int, *, chunk: int = 50_000) -> None:
    """Fill a migrated database fast: raw executemany with the FTS insert trigger held
    off by the writer's marker row, then one FTS 'rebuild' (if the index exists)."""
    conn = raw_connect(path)
    conn.execute("PRAGMA cache_size = -262144")  # 256 MiB: the indexes stay in memory
    has_fts = conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE name = 'events_fts_defer'"
    ).fetchone()[0]
    conn.execute("BEGIN")
    if has_fts:
        conn.execute("INSERT INTO events_fts_defer (writer) VALUES (1)")
    left = n
    while left > 0:
        k = min(chunk, left)
        conn.executemany(INSERT, [row_from_event(e) for e in gen.events(k)])
        left -= k
    if has_fts:
        conn.execute("INSERT INTO events_fts (events_fts) VALUES ('rebuild')")
        conn.execute("DELETE FROM events_fts_defer")
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def migrated(path: Path, *, fts: bool) -> Path:
    upgrade(sqlite_url(path))
    if not fts:
        conn = sqlite3.connect(path)
        conn.executescript(DROP_FTS)
        conn.close()
    return path


# ------------------------------------------------------------------ write path


@pytest.fixture(params=BATCHES, ids=lambda b: f"batch{b}")
def batch(request: pytest.FixtureRequest) -> int:
    return int(request.param)


def rounds_for(batch: int) -> int:
    return WRITE_ROUNDS if batch <= 100 else max(3, WRITE_ROUNDS // 4)


def _write_bench(
    benchmark: Benchmark, impl: str, batch: int, gen: Generator, target: Any, as_rows: bool
) -> None:
    benchmark.group = f"storage.write.{batch}"
    benchmark.extra_info.update(impl=impl, size=batch, per="batch")

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        evs = gen.events(batch)
        return ((([row_from_event(e) for e in evs]) if as_rows else evs),), {}

    benchmark.pedantic(target, setup=setup, rounds=rounds_for(batch), warmup_rounds=2)


def test_write_raw_sqlite3(benchmark: Benchmark, tmp_path: Path, batch: int) -> None:
    path = migrated(tmp_path / "raw.db", fts=False)
    gen = Generator(rng=random.Random(1))
    bulk_load(path, gen, PREFILL_ROWS)
    conn = raw_connect(path)

    def write(rows: list[tuple[Any, ...]]) -> None:
        conn.execute("BEGIN")
        conn.executemany(INSERT, rows)
        conn.execute("COMMIT")

    _write_bench(benchmark, "raw sqlite3", batch, gen, write, as_rows=True)
    conn.close()


def test_write_raw_sqlite3_fts(benchmark: Benchmark, tmp_path: Path, batch: int) -> None:
    path = migrated(tmp_path / "rawfts.db", fts=True)
    gen = Generator(rng=random.Random(1))
    bulk_load(path, gen, PREFILL_ROWS)
    conn = raw_connect(path)

    def write(rows: list[tuple[Any, ...]]) -> None:
        conn.execute("BEGIN")
        conn.execute("INSERT INTO events_fts_defer (writer) VALUES (1)")
        before = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
        conn.executemany(INSERT, rows)
        conn.execute(
            "INSERT INTO events_fts (rowid, text) SELECT id, text FROM events WHERE id > ?",
            (before,),
        )
        conn.execute("DELETE FROM events_fts_defer")
        conn.execute("COMMIT")

    _write_bench(benchmark, "raw sqlite3 + FTS", batch, gen, write, as_rows=True)
    conn.close()


def test_write_eventstore(benchmark: Benchmark, tmp_path: Path, batch: int) -> None:
    path = migrated(tmp_path / "store.db", fts=True)
    gen = Generator(rng=random.Random(1))
    bulk_load(path, gen, PREFILL_ROWS)
    with EventStore.open(sqlite_url(path)) as store:
        _write_bench(benchmark, "EventStore.write_batch", batch, gen, store.write_batch, False)
        assert store.last_id() == gen.next_id - 1
    with sqlite3.connect(path) as c:  # every stored row is in the index
        c.execute("INSERT INTO events_fts (events_fts, rank) VALUES ('integrity-check', 1)")


def test_write_sqlalchemy_core(benchmark: Benchmark, tmp_path: Path, batch: int) -> None:
    path = migrated(tmp_path / "core.db", fts=False)
    gen = Generator(rng=random.Random(1))
    bulk_load(path, gen, PREFILL_ROWS)
    engine = make_engine(sqlite_url(path))

    def write(evs: list[Event]) -> None:
        with engine.begin() as conn:
            conn.execute(
                insert(events),
                [dict(zip(EVENT_COLUMNS, row_from_event(e), strict=True)) for e in evs],
            )

    _write_bench(benchmark, "SQLAlchemy Core insert", batch, gen, write, as_rows=False)
    engine.dispose()


# ------------------------------------------------------------------ queries at 1M


GENERATED: dict[str, float] = {}


@pytest.fixture(scope="session")
def big_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = migrated(tmp_path_factory.mktemp("storage-bench") / "history.db", fts=True)
    start = time.perf_counter()
    bulk_load(path, Generator(rng=random.Random(7)), QUERY_ROWS)
    GENERATED["seconds"] = round(time.perf_counter() - start, 1)
    GENERATED["megabytes"] = round(path.stat().st_size / 1e6, 1)
    return path


@pytest.fixture(scope="session")
def big_store(big_db: Path) -> Iterator[EventStore]:
    with EventStore.open(sqlite_url(big_db), create=False) as store:
        yield store


def _query_bench(benchmark: Benchmark, op: str, impl: str, fn: Any) -> Any:
    benchmark.group = f"storage.query.{op}"
    benchmark.extra_info.update(
        impl=impl,
        size=QUERY_ROWS,
        db_generated_s=GENERATED.get("seconds"),
        db_mb=GENERATED.get("megabytes"),
    )
    return benchmark.pedantic(fn, rounds=QUERY_ROUNDS, warmup_rounds=2)


def test_query_last50(benchmark: Benchmark, big_store: EventStore) -> None:
    q = HistoryQuery(limit=50)
    got = _query_bench(benchmark, "last50", "-n 50", lambda: query_events(big_store, q))
    assert [e.id for e in got] == list(range(QUERY_ROWS - 49, QUERY_ROWS + 1))


def test_query_user(benchmark: Benchmark, big_store: EventStore) -> None:
    q = HistoryQuery(limit=50, users=("USER07",))
    got = _query_bench(benchmark, "user", "-u NAME -n 50", lambda: query_events(big_store, q))
    assert len(got) == 50 and {e.name for e in got} == {"user07"}


def test_query_room(benchmark: Benchmark, big_store: EventStore) -> None:
    q = HistoryQuery(limit=50, rooms=("#ROOM07",))
    got = _query_bench(
        benchmark, "room", "--room '#room07' -n 50", lambda: query_events(big_store, q)
    )
    assert (len(got) == 50 or QUICK) and {e.room for e in got} == {"#room07"}
    seqs = [e.room_seq for e in got]
    assert seqs == list(range(seqs[0], seqs[0] + len(got)))  # the room's contiguous last N


def test_query_dm(benchmark: Benchmark, big_store: EventStore) -> None:
    q = HistoryQuery(limit=50, dms=("USER07",))
    got = _query_bench(benchmark, "dm", "--dm NAME -n 50", lambda: query_events(big_store, q))
    assert got and all(e.direct and "user07" in (e.name, e.to) for e in got)
    assert len(got) == 50 or QUICK


def test_room_heads(benchmark: Benchmark, big_store: EventStore) -> None:
    # What the server reads at start-up to continue every room's sequence.
    got = _query_bench(benchmark, "heads", "EventStore.room_heads()", big_store.room_heads)
    assert sum(1 for room in got if room.startswith("#")) == ROOMS
    assert got["#room07"] == max(
        e.room_seq for e in query_events(big_store, HistoryQuery(limit=1, rooms=("#room07",)))
    )


SEARCHES = {
    "common word": "hello",  # in ~4% of messages
    "rare word": "w4321",
    "two words": "w1 w2",
    "phrase": '"w0 w1"',
}


@pytest.mark.parametrize("impl", list(SEARCHES))
def test_query_search(benchmark: Benchmark, big_store: EventStore, impl: str) -> None:
    q = HistoryQuery(limit=50, search=SEARCHES[impl])
    got = _query_bench(
        benchmark, "search", f"-q {SEARCHES[impl]!r} ({impl})", lambda: query_events(big_store, q)
    )
    assert got, impl
    words = SEARCHES[impl].strip('"').split()
    assert all(set(words) <= set(e.text.split()) for e in got)


def test_query_search_like_scan(benchmark: Benchmark, big_db: Path) -> None:
    # For comparison: what a search costs without the index.
    conn = sqlite3.connect(f"file:{big_db}?mode=ro", uri=True)
    sql = "SELECT id FROM events WHERE text LIKE ? ORDER BY id DESC LIMIT 50"
    benchmark.group = "storage.query.search"
    benchmark.extra_info.update(impl="LIKE '%w4321%' (no index)", size=QUERY_ROWS)
    rounds = 3 if QUICK else 10
    got = benchmark.pedantic(
        lambda: conn.execute(sql, ("%w4321%",)).fetchall(), rounds=rounds, warmup_rounds=1
    )
    assert got
    conn.close()


def test_query_cli(benchmark: Benchmark, big_db: Path, big_store: EventStore) -> None:
    command = build_history()
    runner = CliRunner()

    def run() -> str:
        result = runner.invoke(command, ["--db", str(big_db), "-n", "50"])
        assert result.exit_code == 0, result.output
        return result.output

    out = _query_bench(benchmark, "cli", "chatroom history -n 50 (in-process)", run)
    assert out.count("\n") == 50
