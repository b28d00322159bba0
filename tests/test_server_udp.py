"""The real server process over real loopback UDP, in the classic dialect."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from chatroom.registry import REGISTRY_KINDS
from testkit.processes import await_banner, stop_process
from tests.support.server import ServerProcess, UdpPeer, start_server

pytestmark = pytest.mark.integration

Peers = Callable[[tuple[str, int]], UdpPeer]


@pytest.mark.parametrize("registry", REGISTRY_KINDS)
def test_classic_session_on_every_registry(
    server_factory: Callable[..., ServerProcess], peers: Peers, registry: str
) -> None:
    srv = server_factory("--registry", registry)
    assert f"registry {registry}".encode() in srv.banner
    alice, bob, carol = peers(srv.addr), peers(srv.addr), peers(srv.addr)
    alice.send("L alice")
    assert alice.recv() == b"OK"
    bob.send("L bob\n")  # netcat adds a newline, and gets whole lines back
    assert bob.recv() == b"OK\n"
    assert alice.recv() == b"bob joined"
    carol.send("L BOB\r\n")
    assert carol.recv() == b"name already taken\n"
    bob.send("C bob hello alice\n")
    assert alice.recv() == b"bob : hello alice"
    bob.recv_none()
    alice.send("C alice hi bob")
    assert bob.recv() == b"alice : hi bob\n"
    bob.send("Q bob")
    assert bob.recv() == b"EXIT"
    assert alice.recv() == b"bob left"


def test_zh_wording(server_factory: Callable[..., ServerProcess], peers: Peers) -> None:
    srv = server_factory("--lang", "zh")
    a, b = peers(srv.addr), peers(srv.addr)
    a.send("L 小明")
    assert a.recv() == b"OK"
    b.send("L 小明")
    assert b.recv() == "该用户已存在".encode()
    b.send("L 小红")
    assert b.recv() == b"OK"
    assert a.recv() == "小红 进入了聊天室".encode()
    b.send("C 小红 你好")
    assert a.recv() == "小红 : 你好".encode()
    b.send("Q 小红")
    assert b.recv() == b"EXIT"
    assert a.recv() == "小红退出了聊天室".encode()


BAD_INPUTS = [
    b"",
    b"\n",
    b"x" * 1201,
    b"x" * 9000,
    b"\xff\xfe\xfd",
    b"L",
    b"C alice",
    b"HELLO",
    b"v2 NOPE",
    b"v2 SAY nosuchsession 1 hi",
    b"C alice \x1b[2J\x1b]0;pwned\x07",
    b"C bob I am not bob",
    b"Q bob",
    b"\x00\x00\x00",
]


def test_bad_input_never_hurts_the_server(server: ServerProcess, peers: Peers) -> None:
    alice, bob, evil = peers(server.addr), peers(server.addr), peers(server.addr)
    alice.send("L alice")
    assert alice.recv() == b"OK"
    bob.send("L bob")
    assert bob.recv() == b"OK"
    assert alice.recv() == b"bob joined"
    for data in BAD_INPUTS:
        alice.send(data)
        evil.send(data)
    time.sleep(0.3)
    bob.recv_none()  # nothing reached the innocent bystander
    # Garbage is dropped; a well-formed frame that cannot be honoured draws one
    # short error, and errors are rate-limited to one a second per address: all
    # of this was sent within milliseconds, so each sender got exactly its first.
    first_error = {
        # A known address: its bare newline is an unknown request.
        "alice": b"ERR unknown request (use L name, C name text or Q name)",
        # A stranger: garbage gets nothing, a well-formed SAY without a session this.
        "evil": b"v2 ERR nosession not logged in; log in again",
    }
    for name, peer in (("alice", alice), ("evil", evil)):
        got = []
        for _ in range(3):
            try:
                got.append(peer.recv(0.3))
            except TimeoutError:
                break
        assert got == [first_error[name]], (name, got)
    # ...and the server still serves.
    alice.send("C alice still here")
    assert bob.recv() == b"alice : still here"
    carol = peers(server.addr)
    carol.send("L carol")
    assert carol.recv() == b"OK"
    assert server.proc.poll() is None
    assert server.stop() == 0
    with sqlite3.connect(server.db) as db:
        rows = db.execute("select kind, name, text from events order by id").fetchall()
        assert db.execute("pragma integrity_check").fetchone() == ("ok",)
    assert ("message", "alice", "still here") in rows
    assert all("pwned" not in (text or "") for _, _, text in rows)


def test_forged_c_and_q_change_nothing_and_draw_the_documented_error(
    server: ServerProcess, peers: Peers
) -> None:
    """docs/protocol.md: a C or Q is honoured only under the name registered at the
    source address; otherwise nothing changes and the sender gets at most one short
    error a second (``ERR not logged in as bob from this address``, ``ERR not
    logged in (send L name first)``)."""
    alice, bob, stranger = peers(server.addr), peers(server.addr), peers(server.addr)
    alice.send("L alice")
    assert alice.recv() == b"OK"
    bob.send("L bob")
    assert bob.recv() == b"OK"
    assert alice.recv() == b"bob joined"
    alice.send("C bob I am not bob")
    alice.send("Q bob")  # within the second: no second error
    assert alice.recv() == b"ERR not logged in as bob from this address"
    stranger.send("C bob forged from nowhere\n")  # netcat: whole lines back
    assert stranger.recv() == b"ERR not logged in (send L name first)\n"
    alice.recv_none(0.5)
    stranger.recv_none()
    bob.recv_none()  # bob saw nothing of it
    # bob is still there, under his name; the next thing alice gets is really his.
    bob.send("C bob still me")
    assert alice.recv() == b"bob : still me"
    assert server.stop() == 0
    with sqlite3.connect(server.db) as db:
        rows = db.execute("SELECT kind, name, text FROM events ORDER BY id").fetchall()
    assert rows == [
        ("join", "alice", ""),
        ("join", "bob", ""),
        ("message", "bob", "still me"),
        ("announce", "", "server shutting down"),
    ]


def test_largest_datagram_is_relayed(server: ServerProcess, peers: Peers) -> None:
    alice, bob = peers(server.addr), peers(server.addr)
    alice.send("L alice")
    bob.send("L bob")
    assert alice.recv() == b"OK" and bob.recv() == b"OK"
    alice.recv()
    text = "é" * (1000 // 2)  # the text limit, in UTF-8 bytes
    bob.send(f"C bob {text}")
    assert alice.recv() == f"bob : {text}".encode()
    longest = "é" * ((1200 - len(b"C bob ")) // 2)  # a full datagram is read and answered
    bob.send(f"C bob {longest}")
    assert bob.recv() == b"ERR message too long (the limit is 1000 bytes of UTF-8)"
    alice.recv_none()


def test_course_reference_client(server: ServerProcess, peers: Peers) -> None:
    """Two copies of the course's own client chat through our server."""
    script = Path(__file__).parent / "support" / "course_client.py"
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), server.host, str(server.port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(2)
    ]
    try:
        a, b = procs
        assert a.stdin and b.stdin
        a.stdin.write("小明\n".encode())
        a.stdin.flush()
        time.sleep(0.3)
        b.stdin.write("小明\n小红\n".encode())
        b.stdin.flush()
        time.sleep(0.5)
        b.stdin.write("大家好\nquit\n".encode())
        b.stdin.flush()
        out_b, _ = b.communicate(timeout=10)
        time.sleep(0.3)
        a.stdin.write(b"quit\n")
        a.stdin.flush()
        out_a, _ = a.communicate(timeout=10)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
    text_a, text_b = out_a.decode(), out_b.decode()
    assert "name already taken" in text_b  # English by default; the reason is shown
    assert "您已进入聊天室" in text_a and "您已进入聊天室" in text_b
    assert "小红 joined" in text_a
    assert "小红 : 大家好" in text_a
    assert "小红 left" in text_a
    assert a.returncode == 1 and b.returncode == 1  # sys.exit("退出聊天室") in the course code


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_announces_and_exits_zero(
    server: ServerProcess, peers: Peers, sig: signal.Signals
) -> None:
    alice = peers(server.addr)
    alice.send("L alice")
    assert alice.recv() == b"OK"
    assert server.stop(sig) == 0
    assert alice.recv() == b"[announcement] server shutting down"
    assert b"stopped" in b"".join(server.output)


