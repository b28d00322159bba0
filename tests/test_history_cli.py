"""`chatroom history` and `chatroom db` through click's CliRunner, with a fixed clock
and time zone, on real databases: SQLite files and PostgreSQL (tests/pg.py). What
only a file can be (missing, a directory, not a database) is tested on SQLite."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from chatroom.cli import cli
from chatroom.commands.history import build_history
from chatroom.events import Event, dm_key
from storage.config import describe
from storage.store import EventStore
from tests.pg import BACKENDS, Database, provide
from tests.support.data import NOW, at, sample_history

pytestmark = pytest.mark.storage

EVENTS = sample_history(
    Event(4, "message", "bob", 'lunch at noon? AND( "quoted" *star*', at(timedelta(days=2))),
    Event(
        5,
        "message",
        "alice",
        "\x1b]0;pwned\x07 \x1b[2J \u202eevil, \x9b1m\nforged",
        at(timedelta(days=1)),
    ),
    Event(9, "message", "alice", "hello again", at(timedelta(minutes=10))),
)


@pytest.fixture
def db(migrated_database: Database) -> Database:
    """EVENTS in a database of the test's own, which it may change."""
    with EventStore.open(migrated_database.url) as store:
        store.write_batch(EVENTS)
    return migrated_database


@pytest.fixture(scope="module", params=BACKENDS)
def shared_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    """EVENTS stored once per backend, for the many tests that only read them."""
    with provide(request, tmp_path_factory.mktemp("shared"), migrated=True) as db:
        with EventStore.open(db.url) as store:
            store.write_batch(EVENTS)
        yield db


Invoke = Callable[..., Result]


@pytest.fixture
def run(shared_db: Database) -> Invoke:
    """`chatroom history` on EVENTS (read only)."""
    db = shared_db
    command = build_history(clock=lambda: NOW, tz=UTC)
    runner = CliRunner()

    def invoke(*args: str, cmd: click.Command = command) -> Result:
        return runner.invoke(cmd, ["--db", db.arg, *args], catch_exceptions=False)

    return invoke


def ids_of(result: Result) -> list[int]:
    return [obj["id"] for obj in json.loads(result.output)]


def test_text_output_is_the_chat_s_own_words(run: Invoke) -> None:
    result = run()
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines == [
        "2026-11-24 15:04  #lobby  alice joined",
        "2026-11-24 15:05  #lobby  alice : hello world",
        "2026-11-25 15:04  #lobby  Bob joined",
        '2026-11-25 15:04  #lobby  bob : lunch at noon? AND( "quoted" *star*',
        "2026-11-26 15:04  #lobby  "
        "alice : \\x1b]0;pwned\\x07 \\x1b[2J \\u202eevil, \\x9b1m\\x0aforged",
        "2026-11-27 12:04  #lobby  [announcement] maintenance at five",
        "2026-11-27 13:04  #lobby  carol : 午饭吃什么",
        "2026-11-27 14:04  #lobby  bob timed out",
        "2026-11-27 14:54  #lobby  alice : hello again",
        "2026-11-27 14:59  #lobby  alice left",
    ]


def test_no_control_character_reaches_the_terminal_in_text_output(run: Invoke) -> None:
    out = run("-n", "0").output
    assert not any(ch in out for ch in "\x1b\x07\x9b\u202e")
    assert out.count("\n") == len(EVENTS)


