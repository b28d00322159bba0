"""Terminal injection: stored text can never drive the reader's terminal.

The server refuses control characters in messages (tests/test_security.py), so
the only way to get them into history is to write the database directly. Those
rows are replayed to a real `chatroom join` in a pty and printed by
`chatroom history`: each payload must arrive as visible escapes, never raw.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.pty import Client
from tests.support.server import ServerProcess, start_server

pytestmark = pytest.mark.integration

PAYLOADS: dict[str, str] = {
    "osc52": "\x1b]52;c;cm0gLXJmIH4=\x07",  # write the clipboard
    "osc0": "\x1b]0;pwned\x07",  # set the window title
    "csi21t": "\x1b[21t",  # report the title back (echo attack)
    "dcs": "\x1bPq#0;2;0;0;0\x1b\\",  # device control string
    "ris": "\x1bc",  # full reset
    "clear": "\x1b[2J",  # clear the screen
    "rlo": "evil\u202etxt.exe",  # right-to-left override
    "c1csi": "\u009b31m",  # 8-bit CSI
    "bel": "ding\x07",
    "bs": "paid\x08\x08\x08\x08owed",
}
RAW_FORBIDDEN = [
    "\x1b]52",
    "\x1b]0;pwned",
    "\x1b[21t",
    "\x1bP",
    "\x1bc",
    "\x1b[2J",
    "\u202e",
    "\u009b",
    "ding\x07",
    "paid\x08",
]


@pytest.fixture
def poisoned(tmp_path: Path) -> Iterator[Callable[[], ServerProcess]]:
    """A database with every payload stored as a message, then a server on it."""
    db = tmp_path / "chat.db"
    first = start_server(db)  # creates the schema through the real migrations
    assert first.stop() == 0
    with sqlite3.connect(db) as conn:
        start = conn.execute("select coalesce(max(id), 0) from events").fetchone()[0]
        conn.executemany(
            "insert into events (id, kind, name, text, created_at, room, room_seq)"
            " values (?, 'message', ?, ?, ?, '#lobby', ?)",
            [
                (start + i + 1, "mallory", text, 1_764_000_000_000_000 + i, start + i + 1)
                for i, text in enumerate(PAYLOADS.values())
            ],
        )
    servers: list[ServerProcess] = []

    def serve() -> ServerProcess:
        srv = start_server(db)
        servers.append(srv)
        return srv

    yield serve
    for srv in servers:
        srv.stop()


def test_replayed_history_shows_escapes_not_control_sequences(
    poisoned: Callable[[], ServerProcess],
) -> None:
    srv = poisoned()
    client = Client("reader", srv.port, "--history", "20", "--no-color")
    try:
        client.ready()
        client.expect("owed")  # the last payload has been printed
        out = client.output
        for raw in RAW_FORBIDDEN:
            assert raw not in out, f"{raw!r} reached the terminal raw"
        for visible in (
            "\\x1b]52;c;",
            "\\x1b]0;pwned",
            "\\x1b[21t",
            "\\u202e",
            "\\x9b",
            "\\x07",
            "\\x08",
        ):
            assert visible in out, f"{visible!r} not shown"
        client.sendline("/quit")
        assert client.wait_exit() == 0
    finally:
        client.close()


def test_history_command_neutralises_but_json_keeps_exact_text(
    poisoned: Callable[[], ServerProcess],
) -> None:
    srv = poisoned()
    assert srv.stop() == 0
    text = subprocess.run(
        [sys.executable, "-m", "chatroom", "history", "--db", str(srv.db), "-n", "0"],
        capture_output=True,
        timeout=30,
        check=True,
    ).stdout.decode()
    for raw in RAW_FORBIDDEN:
        assert raw not in text
    assert "\\x1b]52;c;" in text and "\\u202e" in text
    import json

    rows = json.loads(
        subprocess.run(
            [sys.executable, "-m", "chatroom", "history", "--db", str(srv.db), "-n", "0", "--json"],
            capture_output=True,
            timeout=30,
            check=True,
        ).stdout
    )
    assert [r["text"] for r in rows if r["name"] == "mallory"] == list(PAYLOADS.values())