def test_no_console_when_stdin_is_not_a_terminal(tmp_path: Path, peers: Peers) -> None:
    """A pipe closed at once (like a service manager's) must not crash or spin."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatroom", "serve", "--port", "0", "--db", str(tmp_path / "c.db")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdin is not None
    proc.stdin.close()
    srv = None
    try:
        line = proc.stdout.readline() if proc.stdout else b""
        assert b"listening on udp://" in line
        port = int(line.split(b"udp://127.0.0.1:")[1].split()[0])
        time.sleep(1.0)
        ticks = sum(int(x) for x in Path(f"/proc/{proc.pid}/stat").read_text().split()[13:15])
        time.sleep(1.0)
        ticks2 = sum(int(x) for x in Path(f"/proc/{proc.pid}/stat").read_text().split()[13:15])
        assert ticks2 - ticks < 20  # < 0.2 s of CPU in 1 s: not spinning
        peer = peers(("127.0.0.1", port))
        peer.send("L alice")
        assert peer.recv() == b"OK"
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
        if proc.stdout:
            proc.stdout.close()
        del srv


def test_port_in_use_is_a_clear_error(server: ServerProcess, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "chatroom",
            "serve",
            "--port",
            str(server.port),
            "--db",
            str(tmp_path / "other.db"),
        ],
        capture_output=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 1
    assert b"cannot listen on udp://127.0.0.1:" in result.stderr
    assert b"Traceback" not in result.stderr
    assert not (tmp_path / "other.db").exists()  # a failed start leaves no empty database


def test_the_banner_says_when_the_database_is_new(tmp_path: Path) -> None:
    """A mistyped --db shows at once: the first start says it created the file."""
    db = tmp_path / "chat.db"
    banners = []
    for _ in range(2):
        proc = subprocess.Popen(
            [sys.executable, "-m", "chatroom", "serve", "--port", "0", "--db", str(db), "-q"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            addr, out = await_banner(proc, 30.0)
            assert addr is not None, out
            banners.append(out.decode())
        finally:
            stop_process(proc)
    assert f", new database {db})" in banners[0]
    assert f", database {db})" in banners[1]


@pytest.mark.parametrize(
    "args",
    [
        ["--port", "70000"],
        ["--registry", "tree"],
        ["--lang", "fr"],
        ["--classic", "maybe"],
        ["--idle-timeout", "0"],
    ],
)
def test_bad_options_are_usage_errors(args: list[str], tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chatroom", "serve", *args, "--db", str(tmp_path / "x.db")],
        capture_output=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2
    assert b"Traceback" not in result.stderr
    assert b"Usage:" in result.stderr


def test_server_restart_keeps_counting(tmp_path: Path, peers: Peers) -> None:
    db = tmp_path / "chat.db"
    first = start_server(db)
    a = peers(first.addr)
    a.send("L alice")
    assert a.recv() == b"OK"
    assert first.stop() == 0
    second = start_server(db)
    try:
        b = peers(second.addr)
        b.send("L alice")
        assert b.recv() == b"OK"
    finally:
        assert second.stop() == 0
    with sqlite3.connect(db) as conn:
        ids = [r[0] for r in conn.execute("select id from events order by id")]
    assert ids == list(range(1, len(ids) + 1))


def test_version_and_module_entry() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "chatroom", "--version"], capture_output=True, timeout=30, check=True
    )
    assert out.stdout.startswith(b"chatroom, version ")
    assert os.path.exists(Path(sys.executable).parent / "chatroom")


def test_announce_reaches_everyone_through_the_control_socket(
    server_factory: Callable[..., ServerProcess], peers: Peers
) -> None:
    runtime = Path(tempfile.mkdtemp(prefix="cr-"))
    env = {"XDG_RUNTIME_DIR": str(runtime)}
    try:
        srv = server_factory(env=env)
        sock = runtime / "chatroom" / f"control-{srv.port}.sock"
        assert oct(sock.stat().st_mode & 0o777) == "0o600"
        a, b = peers(srv.addr), peers(srv.addr)
        a.send("L alice")
        b.send("L bob")
        assert a.recv() == b"OK" and b.recv() == b"OK"
        a.recv()
        result = subprocess.run(
            [sys.executable, "-m", "chatroom", "announce", "--port", str(srv.port), "tea", "time"],
            capture_output=True,
            timeout=30,
            env={**os.environ, **env},
        )
        assert result.returncode == 0, result.stderr
        assert b"announced to 2 user(s)" in result.stdout
        assert a.recv() == b"[announcement] tea time"
        assert b.recv() == b"[announcement] tea time"
        # A client cannot fake one: the operator's name is reserved and C is per-address.
        a.send("C \u7ba1\u7406\u5458\u6d88\u606f free pizza")
        b.recv_none()
        assert srv.stop() == 0
        assert not sock.exists()
        missing = subprocess.run(
            [sys.executable, "-m", "chatroom", "announce", "--port", str(srv.port), "hi"],
            capture_output=True,
            timeout=30,
            env={**os.environ, **env},
        )
        assert missing.returncode == 1
        assert b"no chatroom server on port" in missing.stderr
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