def test_local_time_by_default_and_utc_on_request(db: Database) -> None:
    ist = timezone(timedelta(hours=5, minutes=30))
    cmd = build_history(clock=lambda: NOW, tz=ist)
    runner = CliRunner()
    local = runner.invoke(cmd, ["--db", db.arg, "-n", "1"])
    utc = runner.invoke(cmd, ["--db", db.arg, "-n", "1", "--utc"])
    assert local.output == "2026-11-27 20:29  #lobby  alice left\n"
    assert utc.output == "2026-11-27 14:59  #lobby  alice left\n"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], list(range(1, 11))),
        (["-n", "3"], [8, 9, 10]),
        (["--limit", "3", "-r"], [10, 9, 8]),
        (["-n", "0"], list(range(1, 11))),
        (["-n", "0", "--reverse"], list(range(10, 0, -1))),
        (["-u", "BOB"], [3, 4, 8]),
        (["-u", "Alice", "--user", "carol", "-n", "2"], [9, 10]),
        (["--kind", "join", "--kind", "quit"], [1, 3, 10]),
        (["--kind", "announce"], [6]),
        (["-S", "1d"], [5, 6, 7, 8, 9, 10]),
        (["--since", "2h"], [7, 8, 9, 10]),
        (["-S", "90m"], [8, 9, 10]),
        (["-S", "today"], [6, 7, 8, 9, 10]),
        (["-S", "yesterday", "-U", "today"], [5]),
        (["-U", "2d"], [1, 2, 3, 4]),
        (["-S", "3d", "-U", "3d"], [1]),  # the same instant: allowed
        (["-S", "now", "-U", "now"], []),
        (["-S", "2026-11-25", "-U", "2026-11-25T23:59:59Z"], [3, 4]),
        (["-S", "2026-11-27 13:00", "--until", "2026-11-27T14:00:00+00:00"], [7]),
        (["-S", "1w", "-n", "2"], [9, 10]),
        (["-q", "hello"], [2, 9]),
        (["--search", "hello world"], [2]),
        (["-q", '"hello again"'], [9]),
        (["-q", "hel*"], [2, 9]),
        (["-q", "AND("], [4]),
        (["-q", '"'], [4]),
        (["-q", "*"], [4]),
        (["-q", "*** hello"], [2, 9]),  # a prefix of nothing narrows nothing
        (["-q", "NEAR(a b"], []),
        (["-q", "午饭"], [7]),
        (["-q", "hello", "-u", "alice", "-n", "1"], [9]),
        (["--after-id", "3", "-n", "2"], [4, 5]),
        (["--before-id", "4", "-n", "2"], [2, 3]),
        (["--after-id", "2", "--before-id", "6"], [3, 4, 5]),
        (["--after-id", "10"], []),
    ],
)
def test_options_select_the_right_events(run: Invoke, args: list[str], expected: list[int]) -> None:
    result = run("--json", *args)
    assert result.exit_code == 0, result.output
    assert ids_of(result) == expected
    count = run("--count", *[a for a in args if a not in ("-r", "--reverse")])
    n_all = len(ids_of(run("--json", *args, "-n", "0")))
    assert count.output == f"{n_all}\n"


def test_json_shape_and_exact_text(run: Invoke) -> None:
    result = run("--format", "json", "-n", "0")
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert [sorted(d) for d in data] == [
        ["created_at", "id", "kind", "name", "recipient", "room", "room_seq", "text"]
    ] * 10
    assert {(d["room"], d["recipient"]) for d in data} == {("#lobby", None)}
    assert [d["room_seq"] for d in data] == list(range(1, 11))
    assert data[4]["text"] == EVENTS[4].text  # exact, control characters and all
    assert data[6]["text"] == "午饭吃什么"  # readable, not \\u escapes
    assert "午饭吃什么" in result.output
    assert data[0]["created_at"] == "2026-11-24T15:04:05.000000Z"
    for d in data:
        parsed = datetime.fromisoformat(d["created_at"])
        assert parsed.utcoffset() == timedelta(0)
        assert parsed.timestamp() == pytest.approx(EVENTS[d["id"] - 1].created_at)
    # escaped, so JSON printed on a terminal cannot drive it either
    assert not any(ch in result.output for ch in "\x1b\x07\x9b\u202e")


def test_json_alias_and_empty_result(run: Invoke) -> None:
    assert run("--json").output == run("--format", "json").output
    assert json.loads(run("--json", "-u", "nobody").output) == []


def test_jsonl_shape(run: Invoke) -> None:
    result = run("--format", "jsonl", "-n", "3")
    lines = result.output.splitlines()
    assert [json.loads(line)["id"] for line in lines] == [8, 9, 10]
    assert json.loads(lines[0]) == {
        "id": 8,
        "kind": "timeout",
        "name": "bob",
        "text": "",
        "created_at": "2026-11-27T14:04:05.000000Z",
        "room": "#lobby",
        "room_seq": 8,
        "recipient": None,
    }


def test_csv_shape_and_exact_text(run: Invoke) -> None:
    result = run("--format", "csv", "-n", "0")
    rows = list(csv.reader(io.StringIO(result.output, newline="")))
    # The fields of the single-room release first, in their order; then where.
    assert rows[0] == [
        "id",
        "kind",
        "name",
        "text",
        "created_at",
        "room",
        "room_seq",
        "recipient",
    ]
    assert len(rows) == 11
    assert rows[5] == [
        "5",
        "message",
        "alice",
        EVENTS[4].text,
        "2026-11-26T15:04:05.000000Z",
        "#lobby",
        "5",
        "",
    ]
    assert rows[4][3] == 'lunch at noon? AND( "quoted" *star*'


