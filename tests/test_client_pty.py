"""``chatroom join`` in a real pseudo-terminal against a real ``chatroom serve``.

Each test starts its own server on port 0 (tests/conftest.py) and drives the
client with pexpect: every expect has a timeout, every process started here is
waited for, and the process table is checked for the client's network process
after it ends (no zombie, no orphan).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import pexpect
import pytest

from testkit.processes import chatroom_cmd
from tests.support.pty import Client, Vt, process_state
from tests.support.server import ServerProcess, UdpPeer

pytestmark = pytest.mark.integration

ANSI_SGR = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    live = [c for c in made if not c.proc.closed and c.proc.isalive()]
    for c in live:  # all at once: SIGHUP makes a client leave as if told /quit
        with contextlib.suppress(OSError):
            c.proc.kill(signal.SIGHUP)
    for c in live:
        with contextlib.suppress(pexpect.ExceptionPexpect):
            c.proc.expect(pexpect.EOF, timeout=5)
    for c in made:
        c.close()
    for c in made:  # e.g. "Exception ignored on calling ctypes callback function"
        assert "Traceback" not in c.output, (c.name, c.output[-4000:].replace("\r", ""))


@pytest.fixture
def join(server: ServerProcess, clients: list[Client]):  # type: ignore[no-untyped-def]
    def start(name: str | None, *args: str, wait: bool = True, **kw: object) -> Client:
        """Start a client; ``wait=False`` returns at once (call ``ready()``), so that
        several can start up in parallel when their login order does not matter."""
        c = Client(name, server.port, *args, **kw)  # type: ignore[arg-type]
        clients.append(c)
        return c.ready() if wait and name is not None else c

    return start


# ------------------------------------------------------------------ chatting


def test_two_users_chat_act_and_see_who_is_online(join) -> None:  # type: ignore[no-untyped-def]
    alice, bob = join("alice", wait=False), join("bob")
    alice.ready().expect("bob joined")  # live, or replayed if bob was quicker
    alice.sendline("hello bob")
    bob.expect("hello bob")
    alice.said("hello bob")  # own message, once the server has it
    bob.sendline("/me waves")
    alice.expect("* bob waves")
    for c in (alice, bob):
        c.sendline("/who")
        c.expect("in #lobby (2): ")
        c.proc.expect(r"(alice, bob|bob, alice)")


def test_typing_interrupted_by_incoming_message_keeps_the_text(join) -> None:  # type: ignore[no-untyped-def]
    alice, bob = join("alice", wait=False), join("bob")
    alice.ready().expect("bob joined")
    alice.proc.send("hello th")
    alice.expect("hello th")  # echoed by readline
    bob.sendline("interruption")
    alice.expect("interruption")
    alice.expect("#lobby> hello th")  # the prompt and the typed text are redrawn
    screen = Vt().feed(alice.output).text()
    assert screen[-1] == "#lobby> hello th"
    assert screen[-2].endswith("bob │ interruption")
    assert not [line for line in screen[:-1] if "hello th" in line], screen
    alice.proc.send("ere bob\r")
    bob.said("hello there bob")  # what the other side receives: the whole line
    alice.said("hello there bob")
    alice.expect("#lobby> ")
    screen = Vt().feed(alice.output).text()
    assert screen[-1] == "#lobby>"
    assert screen[-2].endswith("alice │ hello there bob")
    assert not [line for line in screen if "#lobby> hello" in line], "the echo was erased"


def _interrupt_typing(join, typed: str, keys: str = "") -> tuple[Client, list[str]]:  # type: ignore[no-untyped-def]
    """alice has ``typed`` (then ``keys``, e.g. cursor movement) without pressing
    Enter when bob's message arrives; returns alice and her screen afterwards."""
    alice, bob = join("alice", wait=False), join("bob")
    alice.ready().expect("bob joined")
    alice.proc.send(typed)
    alice.expect(typed[-8:])  # echoed by readline
    if keys:
        alice.proc.send(keys)
        time.sleep(0.3)
    bob.sendline("interruption")
    alice.said("interruption")
    alice.expect(typed[-8:])  # the prompt and the typed text are redrawn
    time.sleep(0.3)
    alice.proc.expect(pexpect.TIMEOUT, timeout=0.1)  # read what is there
    return alice, Vt().feed(alice.output).text()


