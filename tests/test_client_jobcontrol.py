"""Ctrl-Z and ``fg`` on ``chatroom join`` in a real pty, under a real shell.

The client runs as a job of an interactive bash in a pseudo-terminal (pexpect), as
a user runs it: Ctrl-Z makes the terminal stop its process group (both of the
client's processes), ``fg`` continues it and gives it the terminal back. Another
real client talks meanwhile. Every expect has a timeout; every process started
here is ended and waited for.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from tests.support.pty import (
    TIMEOUT,
    Client,
    InPty,
    Vt,
    children_of,
    process_state,
    terminal_env,
)
from tests.support.server import RUNTIME_DIR, ServerProcess

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("bash") is None, reason="no bash"),
]

PROMPT = "SHELL-READY$ "
#: Short enough to matter: the client heartbeats every 2-2.7 s at this timeout,
#: so a 3 s pause is silence the server notices, and well under what it tolerates.
IDLE_TIMEOUT = 8.0
PAUSE = 3.0


class Shell(InPty):
    """``bash -i`` in a pty: job control as a user has it."""

    def __init__(self) -> None:
        env = terminal_env()
        env.update(PS1=PROMPT, XDG_RUNTIME_DIR=RUNTIME_DIR)
        super().__init__(["bash", "--norc", "--noprofile", "-i"], env)
        self.expect(PROMPT)

    def expect(self, text: str, timeout: float = TIMEOUT) -> str:
        self.wait_for(text, timeout)
        return str(self.proc.before)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            for pid in children_of(self.proc.pid):  # the client, if still there
                for grandchild in children_of(pid):
                    os.kill(grandchild, 9)
                os.kill(pid, 9)
        self.proc.terminate(force=True)
        self.proc.close(force=True)


@pytest.fixture
def shell() -> Iterator[Shell]:
    sh = Shell()
    try:
        yield sh
    finally:
        sh.close()


def test_ctrl_z_then_fg_nothing_lost_and_not_evicted(
    server_factory: Callable[..., ServerProcess], shell: Shell
) -> None:
    srv = server_factory("--idle-timeout", str(IDLE_TIMEOUT))
    alice = Client("alice", srv.port, "--no-color")
    try:
        alice.ready()
        join = [sys.executable, "-m", "chatroom", "join", "bob", "--port", str(srv.port)]
        shell.proc.sendline(" ".join([*join, "--no-color", "--history", "0"]))
        shell.expect(" bob — ")
        shell.expect("#lobby> ")
        alice.expect("bob joined")
        (keyboard,) = children_of(shell.proc.pid)
        (network,) = children_of(keyboard)

        shell.proc.sendcontrol("z")  # the terminal stops the job: both processes
        stopped_at = time.monotonic()
        shell.expect("Stopped")
        shell.expect(PROMPT)
        # The shell reports the job stopped when its leader (the keyboard) is;
        # the network process, signalled with it, may take a moment longer on
        # a busy machine (seen under a CPU hog: 'R' right after the prompt).
        deadline = time.monotonic() + 3.0
        while process_state(network) != "T" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert process_state(keyboard) == process_state(network) == "T"
        for i in range(3):
            alice.sendline(f"said while bob was away {i}")
            alice.said(f"said while bob was away {i}")  # stored and acknowledged
        time.sleep(max(0.0, stopped_at + PAUSE - time.monotonic()))

        shell.proc.sendline("fg")
        for i in range(3):  # what was said meanwhile, in order
            shell.expect(f"bob was away {i}")
        shell.expect("#lobby> ")
        assert process_state(keyboard) != "T" and process_state(network) != "T"
        shell.proc.sendline("back again")
        alice.said("back again")
        shell.expect("bob │ back again")
        shell.proc.sendline("/who")
        shell.expect("in #lobby (2): alice, bob")
        shell.proc.sendline("/quit")
        shell.expect(PROMPT)
        shell.proc.sendline("echo status=$?")
        shell.expect("status=0")
        alice.expect("bob left")
        alice.sendline("/quit")
        assert alice.wait_exit() == 0
    finally:
        alice.close()

    # bob was away for less than the idle timeout: the server kept him.
    assert "bob timed out" not in alice.output
    assert srv.stop() == 0
    with sqlite3.connect(srv.db) as db:
        bobs = db.execute("SELECT kind, text FROM events WHERE name = 'bob' ORDER BY id").fetchall()
    assert bobs == [("join", ""), ("message", "back again"), ("quit", "")]

    # bob's screen: each line once, and nothing typed left over from the pause.
    screen = Vt().feed(shell.output).text()
    for i in range(3):
        assert sum(line.endswith(f"│ said while bob was away {i}") for line in screen) == 1
    assert sum(line.endswith("│ back again") for line in screen) == 1, screen
    leftovers = [line for line in screen if re.search(r"back again$", line) and "│" not in line]
    assert leftovers == [], screen