def test_no_database_is_a_clear_error_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "chat.db"
    result = CliRunner().invoke(build_history(), ["--db", str(missing)])
    assert result.exit_code == 1
    assert f"no database at {missing}; start `chatroom serve` first" in result.output
    assert not missing.parent.exists()


def test_default_path_and_env_var(
    tmp_path: Path, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("CHATROOM_DB", raising=False)
    result = runner.invoke(build_history(), [])
    assert result.exit_code == 1
    assert str(tmp_path / "xdg" / "chatroom" / "chatroom.db") in result.output
    monkeypatch.setenv("CHATROOM_DB", db.arg)
    result = runner.invoke(build_history(tz=UTC), ["-n", "1"])
    assert result.exit_code == 0
    assert result.output.endswith("alice left\n")


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all" * 100)
    result = CliRunner().invoke(build_history(), ["--db", str(junk)])
    assert result.exit_code == 1
    assert "is not a chatroom database" in result.output
    assert "Traceback" not in result.output


def test_too_new_is_a_clear_error(db: Database) -> None:
    db.sql("UPDATE alembic_version SET version_num = 'f00'")
    result = CliRunner().invoke(build_history(), ["--db", db.arg])
    assert result.exit_code == 1
    assert "newer than this chatroom" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["-n", "-1"],
        ["-n", "many"],
        ["--kind", "shout"],
        ["-S", "bogus"],
        ["-U", "10x"],
        ["--since", "2026-13-45"],
        ["--after-id", "x"],
        ["--format", "xml"],
        ["--json", "--format", "csv"],
        ["--follow", "--count"],
        ["--follow", "--json"],
        ["--follow", "-r"],
        ["--no-such-option"],
    ],
)
def test_bad_options_are_usage_errors(args: list[str]) -> None:
    result = CliRunner().invoke(build_history(clock=lambda: NOW), ["--db", "unused.db", *args])
    assert result.exit_code == 2, result.output
    assert "Usage:" in result.output


@pytest.mark.parametrize("search", ["***", "**", "", "   ", "\x00", "** ***"])
def test_a_search_with_nothing_to_search_for_is_refused(run: Invoke, search: str) -> None:
    # It used to filter nothing and print the last 20 events as if they matched.
    for extra in ([], ["--count"], ["-f"]):
        result = run("-q", search, *extra)
        assert result.exit_code == 2, result.output
        assert "has no searchable words" in result.output
        assert "#lobby" not in result.output


@pytest.mark.parametrize(
    ("since", "until"),
    [("today", "yesterday"), ("3d", "1w"), ("2026-11-27 15:04:06", "2026-11-27T15:04:05Z")],
)
def test_since_after_until_is_refused(run: Invoke, since: str, until: str) -> None:
    # It used to print nothing, and exit 0, as if nothing had been said.
    for extra in ([], ["--count"], ["--json"]):
        result = run("--since", since, "--until", until, *extra)
        assert result.exit_code == 2, result.output
        assert "Usage:" in result.output
        assert "is after --until" in result.output
        assert "nothing can match" in result.output


def test_since_after_until_names_both_times(run: Invoke) -> None:
    result = run("--since", "today", "--until", "yesterday")
    assert "--since (2026-11-27 00:00:00) is after --until (2026-11-26 00:00:00)" in result.output
    utc = CliRunner().invoke(
        build_history(clock=lambda: NOW, tz=timezone(timedelta(hours=2))),
        ["--db", "unused.db", "-S", "today", "-U", "yesterday", "--utc"],
    )
    assert "--since (2026-11-26 22:00:00) is after --until (2026-11-25 22:00:00)" in utc.output


def test_follow_prints_new_events_until_ctrl_c(db: Database) -> None:
    url = db.url
    calls = 0

    def fake_sleep(_seconds: float) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            with EventStore.open(url) as writer:  # the server stores more
                writer.write_batch(
                    [
                        Event(11, "message", "alice", "new one", NOW.timestamp()),
                        Event(12, "message", "dave", "not alice", NOW.timestamp()),
                    ]
                )
        elif calls == 2:
            with EventStore.open(url) as writer:
                writer.write_batch([Event(13, "quit", "Alice", "", NOW.timestamp())])
        elif calls == 3:
            pass  # nothing new
        else:
            raise KeyboardInterrupt

    cmd = build_history(clock=lambda: NOW, tz=UTC, sleep=fake_sleep)
    result = CliRunner().invoke(
        cmd, ["--db", db.arg, "-f", "-u", "alice", "-n", "2", "--format", "jsonl"]
    )
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == [9, 10, 11, 13]
    assert calls == 4


