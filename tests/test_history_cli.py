"""`chatroom history` and `chatroom db` through click's CliRunner, on real SQLite files,
with a fixed clock and time zone."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from chatroom.cli import cli
from chatroom.commands.history import build_history
from chatroom.events import Event
from storage.config import sqlite_url
from storage.store import EventStore

NOW = datetime(2026, 11, 27, 15, 4, 5, tzinfo=UTC)


def at(delta: timedelta) -> float:
    return (NOW - delta).timestamp()


EVENTS = [
    Event(1, "join", "alice", "", at(timedelta(days=3))),
    Event(2, "message", "alice", "hello world", at(timedelta(days=3, minutes=-1))),
    Event(3, "join", "Bob", "", at(timedelta(days=2))),
    Event(4, "message", "bob", 'lunch at noon? AND( "quoted" *star*', at(timedelta(days=2))),
    Event(
        5,
        "message",
        "alice",
        "\x1b]0;pwned\x07 \x1b[2J \u202eevil, \x9b1m\nforged",
        at(timedelta(days=1)),
    ),
    Event(6, "announce", "server", "maintenance at five", at(timedelta(hours=3))),
    Event(7, "message", "carol", "午饭吃什么", at(timedelta(hours=2))),
    Event(8, "timeout", "bob", "", at(timedelta(hours=1))),
    Event(9, "message", "alice", "hello again", at(timedelta(minutes=10))),
    Event(10, "quit", "alice", "", at(timedelta(minutes=5))),
]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "chat.db"
    with EventStore.open(sqlite_url(path)) as store:
        store.write_batch(EVENTS)
    return path


Invoke = Callable[..., Result]


@pytest.fixture
def run(db: Path) -> Invoke:
    command = build_history(clock=lambda: NOW, tz=UTC)
    runner = CliRunner()

    def invoke(*args: str, cmd: click.Command = command) -> Result:
        return runner.invoke(cmd, ["--db", str(db), *args], catch_exceptions=False)

    return invoke


def ids_of(result: Result) -> list[int]:
    return [obj["id"] for obj in json.loads(result.output)]


def test_text_output_is_the_chat_s_own_words(run: Invoke) -> None:
    result = run()
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines == [
        "2026-11-24 15:04  alice joined",
        "2026-11-24 15:05  alice : hello world",
        "2026-11-25 15:04  Bob joined",
        '2026-11-25 15:04  bob : lunch at noon? AND( "quoted" *star*',
        "2026-11-26 15:04  alice : \\x1b]0;pwned\\x07 \\x1b[2J \\u202eevil, \\x9b1m\\x0aforged",
        "2026-11-27 12:04  [announcement] maintenance at five",
        "2026-11-27 13:04  carol : 午饭吃什么",
        "2026-11-27 14:04  bob timed out",
        "2026-11-27 14:54  alice : hello again",
        "2026-11-27 14:59  alice left",
    ]


def test_no_control_character_reaches_the_terminal_in_text_output(run: Invoke) -> None:
    out = run("-n", "0").output
    assert not any(ch in out for ch in "\x1b\x07\x9b\u202e")
    assert out.count("\n") == len(EVENTS)


def test_local_time_by_default_and_utc_on_request(db: Path) -> None:
    ist = timezone(timedelta(hours=5, minutes=30))
    cmd = build_history(clock=lambda: NOW, tz=ist)
    runner = CliRunner()
    local = runner.invoke(cmd, ["--db", str(db), "-n", "1"])
    utc = runner.invoke(cmd, ["--db", str(db), "-n", "1", "--utc"])
    assert local.output == "2026-11-27 20:29  alice left\n"
    assert utc.output == "2026-11-27 14:59  alice left\n"


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
        (["-S", "3d", "-U", "1w"], []),
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
    assert [sorted(d) for d in data] == [["created_at", "id", "kind", "name", "text"]] * 10
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
    }


def test_csv_shape_and_exact_text(run: Invoke) -> None:
    result = run("--format", "csv", "-n", "0")
    rows = list(csv.reader(io.StringIO(result.output, newline="")))
    assert rows[0] == ["id", "kind", "name", "text", "created_at"]
    assert len(rows) == 11
    assert rows[5] == ["5", "message", "alice", EVENTS[4].text, "2026-11-26T15:04:05.000000Z"]
    assert rows[4][3] == 'lunch at noon? AND( "quoted" *star*'


def test_no_database_is_a_clear_error_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "chat.db"
    result = CliRunner().invoke(build_history(), ["--db", str(missing)])
    assert result.exit_code == 1
    assert f"no database at {missing}; start `chatroom serve` first" in result.output
    assert not missing.parent.exists()


def test_default_path_and_env_var(
    tmp_path: Path, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("CHATROOM_DB", raising=False)
    result = runner.invoke(build_history(), [])
    assert result.exit_code == 1
    assert str(tmp_path / "xdg" / "chatroom" / "chatroom.db") in result.output
    monkeypatch.setenv("CHATROOM_DB", str(db))
    result = runner.invoke(build_history(tz=UTC), ["-n", "1"])
    assert result.exit_code == 0
    assert result.output.endswith("alice left\n")


def test_not_a_database_and_too_new_are_clear_errors(tmp_path: Path, db: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all" * 100)
    result = CliRunner().invoke(build_history(), ["--db", str(junk)])
    assert result.exit_code == 1
    assert "is not a chatroom database" in result.output
    assert "Traceback" not in result.output
    with sqlite3.connect(db) as c:
        c.execute("UPDATE alembic_version SET version_num = 'f00'")
    result = CliRunner().invoke(build_history(), ["--db", str(db)])
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


def test_follow_prints_new_events_until_ctrl_c(db: Path) -> None:
    url = sqlite_url(db)
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
        cmd, ["--db", str(db), "-f", "-u", "alice", "-n", "2", "--format", "jsonl"]
    )
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == [9, 10, 11, 13]
    assert calls == 4


def test_follow_in_text_mode_exits_quietly(db: Path) -> None:
    def interrupt(_seconds: float) -> None:
        raise KeyboardInterrupt

    cmd = build_history(tz=UTC, sleep=interrupt)
    result = CliRunner().invoke(cmd, ["--db", str(db), "--follow", "-n", "1"])
    assert result.exit_code == 0
    assert result.stdout == "2026-11-27 14:59  alice left\n"


def test_registered_in_the_cli_group(db: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["history", "--help"])
    assert result.exit_code == 0
    assert "--since" in result.output and "--follow" in result.output
    result = runner.invoke(cli, ["history", "--db", str(db), "--count"])
    assert result.output == "10\n"


def test_db_commands(tmp_path: Path) -> None:
    path = tmp_path / "new" / "chat.db"
    runner = CliRunner()

    def db(*args: str, **kw: object) -> Result:
        return runner.invoke(cli, ["db", *args, "--db", str(path)], **kw)  # type: ignore[arg-type]

    assert "no schema" in db("current").output
    assert not path.exists()
    result = db("upgrade")
    assert result.exit_code == 0 and "upgraded base (no schema) -> 0002" in result.output
    assert "already at 0002" in db("upgrade").output
    assert db("current").output == f"{path}: 0002 (head)\n"
    refused = db("downgrade", "base", input="n\n")
    assert refused.exit_code == 1
    assert db("current").output == f"{path}: 0002 (head)\n"
    result = db("downgrade", "base", "--yes")
    assert result.exit_code == 0 and "downgraded 0002 -> base" in result.output
    assert "no schema" in db("current").output
    assert db("downgrade", "nope", "-y").exit_code == 1
    with sqlite3.connect(path) as c:
        c.execute("INSERT INTO alembic_version VALUES ('9999')")
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


def test_reads_while_a_server_writes(db: Path) -> None:
    # The writer commits batch after batch in another thread (its own connections);
    # every history run succeeds and sees a growing, consistent count.
    import threading

    stop = threading.Event()
    errors: list[BaseException] = []

    def server() -> None:
        try:
            with EventStore.open(sqlite_url(db)) as store:
                next_id = 11
                while not stop.is_set() and next_id < 5_000:
                    store.write_batch(
                        [
                            Event(i, "message", "writer", f"burst {i}", NOW.timestamp())
                            for i in range(next_id, next_id + 25)
                        ]
                    )
                    next_id += 25
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=server)
    thread.start()
    try:
        counts = []
        for _ in range(15):
            result = CliRunner().invoke(build_history(), ["--db", str(db), "--count"])
            assert result.exit_code == 0, result.output
            counts.append(int(result.output))
            result = CliRunner().invoke(build_history(), ["--db", str(db), "-q", "burst", "--json"])
            assert result.exit_code == 0, result.output
            assert len(json.loads(result.output)) == 20 or counts[-1] < 30
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not errors
    assert counts == sorted(counts)
    assert all(c % 25 == 10 for c in counts)  # whole batches only


def test_me_actions_read_as_in_the_chat(tmp_path: Path) -> None:
    # `/me waves` is shown `* name waves` by the client and to classic users; the
    # text output says the same, JSON and CSV keep the stored text exactly.
    path = tmp_path / "me.db"
    texts = ["/me 挥手 👋", "/me \x1b[2Jwipes", "/meh and /me not at the start"]
    names = ["小明", "eve", "bob"]
    with EventStore.open(sqlite_url(path)) as store:
        store.write_batch(
            [
                Event(i + 1, "message", name, text, at(timedelta(minutes=3 - i)))
                for i, (name, text) in enumerate(zip(names, texts, strict=True))
            ]
        )
    cmd = build_history(clock=lambda: NOW, tz=UTC)

    def run(*args: str) -> str:
        result = CliRunner().invoke(cmd, ["--db", str(path), *args])
        assert result.exit_code == 0, result.output
        return result.output

    assert run().splitlines() == [
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


def foreign_db(tmp_path: Path) -> Path:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as c:
        c.execute("CREATE TABLE t (x)")
    return other


def test_another_programs_database_gets_one_diagnosis_everywhere(tmp_path: Path) -> None:
    other = foreign_db(tmp_path)
    before = other.read_bytes()
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
        result = runner.invoke(cli, [*args, "--db", str(other)], input="y\n")
        assert result.exit_code == 1, (args, result.output)
        assert result.output == (
            f"Error: {other} is not a chatroom database: it holds other tables (t) and no "
            "chatroom schema revision; use another --db\n"
        ), args
    assert other.read_bytes() == before


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
    result = downgrade(chat, "0002")  # already there: nothing to lose, nothing to ask
    assert result.output == f"{chat}: already at 0002\n"
    result = downgrade(chat)  # a real database: asks
    assert result.exit_code == 0
    assert result.output.startswith(f"Downgrade {chat} to base?")
    assert result.output.endswith("downgraded 0002 -> base (no schema)\n")
    result = downgrade(chat)  # nothing left to downgrade
    assert result.output == f"{chat}: already at base (no schema)\n"


def test_ctrl_c_in_follow_ends_the_line(db: Path) -> None:
    # The terminal echoes ^C; a newline after it puts the shell prompt on its own
    # line. It goes to stderr, so that data on stdout stays clean.
    def interrupt(_seconds: float) -> None:
        raise KeyboardInterrupt

    cmd = build_history(tz=UTC, sleep=interrupt)
    for fmt, line in (("text", "2026-11-27 14:59  alice left\n"), ("jsonl", None)):
        result = CliRunner().invoke(cmd, ["--db", str(db), "-f", "-n", "1", "--format", fmt])
        assert result.exit_code == 0
        assert result.stderr == "\n"
        if line is not None:
            assert result.stdout == line
        else:
            assert json.loads(result.stdout)["id"] == 10