def _rows(text: str, columns: int = 120) -> list[str]:
    """``text`` as a terminal of ``columns`` columns wraps it."""
    vt = Vt(columns).feed(text)
    return vt.text()


@pytest.mark.parametrize(
    "typed",
    [
        "".join(chr(ord("a") + i % 26) for i in range(150)),  # 158 columns: 2 rows
        "".join(chr(0x4E00 + i) for i in range(130)),  # 130 wide characters: 3 rows
        "x" * 112,  # exactly one full row: the cursor sits on the next one
    ],
    ids=["ascii-2-rows", "cjk-3-rows", "exactly-full-row"],
)
def test_a_wrapped_half_typed_line_is_cleared_before_an_incoming_message(
    join,  # type: ignore[no-untyped-def]
    typed: str,
) -> None:
    _, screen = _interrupt_typing(join, typed)
    rows = _rows("#lobby> " + typed)
    assert screen[-len(rows) :] == rows, screen[-6:]
    assert screen[-len(rows) - 1].endswith("bob │ interruption"), screen[-6:]
    above = screen[: -len(rows) - 1]
    assert not [line for line in above if typed[:5] in line or typed[-5:] in line], above[-4:]


def test_a_wrapped_line_with_the_cursor_moved_back_is_cleared_too(join) -> None:  # type: ignore[no-untyped-def]
    typed = "".join(chr(ord("a") + i % 26) for i in range(250))  # 258 columns: 3 rows
    alice, screen = _interrupt_typing(join, typed, keys="\x01\x1bf")  # Home, word right
    rows = _rows("#lobby> " + typed)
    assert screen[-len(rows) :] == rows, screen[-6:]
    assert screen[-len(rows) - 1].endswith("bob │ interruption"), screen[-6:]
    assert not [line for line in screen[: -len(rows) - 1] if typed[:5] in line]
    alice.proc.send("\r")
    alice.said(typed[:50])  # still one line, sent whole
    alice.expect("#lobby> ")
    screen = Vt().feed(alice.output).text()
    assert screen[-1] == "#lobby>"
    assert not [line for line in screen if line.startswith("#lobby> a")], "the echo was erased"


@pytest.mark.parametrize(
    "typed",
    ["x" * 112, "a" + "".join(chr(0x4E00 + i) for i in range(56))],  # row full; 1 column left
    ids=["exactly-full-row", "wide-char-does-not-fit"],
)
def test_the_echo_of_a_line_filling_a_row_is_erased(join, typed: str) -> None:  # type: ignore[no-untyped-def]
    alice = join("alice")
    alice.proc.send(typed)
    alice.expect(typed[-1])  # readline pads the row a wide character does not fit on
    time.sleep(0.2)
    alice.proc.send("\r")
    alice.said(typed[:20])
    alice.expect("#lobby> ")
    time.sleep(0.2)
    alice.proc.expect(pexpect.TIMEOUT, timeout=0.1)
    screen = Vt().feed(alice.output).text()
    assert screen[-1] == "#lobby>", screen[-4:]
    assert not [line for line in screen if line.startswith("#lobby> " + typed[:3])], screen[-4:]


def test_ctrl_c_clears_a_wrapped_half_typed_line(join) -> None:  # type: ignore[no-untyped-def]
    alice = join("alice")
    typed = "".join(chr(ord("a") + i % 26) for i in range(250))  # 3 rows
    alice.proc.send(typed)
    alice.expect(typed[-8:])
    alice.proc.send("\x01")  # the cursor back on the first row
    time.sleep(0.2)
    alice.proc.sendcontrol("c")
    assert alice.wait_exit() == 0
    screen = Vt().feed(alice.output).text()
    assert not [line for line in screen if typed[:5] in line or typed[-5:] in line], screen[-4:]