def test_follow_in_text_mode_exits_quietly(db: Database) -> None:
    def interrupt(_seconds: float) -> None:
        raise KeyboardInterrupt

    cmd = build_history(tz=UTC, sleep=interrupt)
    result = CliRunner().invoke(cmd, ["--db", db.arg, "--follow", "-n", "1"])
    assert result.exit_code == 0
    assert result.stdout == "2026-11-27 14:59  #lobby  alice left\n"


def test_registered_in_the_cli_group(db: Database) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["history", "--help"])
    assert result.exit_code == 0
    assert "--since" in result.output and "--follow" in result.output
    result = runner.invoke(cli, ["history", "--db", db.arg, "--count"])
    assert result.output == "10\n"


def test_db_commands(database: Database) -> None:
    path = describe(database.url)
    runner = CliRunner()

    def db(*args: str, **kw: object) -> Result:
        return runner.invoke(cli, ["db", *args, "--db", database.arg], **kw)  # type: ignore[arg-type]

    assert "no schema" in db("current").output
    assert database.path is None or not database.path.exists()
    result = db("upgrade")
    assert result.exit_code == 0 and "upgraded base (no schema) -> 0005" in result.output
    assert "already at 0005" in db("upgrade").output
    assert db("current").output == f"{path}: 0005 (head)\n"
    refused = db("downgrade", "base", input="n\n")
    assert refused.exit_code == 1
    assert db("current").output == f"{path}: 0005 (head)\n"
    result = db("downgrade", "base", "--yes")
    assert result.exit_code == 0 and "downgraded 0005 -> base" in result.output
    assert "no schema" in db("current").output
    assert db("downgrade", "nope", "-y").exit_code == 1
    database.sql("INSERT INTO alembic_version VALUES ('9999')")
    assert "unknown here: newer than this chatroom" in db("current").output
    result = db("upgrade")
    assert result.exit_code == 1 and "newer than this chatroom" in result.output


@pytest.mark.parametrize(
    ("db_value", "message"),
    [
        ("://", "cannot read '://' as a database"),
        ("nosuchdialect://x", "cannot use database nosuchdialect://x"),
        ("postgresql://u@127.0.0.1:9/none", "postgresql"),  # no driver, or no server
    ],
)
def test_bad_database_values_are_clear_errors(db_value: str, message: str) -> None:
    runner = CliRunner()
    for args in (["history"], ["history", "--count"], ["db", "current"], ["db", "upgrade"]):
        result = runner.invoke(cli, [*args, "--db", db_value])
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output
        assert "Traceback" not in result.output


def test_a_directory_is_not_a_database(tmp_path: Path) -> None:
    for args in (["history"], ["db", "current"], ["db", "upgrade"]):
        result = CliRunner().invoke(cli, [*args, "--db", str(tmp_path)])
        assert result.exit_code == 1
        assert "is a directory" in result.output


def test_reads_while_a_server_writes(db: Database) -> None:
    # The writer commits batch after batch in another thread (its own connections)
    # until told to stop. Each history run starts once a batch newer than what the
    # previous run saw is committed, while the writer goes on: every run reads
    # during the writing, and must see every batch committed before it started,
    # and never part of a batch.
    import threading
    import time

    stop = threading.Event()
    errors: list[BaseException] = []
    committed = [len(EVENTS)]  # the newest id committed so far
    progress = threading.Condition()

    def server() -> None:
        try:
            with EventStore.open(db.url) as store:
                next_id = len(EVENTS) + 1
                while not stop.is_set() and next_id < 50_000:
                    store.write_batch(
                        [
                            Event(i, "message", "writer", f"burst {i}", NOW.timestamp())
                            for i in range(next_id, next_id + 25)
                        ]
                    )
                    next_id += 25
                    with progress:
                        committed[0] = next_id - 1
                        progress.notify_all()
                    time.sleep(0.001)  # room for the readers; a small database
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            with progress:
                progress.notify_all()

    thread = threading.Thread(target=server)
    thread.start()
    try:
        counts: list[int] = []
        for _ in range(15):
            seen = counts[-1] if counts else len(EVENTS)
            with progress:
                assert progress.wait_for(lambda n=seen: committed[0] > n or errors, timeout=10)
                before = committed[0]  # committed before this run starts
            assert not errors
            result = CliRunner().invoke(build_history(), ["--db", db.arg, "--count"])
            assert result.exit_code == 0, result.output
            counts.append(int(result.output))
            assert counts[-1] >= before, (counts, before)
            result = CliRunner().invoke(build_history(), ["--db", db.arg, "-q", "burst", "--json"])
            assert result.exit_code == 0, result.output
            found = ids_of(result)
            assert len(found) == 20 and max(found) >= before, (found, before)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not errors
    assert not thread.is_alive()
    assert counts == sorted(set(counts)), counts  # each run saw newer writes
    assert all(c % 25 == len(EVENTS) for c in counts)  # whole batches only
    assert counts[-1] <= committed[0]


