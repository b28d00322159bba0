"""PostgreSQL numbers a cluster's events (storage/sequencer.py): several writers
at once still give each room contiguous positions in commit order, ids are
never used twice, and a retried message is answered with what was stored."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from chatroom.events import Event
from storage.engine import make_engine
from storage.errors import StorageError
from storage.sequencer import Sequencer
from storage.store import EventStore
from tests.pg import PostgresServer

pytestmark = pytest.mark.storage


@pytest.fixture
def pg_url(postgres: PostgresServer) -> Iterator[str]:
    url = postgres.create(migrated=True)
    yield url
    postgres.drop(url)


def draft(room: str, text: str, session: str | None = None, seq: int | None = None) -> Event:
    return Event(0, "message", "alice", text, 1.5, session, seq, room, 0)


def test_positions_are_contiguous_per_room_with_writers_racing(pg_url: str) -> None:
    engine = make_engine(pg_url)
    writers = [Sequencer(engine, pg_url) for _ in range(4)]
    stored: list[Event] = []
    lock = threading.Lock()

    def write(seq: Sequencer, n: int) -> None:
        for i in range(25):
            batch = [draft("#a", f"{n}-{i}"), draft("#b", f"{n}-{i}"), draft("#a", f"{n}-{i}b")]
            out = seq.commit(batch)
            with lock:
                stored.extend(out)

    threads = [threading.Thread(target=write, args=(w, n)) for n, w in enumerate(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for room, count in (("#a", 200), ("#b", 100)):
        events = sorted((e for e in stored if e.room == room), key=lambda e: e.room_seq)
        assert [e.room_seq for e in events] == list(range(1, count + 1))
        # Within a room, ids grow with positions: the room's order is one order.
        assert [e.id for e in events] == sorted(e.id for e in events)
    assert len({e.id for e in stored}) == len(stored) == 300
    with EventStore.open(pg_url, create=False) as store:
        assert store.room_heads() == {"#a": 200, "#b": 100}
    for w in writers:
        w.close()
    engine.dispose()


def test_a_retried_message_gets_the_stored_event(pg_url: str) -> None:
    engine = make_engine(pg_url)
    seq = Sequencer(engine, pg_url)
    first = seq.commit([draft("#a", "hi", "s1", 1)])[0]
    again = seq.commit([draft("#a", "other", "s2", 1), draft("#a", "hi", "s1", 1)])
    assert again[1] == first  # the same numbers: the sender is acknowledged alike
    assert again[0].room_seq == first.room_seq + 1
    twice = seq.commit([draft("#a", "x", "s3", 7), draft("#a", "x", "s3", 7)])
    assert twice[0] == twice[1]
    assert seq.heads(["#a", "#zzz"]) == {"#a": 3}
    assert [e.text for e in seq.since("#a", 1)] == ["other", "x"]
    seq.close()
    engine.dispose()


def test_ids_continue_after_what_a_single_node_stored(pg_url: str) -> None:
    with EventStore.open(pg_url) as store:  # a single node numbers itself
        store.write_batch([Event(41, "join", "bob", "", 1.0, None, None, "#lobby", 1)])
    engine = make_engine(pg_url)
    seq = Sequencer(engine, pg_url)
    seq.catch_up_ids()
    out = seq.commit([draft("#lobby", "after")])
    assert out[0].id == 42 and out[0].room_seq == 2
    seq.close()
    engine.dispose()


def test_a_cluster_needs_postgresql(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/x.db"
    with pytest.raises(StorageError, match="needs PostgreSQL"):
        Sequencer(make_engine(url), url)
