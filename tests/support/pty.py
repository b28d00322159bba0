"""Programs in a real pseudo-terminal (pexpect): the client, a shell, the
server's console; a small VT100 to read the screen they leave; the process
table, to check that nothing is left behind (no zombie, no orphan).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from pathlib import Path

import pexpect
from wcwidth import wcwidth

from testkit.processes import chatroom_cmd

TIMEOUT = 10.0  # generous: the machine may be busy; passing tests never wait for it


def terminal_env() -> dict[str, str]:
    """This environment as a user's UTF-8 xterm has it: colours allowed (no
    NO_COLOR), the language left to the program's defaults."""
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "LC_ALL", "LANG")}
    env.update({"TERM": "xterm-256color", "LANG": "C.UTF-8"})
    return env


class InPty:
    """A command in a pty, everything it printed kept in ``raw``."""

    def __init__(
        self,
        cmd: list[str],
        env: dict[str, str],
        *,
        columns: int = 120,
        timeout: float = TIMEOUT,
        label: str = "",
    ) -> None:
        self.label = label
        self.raw: list[str] = []
        self.proc = pexpect.spawn(
            cmd[0], cmd[1:], env=env, encoding="utf-8", timeout=timeout, dimensions=(40, columns)
        )
        self.proc.delaybeforesend = 0.01
        self.proc.logfile_read = _Log(self.raw)

    @property
    def output(self) -> str:
        return "".join(self.raw)

    def wait_for(self, text: str, timeout: float | None = None) -> None:
        """Wait for a literal text (the spawn's timeout by default), or fail
        with the end of the output."""
        try:
            self.proc.expect_exact(text, timeout=-1 if timeout is None else timeout)
        except (pexpect.TIMEOUT, pexpect.EOF) as exc:
            tail = self.output[-1500:]
            raise AssertionError(f"{self.label}no {text!r}; output ends {tail!r}") from exc


class _Log:
    """pexpect's log of what the program printed."""

    def __init__(self, into: list[str]) -> None:
        self.into = into

    def write(self, data: str) -> None:
        self.into.append(data)

    def flush(self) -> None:
        pass


class Client(InPty):
    """One ``chatroom join`` in a pty; its output is kept for inspection. Without
    ``port`` (None), no ``--port`` is added (``--server`` cannot go with it)."""

    def __init__(
        self,
        name: str | None,
        port: int | None,
        *args: str,
        env: dict[str, str] | None = None,
        columns: int = 120,
    ) -> None:
        base = terminal_env()
        base.update(env or {})
        where = ["--port", str(port)] if port is not None else []
        cmd = chatroom_cmd("join", *([name] if name else []), *where, *args)
        self.name = name
        super().__init__(cmd, base, columns=columns, label=f"{name}: ")
        self.proc.delayafterclose = 0.01  # pexpect's default sleeps are for slow hosts
        self._mark = 0

    def expect(self, pattern: str, timeout: float = TIMEOUT) -> str:
        """Wait for a literal text; returns the output up to and including it."""
        self.wait_for(pattern, timeout)
        return str(self.proc.before) + str(self.proc.after)

    def ready(self) -> Client:
        """Wait until logged in: "you are NAME — ..." is printed just before the fork."""
        self.expect(f" {self.name} — ")
        return self

    def sendline(self, text: str) -> None:
        self.proc.sendline(text)

    def network_pid(self) -> int:
        deadline = time.monotonic() + 3
        while not (kids := children_of(self.proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.02)  # the fork follows the login by a moment
        assert len(kids) == 1, kids
        return kids[0]

    def said(self, text: str, timeout: float = TIMEOUT) -> str:
        """Wait until ``text`` comes back from the server as a message line
        (after the column bar, which may be styled), not as typed input."""
        pattern = re.escape("│") + r"(?:\x1b\[0m)? (?:\x1b\[[0-9;]*m)?" + re.escape(text)
        try:
            self.proc.expect(pattern, timeout=timeout)
        except (pexpect.TIMEOUT, pexpect.EOF) as exc:
            tail = self.output[-1500:]
            raise AssertionError(f"{self.name}: no {text!r} said; output ends {tail!r}") from exc
        return str(self.proc.before) + str(self.proc.after)

    def wait_exit(self, timeout: float = 8.0) -> int:
        self.proc.expect(pexpect.EOF, timeout=timeout)
        self.proc.close()
        assert self.proc.exitstatus is not None, f"killed by signal {self.proc.signalstatus}"
        return int(self.proc.exitstatus)

    def close(self) -> None:
        if self.proc.isalive():
            with contextlib.suppress(Exception):
                for pid in children_of(self.proc.pid):
                    os.kill(pid, signal.SIGKILL)
            self.proc.terminate(force=True)
        self.proc.close(force=True)


class ClusterClient(Client):
    """``chatroom join NAME ARGS...`` with every node as ``--server``."""

    def __init__(self, name: str, *args: str) -> None:
        super().__init__(name, None, *args)


CONTROL = re.compile(r"\x1b\[([?0-9;]*)([A-Za-z@])|\x1b[=>]")


class Vt:
    """Just enough of a VT100 to see the screen our client and readline leave:
    printable text (wide characters take two cells), CR, LF, erase in line/display
    and cursor movement. Colours and modes are ignored."""

    def __init__(self, columns: int = 120) -> None:
        self.columns = columns
        self.lines: list[list[str]] = [[]]
        self.row = self.col = 0

    def feed(self, data: str) -> Vt:
        i = 0
        while i < len(data):
            m = CONTROL.match(data, i)
            if m:
                i = m.end()
                arg, cmd = m.group(1) or "", m.group(2)
                n = int(arg) if arg.isdigit() else 1
                line = self.lines[self.row]
                if cmd == "K":
                    del line[self.col :]
                elif cmd == "J":
                    del line[self.col :]
                    del self.lines[self.row + 1 :]
                elif cmd == "A":
                    self.row = max(0, self.row - n)
                elif cmd == "C":
                    self.col = min(self.columns - 1, self.col + n)
                elif cmd == "D":
                    self.col = max(0, self.col - n)
                continue
            ch = data[i]
            i += 1
            if ch == "\r":
                self.col = 0
            elif ch == "\n":
                self.row += 1
                if self.row == len(self.lines):
                    self.lines.append([])
            elif ch == "\b":
                self.col = max(0, self.col - 1)
            elif ch >= " ":
                self._put(ch)
        return self

    def resize(self, columns: int) -> Vt:
        """As xterm does: rows are cut, not reflowed; the cursor stays in its row."""
        self.columns = columns
        self.lines = [line[:columns] for line in self.lines]
        self.col = min(self.col, columns - 1)
        return self

    def _put(self, ch: str) -> None:
        width = max(0, wcwidth(ch))
        if self.col + width > self.columns:
            self.feed("\r\n")
        line = self.lines[self.row]
        line.extend(" " * max(0, self.col - len(line)))
        line[self.col : self.col + width] = [ch] + [""] * (width - 1)
        self.col += width

    def text(self) -> list[str]:
        out = ["".join(line).rstrip() for line in self.lines]
        while out and not out[-1]:
            out.pop()
        return out


def children_of(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            kids.append(int(entry.name))
    return kids


def process_state(pid: int) -> str | None:
    """'R', 'S', 'Z'... or None once the process is gone (reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]