def test_me_actions_read_as_in_the_chat(migrated_database: Database) -> None:
    # `/me waves` is shown `* name waves` by the client and to classic users; the
    # text output says the same, JSON and CSV keep the stored text exactly.
    path = migrated_database
    texts = ["/me 挥手 👋", "/me \x1b[2Jwipes", "/meh and /me not at the start"]
    names = ["小明", "eve", "bob"]
    with EventStore.open(path.url) as store:
        store.write_batch(
            [
                Event(i + 1, "message", name, text, at(timedelta(minutes=3 - i)))
                for i, (name, text) in enumerate(zip(names, texts, strict=True))
            ]
        )
    cmd = build_history(clock=lambda: NOW, tz=UTC)

    def run(*args: str) -> str:
        result = CliRunner().invoke(cmd, ["--db", path.arg, *args])
        assert result.exit_code == 0, result.output
        return result.output

    assert run("--room", "#lobby").splitlines() == [
        "2026-11-27 15:01  * 小明 挥手 👋",
        "2026-11-27 15:02  * eve \\x1b[2Jwipes",
        "2026-11-27 15:03  bob : /meh and /me not at the start",
    ]
    assert [d["text"] for d in json.loads(run("--json"))] == texts
    rows = list(csv.reader(io.StringIO(run("--format", "csv"), newline="")))
    assert [row[3] for row in rows[1:]] == texts


def test_help_points_to_where_the_time_formats_are() -> None:
    out = CliRunner().invoke(cli, ["history", "--help"]).output
    assert "see below" not in out
    times, options = out.index("Times (-S/-U)"), out.index("Options:")
    assert times < options
    for flag in ("-S, --since", "-U, --until"):
        line = next(line for line in out.splitlines() if line.strip().startswith(flag))
        assert "Times above" in line, line


def test_another_programs_database_gets_one_diagnosis_everywhere(database: Database) -> None:
    database.sql("CREATE TABLE t (x INTEGER)")
    before = database.path.read_bytes() if database.path is not None else None
    runner = CliRunner()
    for args in (
        ["history"],
        ["history", "--count"],
        ["db", "current"],
        ["db", "upgrade"],
        ["db", "downgrade", "base"],
        ["db", "downgrade", "base", "--yes"],
        ["serve", "--port", "0"],
    ):
        result = runner.invoke(cli, [*args, "--db", database.arg], input="y\n")
        assert result.exit_code == 1, (args, result.output)
        assert result.output == (
            f"Error: {describe(database.url)} is not a chatroom database: it holds other "
            "tables (t) and no chatroom schema revision; use another --db\n"
        ), args
    if database.path is not None:
        assert database.path.read_bytes() == before
    else:
        tables = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        assert database.sql(tables) == [("t",)]