def test_a_wrapped_line_after_the_terminal_narrows(join) -> None:  # type: ignore[no-untyped-def]
    alice, bob = join("alice", wait=False), join("bob")
    alice.ready().expect("bob joined")
    typed = "".join(chr(ord("a") + i % 26) for i in range(150))
    alice.proc.send(typed)
    alice.expect(typed[-8:])
    time.sleep(0.2)
    alice.proc.expect(pexpect.TIMEOUT, timeout=0.1)  # read all that was drawn at 120
    before = alice.output
    alice.proc.setwinsize(40, 100)  # SIGWINCH: readline lays the line out again
    time.sleep(0.3)
    bob.sendline("interruption")
    alice.said("interruption")
    alice.expect(typed[-8:])
    time.sleep(0.3)
    alice.proc.expect(pexpect.TIMEOUT, timeout=0.1)
    screen = Vt().feed(before).resize(100).feed(alice.output[len(before) :]).text()
    rows = _rows("#lobby> " + typed, 100)
    assert screen[-len(rows) :] == rows, screen[-6:]
    assert screen[-len(rows) - 1].endswith("bob │ interruption"), screen[-6:]
    above = screen[: -len(rows) - 1]
    assert not [line for line in above if typed[:5] in line or typed[-5:] in line], above[-4:]


@pytest.mark.slow
def test_history_shows_the_last_five_events(join) -> None:  # type: ignore[no-untyped-def]
    alice = join("alice")
    for i in range(6):
        alice.sendline(f"message number {i}")
        alice.said(f"message number {i}")  # stored (the rate limit paces the last ones)
    bob = join("bob", "--history", "0")
    bob.expect("bob joined")
    bob.sendline("/history 5")
    bob.expect("the last 5 event")  # the last 5 of the room, bob's own join the newest
    shown = bob.said("bob joined")
    for i in (2, 3, 4, 5):
        assert f"message number {i}" in shown
    assert "message number 0" not in bob.output
    assert "message number 1" not in bob.output
    assert not re.search(r"\d{4}-\d\d-\d\d", shown), "from today: not dated"
    assert "\x1b[2mmessage number 3" in shown, "dimmed"


def test_history_replayed_on_join(join) -> None:  # type: ignore[no-untyped-def]
    alice = join("alice")
    alice.sendline("before bob came")
    alice.said("before bob came")
    bob = join("bob", "--history", "5")
    out = bob.expect("bob joined")
    assert "before bob came" in out
    assert "\x1b[2mbefore bob came" in out, "history is dimmed"
    screen = Vt().feed(bob.output).text()
    (replayed,) = [line for line in screen if line.endswith("│ before bob came")]
    (live,) = [line for line in screen if line.endswith("│ bob joined")]
    assert re.match(r"\d\d:\d\d +alice │", replayed), "from today: the time, no date"
    assert replayed.index("│") == live.index("│"), "history lines up with live lines"


def test_piped_input_shows_the_history_and_what_it_said(join, server: ServerProcess) -> None:  # type: ignore[no-untyped-def]
    alice = join("alice")
    alice.sendline("said before")
    alice.said("said before")
    for attempt in range(3):  # the outcome used to depend on timing: try it a few times
        start = time.monotonic()
        done = subprocess.run(
            chatroom_cmd("join", "--port", str(server.port), "--history", "2", f"pipey{attempt}"),
            input=f"hello {attempt}\nsecond {attempt}\n",
            capture_output=True,
            text=True,
            timeout=15,
        )
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert "\x1b" not in done.stdout
        said = [i for i, line in enumerate(lines) if line.endswith(f"│ hello {attempt}")]
        second = [i for i, line in enumerate(lines) if line.endswith(f"│ second {attempt}")]
        replayed = [i for i, line in enumerate(lines) if "│" in line and "said before" in line]
        assert said and second and said[0] < second[0], lines
        if attempt == 0:
            assert replayed and replayed[0] < said[0], lines
        assert not [line for line in lines if "not delivered" in line], lines
        assert time.monotonic() - start < 5
        alice.said(f"second {attempt}")


def test_a_refused_name_with_no_other_to_try_exits_1(join, server: ServerProcess) -> None:  # type: ignore[no-untyped-def]
    """A script (stdin not a terminal, nothing more to read) must see that it did
    not join: a taken name and an invalid one both end with exit status 1."""
    join("alice")
    for name, why in (("alice", "name already taken"), ("a b", "name refused")):
        done = subprocess.run(
            chatroom_cmd("join", "--port", str(server.port), name),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=15,
        )
        assert done.returncode == 1, (name, done.stdout, done.stderr)
        assert why in done.stderr


