"""The product as a normal (non-editable) install gets it: build the wheel, install it
into a fresh venv, and run every command from a directory far from the checkout.

A checkout hides packaging mistakes (the repository's alembic/ sits next to storage/),
so this is the only test that sees what `pip install .` and `pipx install .` give.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from testkit.processes import LISTEN_RE
from tests.support.server import RUNTIME_DIR

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
#: What the build reads. Copied, not built in place: setuptools writes build/ and
#: chatroom.egg-info/ into the source tree, which concurrent runs would share.
SOURCES = ("pyproject.toml", "setup.py", "README.md", "chatroom", "storage", "alembic")
#: Building and installing need the package index (as `make test`'s own install does).
PIP_TIMEOUT = 300
RUN_TIMEOUT = 60


@dataclass
class Installed:
    wheel: Path
    venv: Path
    elsewhere: Path  # a working directory with nothing of the checkout in it

    @property
    def dist_info(self) -> str:
        name, version = self.wheel.name.split("-")[:2]
        return f"{name}-{version}.dist-info"

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env |= {
            "PATH": f"{self.bin}{os.pathsep}{env.get('PATH', '')}",
            "XDG_RUNTIME_DIR": RUNTIME_DIR,
            "XDG_DATA_HOME": str(self.elsewhere / "data"),
            **extra,
        }
        return env

    def run(self, *argv: str | Path, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(a) for a in argv],
            cwd=self.elsewhere,
            env=self.env(**extra),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
        )

    def chatroom(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        result = self.run(self.bin / "chatroom", *args)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result


def _pip(*args: str | Path) -> None:
    # The test venv's pip also installs into the new venv (--python), which is made
    # without a pip of its own: a few seconds less than ensurepip.
    subprocess.run(
        [sys.executable, "-m", "pip", *map(str, args)],
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=PIP_TIMEOUT,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    junk = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SOURCES:
        if not (ROOT / name).exists():
            continue
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=junk)
        else:
            shutil.copy2(ROOT / name, src / name)
    _pip("wheel", "-q", "--no-deps", "-w", tmp / "dist", src)
    (wheel,) = (tmp / "dist").glob("chatroom-*.whl")
    venv = tmp / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", venv],
        check=True,
        capture_output=True,
        timeout=RUN_TIMEOUT,
    )
    _pip("--python", venv / "bin" / "python", "install", "-q", wheel)
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    return Installed(wheel, venv, elsewhere)


def test_wheel_ships_the_migrations_inside_storage_and_every_module(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    # Never a top-level alembic/: it would shadow the Alembic library.
    assert not [n for n in names if n.startswith("alembic/")]
    shipped = {n.removeprefix("storage/_alembic/") for n in names if "/_alembic/" in n}
    repo = {
        p.relative_to(ROOT / "alembic").as_posix()
        for p in (ROOT / "alembic").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert shipped == repo
    # Every module of the checkout, and nothing of the tests or benchmarks.
    modules = {
        p.relative_to(ROOT).as_posix()
        for top in ("chatroom", "storage")
        for p in (ROOT / top).rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert modules <= names, f"not in the wheel (see setup.py): {modules - names}"
    assert {n.split("/")[0] for n in names} == {"chatroom", "storage", installed.dist_info}


@contextmanager
def serving(installed: Installed, db: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """The installed `chatroom serve` on port 0, once it says it is listening."""
    proc = subprocess.Popen(
        [installed.bin / "chatroom", "serve", "--port", "0", "--db", db],
        cwd=installed.elsewhere,
        env=installed.env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert proc.stdout is not None
        buf = b""
        deadline = time.monotonic() + 20
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while not (m := LISTEN_RE.search(buf)) and time.monotonic() < deadline:
                if sel.select(max(0.0, deadline - time.monotonic())):
                    chunk = os.read(proc.stdout.fileno(), 4096)
                    if not chunk:
                        break
                    buf += chunk
        assert m, f"serve did not start: {buf!r}"
        yield proc, int(m.group(2))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


def test_installed_wheel_runs_every_command_from_elsewhere(installed: Installed) -> None:
    # The migrations are the wheel's own, not a checkout's.
    where = installed.run(
        installed.bin / "python", "-c", "from storage.migrations import ALEMBIC_DIR as d; print(d)"
    )
    assert Path(where.stdout.strip()).is_relative_to(installed.venv), where

    db = installed.elsewhere / "w.db"
    assert "-> 0005" in installed.chatroom("db", "upgrade", "--db", db).stdout
    assert "(head)" in installed.chatroom("db", "current", "--db", db).stdout

    with serving(installed, db) as (proc, port), socket.socket(type=socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        for line, reply in (
            ("L alice", b"OK"),
            ("C alice said from a wheel", None),
            ("Q alice", b"EXIT"),
        ):
            sock.sendto(line.encode(), ("127.0.0.1", port))
            if reply is not None:
                assert sock.recvfrom(4096)[0] == reply
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0

    rows = json.loads(installed.chatroom("history", "--db", db, "-n", "0", "--json").stdout)
    assert ("message", "alice", "said from a wheel") in [
        (r["kind"], r["name"], r["text"]) for r in rows
    ]
    assert "Usage: chatroom join" in installed.chatroom("join", "--help").stdout
    module = installed.run(installed.bin / "python", "-m", "chatroom", "--help")
    assert module.returncode == 0, module.stderr
    assert "history" in module.stdout
    complete = installed.run(
        installed.bin / "chatroom",
        _CHATROOM_COMPLETE="bash_complete",
        COMP_WORDS="chatroom hi",
        COMP_CWORD="1",
    )
    assert complete.stdout.split() == ["plain,history"], complete