def test_downgrade_checks_the_database_before_asking(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n" * 100)
    missing = tmp_path / "missing.db"
    runner = CliRunner()

    def downgrade(path: Path, rev: str = "base") -> Result:
        return runner.invoke(cli, ["db", "downgrade", rev, "--db", str(path)], input="y\n")

    result = downgrade(notes)
    assert result.exit_code == 1
    assert result.output == f"Error: {notes} is not a chatroom database (not an SQLite file)\n"
    assert notes.read_text() == "my notes\n" * 100
    result = downgrade(missing)
    assert result.exit_code == 1
    assert result.output == f"Error: no database at {missing}\n"
    assert not missing.exists()
    chat = tmp_path / "chat.db"
    assert runner.invoke(cli, ["db", "upgrade", "--db", str(chat)]).exit_code == 0
    result = downgrade(chat, "nope")
    assert result.exit_code == 1 and "[y/N]" not in result.output
    assert "unknown revision 'nope'" in result.output
    result = downgrade(chat, "0005")  # already there: nothing to lose, nothing to ask
    assert result.output == f"{chat}: already at 0005\n"
    result = downgrade(chat)  # a real database: asks
    assert result.exit_code == 0
    assert result.output.startswith(f"Downgrade {chat} to base?")
    assert result.output.endswith("downgraded 0005 -> base (no schema)\n")
    result = downgrade(chat)  # nothing left to downgrade
    assert result.output == f"{chat}: already at base (no schema)\n"


def test_ctrl_c_in_follow_ends_the_line(db: Database) -> None:
    # The terminal echoes ^C; a newline after it puts the shell prompt on its own
    # line. It goes to stderr, so that data on stdout stays clean.
    def interrupt(_seconds: float) -> None:
        raise KeyboardInterrupt

    cmd = build_history(tz=UTC, sleep=interrupt)
    for fmt, line in (("text", "2026-11-27 14:59  #lobby  alice left\n"), ("jsonl", None)):
        result = CliRunner().invoke(cmd, ["--db", db.arg, "-f", "-n", "1", "--format", fmt])
        assert result.exit_code == 0
        assert result.stderr == "\n"
        if line is not None:
            assert result.stdout == line
        else:
            assert json.loads(result.stdout)["id"] == 10


# ------------------------------------------------------------------ rooms and DMs

ALICE_BOB = dm_key("alice", "bob")
ROOM_EVENTS = [
    Event(1, "join", "alice", "", at(timedelta(minutes=60))),
    Event(2, "join", "alice", "", at(timedelta(minutes=59)), room="#dev", room_seq=1),
    Event(
        3, "message", "alice", "deploy at five", at(timedelta(minutes=58)), room="#dev", room_seq=2
    ),
    Event(
        4,
        "message",
        "alice",
        "psst bob",
        at(timedelta(minutes=57)),
        room=ALICE_BOB,
        room_seq=1,
        to="Bob",
    ),
    Event(
        5,
        "message",
        "Bob",
        "ok alice",
        at(timedelta(minutes=56)),
        room=ALICE_BOB,
        room_seq=2,
        to="alice",
    ),
    Event(6, "message", "carol", "deploy done", at(timedelta(minutes=55)), room="#ops", room_seq=1),
    Event(
        7,
        "message",
        "carol",
        "/me waves at alice",
        at(timedelta(minutes=54)),
        room=dm_key("alice", "carol"),
        room_seq=1,
        to="alice",
    ),
    Event(8, "announce", "", "restart at six", at(timedelta(minutes=53)), room_seq=2),
    Event(9, "announce", "", "restart at six", at(timedelta(minutes=53)), room="#dev", room_seq=3),
    Event(10, "announce", "", "restart at six", at(timedelta(minutes=53)), room="#ops", room_seq=2),
    Event(
        11,
        "message",
        "dave",
        "lunch?",
        at(timedelta(minutes=52)),
        room=dm_key("carol", "dave"),
        room_seq=1,
        to="carol",
    ),
]


@pytest.fixture(scope="module", params=BACKENDS)
def rooms_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    """ROOM_EVENTS stored once per backend (the tests only read them)."""
    with provide(request, tmp_path_factory.mktemp("rooms"), migrated=True) as db:
        with EventStore.open(db.url) as store:
            store.write_batch(ROOM_EVENTS)
        yield db


@pytest.fixture
def rooms_run(rooms_db: Database) -> Invoke:
    command = build_history(clock=lambda: NOW, tz=UTC)
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(command, ["--db", rooms_db.arg, *args], catch_exceptions=False)

    return invoke


def test_text_output_says_where_each_event_happened(rooms_run: Invoke) -> None:
    result = rooms_run("-n", "0")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "2026-11-27 14:04  #lobby  alice joined",
        "2026-11-27 14:05  #dev  alice joined",
        "2026-11-27 14:06  #dev  alice : deploy at five",
        "2026-11-27 14:07  @alice→Bob  alice : psst bob",
        "2026-11-27 14:08  @Bob→alice  Bob : ok alice",
        "2026-11-27 14:09  #ops  carol : deploy done",
        "2026-11-27 14:10  @carol→alice  * carol waves at alice",
        "2026-11-27 14:11  #lobby  [announcement] restart at six",
        "2026-11-27 14:11  #dev  [announcement] restart at six",
        "2026-11-27 14:11  #ops  [announcement] restart at six",
        "2026-11-27 14:12  @dave→carol  dave : lunch?",
    ]