@pytest.mark.slow
def test_piped_lines_all_go_out_at_the_servers_rate(server: ServerProcess) -> None:
    # The server's rate limit (5/1: a burst, then one a second) spreads 10 lines
    # over ~6.5 s: longer than a person's 1.5 s on leaving and than the keyboard
    # process's 4 s (+ 0.5 s) for the network process to exit.
    start = time.monotonic()
    done = subprocess.run(
        chatroom_cmd("join", "--port", str(server.port), "--history", "0", "bot"),
        input="".join(f"line {i}\n" for i in range(10)),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    said = [line.split("│ ")[-1] for line in done.stdout.splitlines() if " bot │ " in line]
    assert said == [f"line {i}" for i in range(10)], done.stdout
    assert "not delivered" not in done.stdout
    assert time.monotonic() - start > 5  # paced by the server, as it should be


def test_no_color_and_dumb_terminal(join) -> None:  # type: ignore[no-untyped-def]
    alice = join("alice", wait=False)
    bob = join("bob", env={"NO_COLOR": "1"}, wait=False)
    carol = join("carol", env={"TERM": "dumb"}, wait=False)
    dave = join("dave", "--no-color", wait=False)
    for c in (alice, bob, carol, dave):
        c.ready()
    bob.expect("dave joined")
    alice.sendline("colourless?")
    for c in (bob, carol, dave):
        c.said("colourless?")
    bob.sendline("/who")
    bob.expect("in #lobby (4): ")
    # What may remain with NO_COLOR is line editing, ours and readline's: CR +
    # erase line, (cursor up +) erase below (the input line, the echoed input),
    # cursor left/right, readline's bracketed-paste and keypad mode switches.
    # Nothing else, and no SGR (colour, bold, dim) at all.
    allowed = re.compile(
        r"\x1b\[K|(?:\x1b\[\d*A)?\r?\x1b\[J|\x1b\[\d*[CD]|\x1b\[\?2004[hl]|\x1b\[\?1[hl]|\x1b[=>]"
    )
    for c in (bob, dave):
        assert not ANSI_SGR.search(c.output), c.name
        assert "\x1b" not in allowed.sub("", c.output), c.name
    assert "\x1b" not in carol.output, "TERM=dumb: plain text only"
    assert ANSI_SGR.search(alice.output), "colour otherwise"


def test_chinese(join, server: ServerProcess) -> None:  # type: ignore[no-untyped-def]
    bob = join("bob", "--lang", "zh", wait=False)
    carol = join("carol", env={"LANG": "zh_CN.UTF-8"}, wait=False)  # from the locale
    alice = join("alice", wait=False)
    for c in (alice, bob, carol):
        c.ready()
    bob.expect("alice 进入了聊天室")
    carol.expect("alice 进入了聊天室")
    alice.sendline("你好, 世界 🌏")
    bob.said("你好, 世界 🌏")
    subprocess.run(
        chatroom_cmd("announce", "--port", str(server.port), "下午三点开会"),
        check=True,
        timeout=10,
        capture_output=True,
    )
    bob.expect("管理员消息: 下午三点开会")
    alice.expect("[announcement] 下午三点开会")
    carol.sendline("/frobnicate")
    carol.expect("未知命令 /frobnicate")
    alice.sendline("/quit")
    assert alice.wait_exit() == 0
    bob.expect("alice退出了聊天室")


def test_commands_help_and_size_limit(join) -> None:  # type: ignore[no-untyped-def]
    alice, bob = join("alice", wait=False), join("bob")
    alice.ready().expect("bob joined")
    alice.sendline("/frobnicate")
    alice.expect("unknown command /frobnicate — type /help")
    alice.sendline("/help")
    alice.expect("/history [N]")
    alice.sendline("x" * 1300)
    alice.expect("not sent: the message is 1300 bytes; the limit is")
    alice.sendline("short one")
    bob.said("short one")
    assert "xxxxxxxxxx" not in bob.output


def test_tab_completes_commands_and_names(join) -> None:  # type: ignore[no-untyped-def]
    alice, _ = join("alice", wait=False), join("bobby")
    alice.ready().expect("bobby joined")
    alice.proc.send("/wh\t")
    alice.expect("/who")
    alice.proc.send("\r")
    alice.expect("in #lobby (2)")
    alice.proc.send("hi bo\t")
    alice.expect("hi bobby")


def test_rooms_the_prompt_and_direct_messages(join, server: ServerProcess) -> None:  # type: ignore[no-untyped-def]
    """Two real clients and a netcat-style classic peer across #lobby, #dev and
    direct messages: each sees what it should, and nothing else."""
    with contextlib.closing(UdpPeer(server.addr)) as carol:  # classic, in #lobby only
        _rooms_and_direct_messages(join, carol)


def _rooms_and_direct_messages(join, carol: UdpPeer) -> None:  # type: ignore[no-untyped-def]
    carol.send("L carol\n")
    assert carol.recv() == b"OK\n"
    alice, bob = join("alice", "--no-color", wait=False), join("bob", "--no-color")
    alice.ready().expect("bob joined")
    carol.send("C carol hi from netcat\n")
    alice.said("hi from netcat")
    bob.said("hi from netcat")
    alice.sendline("/join #dev")
    alice.expect("now talking in #dev")
    alice.expect("#dev> ")  # the prompt follows the current room
    alice.sendline("in dev")
    alice.said("in dev")
    bob.sendline("in the lobby")
    alice.said("[#lobby] in the lobby")  # from a room other than the current one
    bob.sendline("/msg alice psst")
    alice.expect("bob → │ psst")
    bob.expect("→ alice │ psst")
    alice.sendline("/reply got it")
    bob.expect("alice → │ got it")
    bob.sendline("/msg carol anyone?")  # carol is online, in netcat: no DMs there
    bob.expect("carol uses nc (the classic dialect): no direct messages")
    bob.expect("not sent: anyone?")
    assert "in dev" not in bob.output  # bob is not in #dev
    alice.proc.send("/join #l\t")
    alice.expect("#lobby")
    alice.proc.send("\r")
    alice.expect("#lobby> ")
    alice.sendline("/part #dev")
    alice.expect("you left #dev")
    alice.sendline("/part")
    alice.expect("/join #room to join one")
    alice.expect("alice> ")  # in no room
    # The classic peer saw the lobby, and nothing of #dev or the direct messages.
    seen: list[bytes] = []
    with contextlib.suppress(TimeoutError):
        while True:
            seen.append(carol.recv(0.5))
    lines = [line.decode().rstrip("\n") for line in seen]
    assert sorted(lines[:2]) == ["alice joined", "bob joined"], lines  # either may be first
    assert lines[2:] == ["bob : in the lobby", "alice left"], lines


def test_starting_in_a_room(join) -> None:  # type: ignore[no-untyped-def]
    alice = join("alice", "--room", "dev")
    alice.expect("#dev> ")
    alice.sendline("first in dev")
    alice.said("first in dev")
    bob = join("bob", "--room", "#dev", "--history", "5", "--no-color")
    bob.expect("alice │ first in dev")  # its history replayed
    bob.expect("#dev> ")


def test_refused_name_is_asked_again(join) -> None:  # type: ignore[no-untyped-def]
    join("alice")
    second = join(None, "--history", "0")
    second.expect("your name: ")
    second.sendline("ALICE")
    second.expect("name refused: name already taken")
    second.expect("your name: ")
    second.sendline("has space")
    second.expect("name refused: invalid name")
    second.sendline("carol")
    second.expect("#lobby> ")


def test_a_refused_name_is_worded_in_chinese(join) -> None:  # type: ignore[no-untyped-def]
    # The server answers in English (its --lang); the refusal's code is on the
    # wire, so the client words it in its own language instead of mixing them.
    join("alice")
    second = join(None, "--history", "0", env={"LANG": "zh_CN.UTF-8"})
    second.expect("请输入姓名: ")
    second.sendline("ALICE")
    second.expect("无法使用该名字: 该用户已存在")
    second.sendline("has space")
    second.expect("无法使用该名字: 用户名无效")
    second.sendline("carol")
    second.expect("#lobby> ")
    assert "name already taken" not in second.output
    assert "invalid name" not in second.output


# ------------------------------------------------------------------ leaving


@pytest.mark.slow
def test_each_way_out_exits_0_tells_others_and_leaves_no_process(join) -> None:  # type: ignore[no-untyped-def]
    alice = join("alice")
    for how in ("quit", "/quit", "ctrl-d", "ctrl-c"):
        bob = join("bob")
        alice.expect("bob joined")
        net = bob.network_pid()
        bob.proc.send("half typed")  # a half-typed line must not get in the way
        bob.expect("half typed")
        match how:
            case "ctrl-d":
                bob.proc.sendcontrol("u")
                bob.proc.sendcontrol("d")
            case "ctrl-c":
                bob.proc.sendcontrol("c")
            case _:
                bob.proc.sendcontrol("u")
                bob.sendline(how)
        assert bob.wait_exit() == 0, how
        alice.expect("bob left")
        assert process_state(net) is None, f"{how}: the network process was reaped"


def test_a_redraw_signal_pending_with_a_quit_signal_does_not_crash(join) -> None:  # type: ignore[no-untyped-def]
    # Python's input() runs the handlers of signals still pending after one
    # raised, with that exception set: the redraw must then do nothing at all.
    alice = join("alice")
    alice.expect("#lobby> ")  # the keyboard process is in input()
    time.sleep(0.2)
    pid = alice.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        os.kill(pid, signal.SIGUSR1)  # as if the network process had printed
        os.kill(pid, signal.SIGHUP)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert alice.wait_exit() == 0
    assert "Traceback" not in alice.output and "SystemError" not in alice.output


def test_network_process_exits_within_1s_when_keyboard_process_is_killed(join) -> None:  # type: ignore[no-untyped-def]
    alice, bob = join("alice", wait=False), join("bob")
    alice.ready().expect("bob joined")
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_CHILD_SUBREAPER = 36
    # Become the orphan's new parent so that we can reap it and check it is no
    # zombie (this machine's pid 1 may not reap); undone at the end.
    net = bob.network_pid()
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    try:
        os.kill(bob.proc.pid, signal.SIGKILL)
        start = time.monotonic()
        reaped = False
        while time.monotonic() - start < 1.0:
            with contextlib.suppress(ChildProcessError):
                pid, _ = os.waitpid(net, os.WNOHANG)
                if pid == net:
                    reaped = True
                    break
            time.sleep(0.01)
        assert reaped, f"network process still {process_state(net)} after 1 s"
        assert process_state(net) is None
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
    alice.expect("bob left")  # it even said goodbye on its way out
    bob.proc.close(force=True)


def test_keyboard_process_reports_a_dead_network_process(join) -> None:  # type: ignore[no-untyped-def]
    alice = join("alice")
    net = alice.network_pid()
    os.kill(net, signal.SIGKILL)
    alice.expect("the network process ended unexpectedly")
    assert alice.wait_exit() == 1
    assert process_state(net) is None


@pytest.mark.slow
def test_no_server_clear_message_exit_1() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # a port nobody listens on
    c = Client("alice", port)
    try:
        start = time.monotonic()
        c.expect(f"no answer from 127.0.0.1:{port} — is chatroom serve running?", timeout=8)
        assert c.wait_exit() == 1
        assert time.monotonic() - start < 6
        assert "Traceback" not in c.output
    finally:
        c.close()


@pytest.mark.slow
def test_an_idle_client_notices_the_server_shutting_down_in_seconds(
    join, server: ServerProcess
) -> None:  # type: ignore[no-untyped-def]
    alice = join("alice")
    alice.expect("#lobby> ")
    time.sleep(0.5)
    assert server.stop() == 0
    alice.expect("server shutting down")
    start = time.monotonic()
    alice.expect("connection lost — retrying…", timeout=8)  # not at the next heartbeat
    assert time.monotonic() - start < 7


@pytest.mark.slow
def test_a_line_typed_during_an_outage_is_shown_pending_then_delivered(
    join, server: ServerProcess
) -> None:  # type: ignore[no-untyped-def]
    alice, bob = join("alice", wait=False), join("bob")
    alice.ready().expect("bob joined")
    alice.sendline("all is well")
    bob.said("all is well")
    alice.said("all is well")
    os.kill(server.proc.pid, signal.SIGSTOP)  # the server stops answering
    try:
        alice.sendline("first in the dark")
        start = time.monotonic()
        alice.expect("… sending")  # it waited a second: shown, marked
        assert time.monotonic() - start < 4, "before the connection is declared lost"
        alice.expect("connection lost — retrying…", timeout=10)
        alice.sendline("second in the dark")
        start = time.monotonic()
        alice.expect("second in the dark")
        alice.expect("… sending")  # the connection is lost: shown at once
        assert time.monotonic() - start < 0.9, "at once, not after pending_after (1 s)"
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
    alice.expect("reconnected", timeout=10)
    for _ in range(2):
        alice.expect("✓ delivered")
    bob.said("second in the dark")
    time.sleep(0.3)
    alice.proc.expect(pexpect.TIMEOUT, timeout=0.2)  # read what is there
    screen = Vt().feed(alice.output).text()
    said = [line.split(" │ ", 1)[1] for line in screen if " alice │ " in line]
    assert said == [
        "all is well",  # normal chat: as it always was, no mark
        "first in the dark  … sending",
        "second in the dark  … sending",
        "first in the dark  ✓ delivered",
        "second in the dark  ✓ delivered",
    ], screen[-12:]
    assert screen[-1] == "#lobby>", "the prompt, no echo left behind"
    assert "\x1b[2mfirst in the dark" in alice.output, "the pending line is dimmed"
    bob_screen = Vt().feed(bob.output).text()
    assert not [line for line in bob_screen if "sending" in line or "delivered" in line]


@pytest.mark.slow
def test_a_pending_line_never_delivered_is_marked_failed(join, server: ServerProcess) -> None:  # type: ignore[no-untyped-def]
    alice = join("alice", "--give-up-after", "2", "--lang", "zh")
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        alice.sendline("into the void")
        alice.expect("… 发送中")
        alice.expect("发送失败 (多次重试后放弃): into the void", timeout=8)
        alice.sendline("/quit")
        assert alice.wait_exit() == 0  # before the server hears of it again
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
    screen = Vt().feed(alice.output).text()
    assert [line for line in screen if "into the void" in line][-1].endswith(
        "发送失败 (多次重试后放弃): into the void"
    )
    assert "已送达" not in alice.output


@pytest.mark.slow
def test_server_restart_connection_lost_then_resumed_nothing_lost_or_repeated(
    server_factory,
    clients: list[Client],  # type: ignore[no-untyped-def]
) -> None:
    first = server_factory()
    alice = Client("alice", first.port)
    bob = Client("bob", first.port)
    clients += [alice, bob]
    alice.ready()
    bob.ready()
    alice.sendline("before the restart")
    bob.said("before the restart")
    assert first.stop() == 0
    bob.expect("server shutting down")
    alice.sendline("during the outage")  # held and retried: nobody is listening
    alice.expect("connection lost — retrying…", timeout=8)
    server_factory("--port", str(first.port), db=first.db)  # back, from the same database
    alice.expect("reconnected", timeout=8)
    bob.sendline("/who")  # bob had nothing in flight: his next request finds out
    bob.expect("reconnected")
    alice.expect("✓ delivered", timeout=8)  # it was shown pending meanwhile
    bob.said("during the outage", timeout=8)
    time.sleep(0.5)
    for c in (alice, bob):
        c.proc.expect(pexpect.TIMEOUT, timeout=0.2)  # read what is there
        screen = "\n".join(Vt().feed(c.output).text())
        assert screen.count("before the restart") == 1, c.name
        outage = [line for line in screen.splitlines() if "│ during the outage" in line]
        marks = [line.split("during the outage", 1)[1].strip() for line in outage]
        # alice's line waited: shown pending, then delivered; nobody else sees that
        assert marks == (["… sending", "✓ delivered"] if c is alice else [""]), c.name
