"""The default database: ``make run``, ``serve``, ``history`` and ``db`` agree on it.

README: "The database is ``$XDG_DATA_HOME/chatroom/chatroom.db`` unless ``--db`` or
``CHATROOM_DB`` says otherwise; ``serve``, ``history`` and ``db`` agree on it", and
``make run`` keeps it "in ~/.local/share/chatroom". The server here is the very
command line ``make run`` plans (``make -n run``), on port 0 instead of 8888, with
``XDG_DATA_HOME`` (or ``HOME``) pointing into a temporary directory; every receive
has a timeout and the server is reaped.
"""

from __future__ import annotations

import os
import selectors
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatroom.serving import NEW_DATABASE
from storage.migrations import HEAD
from testkit.processes import LISTEN_RE, chatroom_cmd
from tests.support.server import RUNTIME_DIR, UdpPeer, make_plan

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent


def make_run_command(tmp_path: Path) -> list[str]:
    """The serve command ``make run`` runs, from ``make -n run`` in a copy of the
    Makefile whose venv is already installed (so the plan is that line alone)."""
    checkout = tmp_path / "checkout"
    (checkout / ".venv" / "bin").mkdir(parents=True)
    shutil.copy2(ROOT / "Makefile", checkout / "Makefile")
    (checkout / "pyproject.toml").write_text("")
    past = time.time() - 100
    os.utime(checkout / "pyproject.toml", (past, past))
    for name in ("bin/python", ".installed-run"):
        (checkout / ".venv" / name).touch()
    (line,) = make_plan(checkout, "run")
    return shlex.split(line)


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_run_passes_no_database(tmp_path: Path) -> None:
    argv = make_run_command(tmp_path)
    assert argv[:2] == [".venv/bin/chatroom", "serve"], argv
    assert not [a for a in argv if a == "--db" or a.startswith("--db=")], argv
    assert not [a for a in argv if "CHATROOM_DB" in a], argv
    assert "CHATROOM_DB" not in (ROOT / "Makefile").read_text()  # nor exported from there


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home


def environment(home: Path, xdg: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CHATROOM_DB", "XDG_DATA_HOME")}
    env.update(HOME=str(home), XDG_RUNTIME_DIR=RUNTIME_DIR, LANG="C.UTF-8", TZ="UTC")
    if xdg is not None:
        env["XDG_DATA_HOME"] = str(xdg)
    return env


class Server:
    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert self.proc.stdout is not None
        self.banner = b""
        deadline = time.monotonic() + 20
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while not (m := LISTEN_RE.search(self.banner)) and time.monotonic() < deadline:
                if not sel.select(max(0.0, deadline - time.monotonic())):
                    break
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                self.banner += chunk
        if m is None:
            self.stop()
            raise AssertionError(f"serve did not start: {self.banner!r}")
        self.port = int(m.group(2))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return rc


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for srv in started:
        srv.stop()


def run(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        chatroom_cmd(*args), env=env, capture_output=True, text=True, timeout=30, cwd=ROOT
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
@pytest.mark.parametrize("where", ["XDG_DATA_HOME", "HOME"])
def test_serve_history_and_db_agree_on_the_default(
    tmp_path: Path, home: Path, servers: list[Server], where: str
) -> None:
    xdg = tmp_path / "xdg" if where == "XDG_DATA_HOME" else None
    env = environment(home, xdg)
    default = (xdg or home / ".local" / "share") / "chatroom" / "chatroom.db"
    # Before anything is served: db names the default and creates nothing.
    assert run(env, "db", "current") == (
        f"{default}: no schema (head is {HEAD}; `chatroom db upgrade` creates it)\n"
    )
    assert not default.exists()

    argv = make_run_command(tmp_path)
    assert "--port" in argv
    argv[argv.index("--port") + 1] = "0"  # make run's own line, on a free port
    exe = ROOT / argv[0]  # the checkout's venv; this interpreter's chatroom without one
    srv = Server([str(exe), *argv[1:]] if exe.exists() else chatroom_cmd(*argv[1:]), env)
    servers.append(srv)
    assert f"{NEW_DATABASE} {default})".encode() in srv.banner, srv.banner
    alice = UdpPeer(("127.0.0.1", srv.port))
    try:
        alice.send("L alice")
        assert alice.recv() == b"OK"
        alice.send("C alice said with the default database")
        alice.send("Q alice")
        assert alice.recv() == b"EXIT"  # handled in order: the message came first
    finally:
        alice.close()

    assert default.is_file()
    assert run(env, "db", "current") == f"{default}: {HEAD} (head)\n"
    said = run(env, "history", "-n", "3").splitlines()
    assert [line.split("  ", 2)[-1] for line in said] == [
        "alice joined",
        "alice : said with the default database",
        "alice left",
    ], said
    assert srv.stop() == 0
    assert run(env, "history", "--count") == "3\n"  # nobody online: no shutdown notice
    # Nothing went anywhere else: the temporary home holds the default and only it.
    stray = [p for p in tmp_path.rglob("*.db") if p != default]
    assert stray == [], stray