def test_one_room_needs_no_room_column(rooms_run: Invoke) -> None:
    assert rooms_run("--room", "#dev").output.splitlines() == [
        "2026-11-27 14:05  alice joined",
        "2026-11-27 14:06  alice : deploy at five",
        "2026-11-27 14:11  [announcement] restart at six",
    ]
    two = rooms_run("--room", "#dev", "--room", "#ops", "-n", "2").output.splitlines()
    assert two == [
        "2026-11-27 14:11  #dev  [announcement] restart at six",
        "2026-11-27 14:11  #ops  [announcement] restart at six",
    ]
    assert rooms_run("--dm", "bob").output.splitlines() == [
        "2026-11-27 14:07  @alice→Bob  alice : psst bob",
        "2026-11-27 14:08  @Bob→alice  Bob : ok alice",
    ]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], list(range(1, 12))),
        (["--room", "#dev"], [2, 3, 9]),
        (["--room", "dev"], [2, 3, 9]),  # the shell eats an unquoted #dev as a comment
        (["--room", "#DEV"], [2, 3, 9]),
        (["--room", "#ｄｅｖ"], [2, 3, 9]),  # fullwidth: one room ignoring width too
        (["--room", "#lobby"], [1, 8]),
        (["--room", "#dev", "--room", "#ops"], [2, 3, 6, 9, 10]),
        (["--room", "#nowhere"], []),
        (["--dm", "alice"], [4, 5, 7]),
        (["--dm", "@ALICE"], [4, 5, 7]),
        (["--dm", "carol"], [7, 11]),
        (["--dm", "alice", "-u", "bob"], [5]),  # what bob wrote to alice
        (["--dm", "nobody"], []),
        (["--room", "#ops", "--dm", "dave"], [6, 10, 11]),  # they add up
        (["--room", "#dev", "-q", "deploy"], [3]),
        (["--room", "#dev", "--room", "#ops", "-q", "deploy"], [3, 6]),
        (["--dm", "alice", "-q", "psst"], [4]),
        (["-q", "restart"], [8, 9, 10]),  # one announcement, stored once per room
        (["--room", "#dev", "--kind", "announce"], [9]),
        (["--room", "#dev", "-u", "alice", "-n", "1"], [3]),
        (["--room", "#dev", "-S", "57m"], [9]),
        (["--room", "#dev", "-U", "58m"], [2, 3]),
        (["--dm", "alice", "--after-id", "4", "-n", "1"], [5]),
        (["--dm", "alice", "--before-id", "7"], [4, 5]),
        (["--dm", "alice", "-n", "2", "-r"], [7, 5]),
    ],
)
def test_room_and_dm_options_select_the_right_events(
    rooms_run: Invoke, args: list[str], expected: list[int]
) -> None:
    result = rooms_run("--json", "-n", "0", *args)
    assert result.exit_code == 0, result.output
    assert ids_of(result) == expected
    # --count ignores the limit and the order: it counts every match.
    unlimited = [a for a in args if a != "-r"]
    while "-n" in unlimited:
        at_n = unlimited.index("-n")
        del unlimited[at_n : at_n + 2]
    every = ids_of(rooms_run("--json", "-n", "0", *unlimited))
    assert rooms_run("--count", *unlimited).output == f"{len(every)}\n"


def test_json_and_csv_carry_room_and_recipient(rooms_run: Invoke) -> None:
    data = json.loads(rooms_run("--json", "--dm", "alice", "-n", "1").output)
    assert data == [
        {
            "id": 7,
            "kind": "message",
            "name": "carol",
            "text": "/me waves at alice",
            "created_at": "2026-11-27T14:10:05.000000Z",
            "room": "@alice carol",  # a direct conversation's stored key
            "room_seq": 1,
            "recipient": "alice",
        }
    ]
    rows = list(csv.DictReader(io.StringIO(rooms_run("--format", "csv", "-n", "0").output)))
    assert [(r["id"], r["room"], r["room_seq"], r["recipient"]) for r in rows[2:5]] == [
        ("3", "#dev", "2", ""),
        ("4", "@alice bob", "1", "Bob"),
        ("5", "@alice bob", "2", "alice"),
    ]
    lines = rooms_run("--format", "jsonl", "--room", "#ops").output.splitlines()
    assert [json.loads(line)["room"] for line in lines] == ["#ops", "#ops"]


def test_rooms_stored_in_another_spelling_are_the_same_room(migrated_database: Database) -> None:
    # However the server spells a room when it stores it, --room finds it ignoring
    # case and width, beyond the ASCII letters SQLite's NOCASE folds.
    path = migrated_database
    with EventStore.open(path.url) as store:
        store.write_batch(
            [
                Event(1, "message", "a", "one", NOW.timestamp(), room="#Éclair", room_seq=1),
                Event(2, "message", "a", "two", NOW.timestamp(), room="#ÉCLAIR2", room_seq=1),
                Event(3, "message", "a", "three", NOW.timestamp(), room="#éclair", room_seq=9),
            ]
        )
    cmd = build_history(clock=lambda: NOW, tz=UTC)
    for spelling in ("#éclair", "#ÉCLAIR", "#Éclair", "éclair"):
        result = CliRunner().invoke(cmd, ["--db", path.arg, "--json", "--room", spelling])
        assert ids_of(result) == [1, 3], spelling


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--room", "#"], "is not a room name"),
        (["--room", ""], "is not a room name"),
        (["--room", "#a b"], "is not a room name"),
        (["--room", "#a:b"], "is not a room name"),
        (["--room", "#" + "x" * 33], "is not a room name"),
        (["--room", "#bell\x07"], "is not a room name"),
        (["--room", "@alice"], "a direct conversation, not a room: use --dm NAME"),
        (["--dm", ""], "is not a user name"),
        (["--dm", "@"], "is not a user name"),
        (["--dm", "a b"], "is not a user name"),
    ],
)
def test_bad_rooms_and_names_are_usage_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(build_history(clock=lambda: NOW), ["--db", "unused.db", *args])
    assert result.exit_code == 2, result.output
    assert "Usage:" in result.output and message in result.output


def test_follow_one_room_prints_only_that_room(migrated_database: Database) -> None:
    path = migrated_database
    url = path.url
    with EventStore.open(url) as store:
        store.write_batch(ROOM_EVENTS)
    calls = 0

    def fake_sleep(_seconds: float) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            with EventStore.open(url) as writer:
                writer.write_batch(
                    [
                        Event(
                            12, "message", "eve", "in ops", NOW.timestamp(), room="#ops", room_seq=3
                        ),
                        Event(
                            13, "message", "eve", "in dev", NOW.timestamp(), room="#DEV", room_seq=4
                        ),
                        Event(
                            14,
                            "message",
                            "bob",
                            "to alice",
                            NOW.timestamp(),
                            room=ALICE_BOB,
                            room_seq=3,
                            to="alice",
                        ),
                    ]
                )
        else:
            raise KeyboardInterrupt

    cmd = build_history(clock=lambda: NOW, tz=UTC, sleep=fake_sleep)
    runner = CliRunner()
    result = runner.invoke(cmd, ["--db", path.arg, "-f", "--room", "#dev", "-n", "1"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "2026-11-27 14:11  [announcement] restart at six",
        "2026-11-27 15:04  eve : in dev",
    ]

    def interrupt(_seconds: float) -> None:
        raise KeyboardInterrupt

    cmd = build_history(clock=lambda: NOW, tz=UTC, sleep=interrupt)
    result = runner.invoke(
        cmd, ["--db", path.arg, "-f", "--dm", "alice", "--format", "jsonl", "-n", "2"]
    )
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == [7, 14]


def test_rooms_and_recipients_from_the_database_cannot_drive_the_terminal(
    migrated_database: Database,
) -> None:
    # The server never stores such names, but a database is a file anyone can edit.
    path = migrated_database
    with EventStore.open(path.url) as store:
        store.write_batch(
            [
                Event(1, "message", "a", "x", NOW.timestamp(), room="#\x1b[2Jroom", room_seq=1),
                Event(
                    2,
                    "message",
                    "a",
                    "y",
                    NOW.timestamp(),
                    room="@a \x1b]0;t\x07",
                    room_seq=1,
                    to="\u202eb\x9b",
                ),
            ]
        )
    out = CliRunner().invoke(build_history(tz=UTC), ["--db", path.arg]).output
    assert not any(ch in out for ch in "\x1b\x07\x9b\u202e")
    assert "#\\x1b[2Jroom" in out and "@a→\\u202eb\\x9b" in out


@pytest.mark.parametrize("value", ["sqlite:/tmp/chat.db", "sqlite:chat.db", "postgresql:chat"])
def test_a_url_without_its_slashes_is_refused_not_taken_as_a_path(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From a tryout: `--db sqlite:/tmp/x.db` served a new, empty database in a
    folder named `sqlite:`. Every command refuses it (also from CHATROOM_DB) and
    creates nothing; a file of that name is still reachable as ./NAME."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for args in (["serve", "--port", "0"], ["history"], ["db", "current"], ["db", "upgrade"]):
        for given in (["--db", value], []):
            env = {} if given else {"CHATROOM_DB": value}
            result = runner.invoke(cli, [*args, *given], env=env)
            assert result.exit_code == 2, (args, result.output)
            assert "Invalid value for '--db': a URL needs '://'" in result.output
            assert f"./{value}" in result.output
    assert list(tmp_path.iterdir()) == []
    result = runner.invoke(cli, ["db", "upgrade", "--db", f"./{value}"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / value).is_file()
