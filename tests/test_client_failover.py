"""``chatroom join --server A --server B``: several servers, one chat.

The switching decision itself is tested without sockets in
tests/test_client_session.py (and against the real server core in
tests/test_client_sim.py). Here: what ``--server`` accepts, the socket moving
between addresses (IPv4 and IPv6 on one socket), and the whole thing for real —
the client in a pty, server A SIGKILLed, server B started on the same database,
the client moving over with nothing lost or repeated.

Every receive has a timeout; every process started here is reaped.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from chatroom.cli import cli
from chatroom.client import shell
from chatroom.client.link import Link
from chatroom.client.servers import Server
from testkit.processes import chatroom_cmd
from tests.support.headless import Headless
from tests.support.pty import TIMEOUT, ClusterClient, Vt, process_state
from tests.support.server import ServerProcess, start_server

pytestmark = pytest.mark.integration

# ---------------------------------------------------------------------- --server


@pytest.mark.parametrize(
    ("value", "server", "label"),
    [
        ("127.0.0.1:9001", Server("127.0.0.1", 9001), "127.0.0.1:9001"),
        ("chat.example.org:8888", Server("chat.example.org", 8888), "chat.example.org:8888"),
        ("[::1]:8888", Server("::1", 8888), "[::1]:8888"),
        ("[fe80::1%eth0]:7", Server("fe80::1%eth0", 7), "[fe80::1%eth0]:7"),
        (" localhost:65535 ", Server("localhost", 65535), "localhost:65535"),
    ],
)
def test_a_server_is_host_colon_port(value: str, server: Server, label: str) -> None:
    assert Server.parse(value) == server
    assert server.label == label


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("127.0.0.1", "the port included"),
        ("127.0.0.1:", "the port must be a number"),
        ("127.0.0.1:0", "from 1 to 65535"),
        ("127.0.0.1:65536", "from 1 to 65535"),
        ("127.0.0.1:http", "the port must be a number"),
        (":8888", "the host is missing"),
        ("::1:8888", "in brackets"),
        ("[::1]8888", "in brackets"),
        ("[::1]", "in brackets"),
        ("[localhost]:8888", "not an IPv6 address"),
        ("[10.0.0.1]:8888", "only an IPv6 address"),
        ("my host:8888", "the host is missing"),
    ],
)
def test_a_bad_server_is_a_usage_error_that_says_why(value: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        Server.parse(value)
    result = CliRunner().invoke(cli, ["join", "alice", "--server", value])
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--server'" in result.output and why in result.output


@pytest.mark.parametrize("extra", [["--host", "10.0.0.1"], ["--port", "9000"]])
def test_server_and_host_or_port_together_are_refused(extra: list[str]) -> None:
    result = CliRunner().invoke(cli, ["join", "alice", "--server", "127.0.0.1:9001", *extra])
    assert result.exit_code == 2, result.output
    assert "--server and --host/--port cannot be used together" in result.output


def test_servers_reach_the_client_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    got: list[tuple[Server, ...]] = []

    def fake_run(opts: shell.JoinOptions) -> int:
        got.append(opts.server_list)
        return 0

    monkeypatch.setattr(shell, "run", fake_run)
    args = ["join", "alice", "--server", "[::1]:9002", "--server", "127.0.0.1:9001"]
    assert CliRunner().invoke(cli, args).exit_code == 0
    assert CliRunner().invoke(cli, ["join", "alice", "--port", "9003"]).exit_code == 0
    assert got == [
        (Server("::1", 9002), Server("127.0.0.1", 9001)),
        (Server("127.0.0.1", 9003),),  # --host/--port: one server, as ever
    ]
    help_text = CliRunner().invoke(cli, ["join", "--help"]).output
    assert "--server HOST:PORT" in help_text and "moves to the next" in help_text


# ---------------------------------------------------------------------- the socket


def _udp(family: int, host: str) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.settimeout(TIMEOUT)
    return sock


def test_the_socket_moves_between_ipv4_and_ipv6_servers_hearing_only_the_current() -> None:
    try:
        six = _udp(socket.AF_INET6, "::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    four = _udp(socket.AF_INET, "127.0.0.1")
    servers = [Server("127.0.0.1", four.getsockname()[1]), Server("::1", six.getsockname()[1])]
    link = Link.open(servers)
    try:
        link.sock.settimeout(TIMEOUT)
        link.send(b"to four")
        data, back = four.recvfrom(2048)
        assert data == b"to four"
        four.sendto(b"from four", back)
        assert link.recv() == b"from four"
        four.sendto(b"stale", back)  # queued for us when we move
        time.sleep(0.05)
        link.use(1)
        link.send(b"to six")
        data, back6 = six.recvfrom(2048)
        assert data == b"to six"
        assert back6[1] == back[1], "the same socket: the server sees the same port"
        six.sendto(b"from six", back6)
        assert link.recv() == b"from six"  # not the stale one before it
        link.use(0)
        link.send(b"four again")
        assert four.recvfrom(2048)[0] == b"four again"
        six.sendto(b"late", back6)  # no longer the server in use
        four.sendto(b"from four again", back)
        assert link.recv() == b"from four again"
    finally:
        link.close()
        four.close()
        six.close()


# ---------------------------------------------------------------------- for real


@pytest.fixture
def reaped() -> Iterator[list[ServerProcess | ClusterClient | Headless]]:
    """Whatever a test starts, stopped and reaped whatever happens."""
    started: list[ServerProcess | ClusterClient | Headless] = []
    yield started
    for thing in reversed(started):
        with contextlib.suppress(Exception):
            if isinstance(thing, ServerProcess):
                thing.stop(signal.SIGKILL, timeout=5)
            else:
                thing.close()


def _stored_messages(db: Path) -> list[tuple[str, str]]:
    result = subprocess.run(
        chatroom_cmd("history", "--db", str(db), "-n", "0", "--json", "--kind", "message"),
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    return [(e["name"], e["text"]) for e in json.loads(result.stdout)]


@pytest.mark.slow
def test_the_client_moves_to_the_next_server_nothing_lost_or_repeated(
    tmp_path: Path, reaped: list[ServerProcess | ClusterClient | Headless]
) -> None:
    db = tmp_path / "chat.db"
    a = start_server(db)
    reaped.append(a)
    reserve = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    reserve.bind(("127.0.0.1", 0))  # B's port: known, not listening yet
    b_port = reserve.getsockname()[1]
    b_label = f"127.0.0.1:{b_port}"
    try:
        alice = ClusterClient(
            "alice", "--server", f"127.0.0.1:{a.port}", "--server", b_label, "--history", "0"
        )
        reaped.append(alice)
        alice.ready().expect("#lobby> ")
        alice.sendline("before the failover")
        alice.said("before the failover")
        net = alice.network_pid()

        assert a.stop(signal.SIGKILL) == -signal.SIGKILL  # reaped; its writer lock is free
        reserve.close()
        b = start_server(db, "--port", str(b_port))  # the same database: one chat
        reaped.append(b)
        assert b.port == b_port

        alice.sendline("during the outage")
        alice.expect("… sending")
        alice.expect(f"connection lost — trying {b_label}…", timeout=15)
        alice.expect(f"connected to {b_label}", timeout=15)
        alice.expect("✓ delivered", timeout=10)

        bob = Headless(("127.0.0.1", b_port), "bob", history=10)
        reaped.append(bob)
        assert bob.logged_in.wait(TIMEOUT)
        bob.say("hello from B")
        alice.said("hello from B")
        assert bob.wait_until(lambda: ("bob", "hello from B") in bob.texts(), TIMEOUT)
        alice.sendline("still here")
        assert bob.wait_until(lambda: ("alice", "still here") in bob.texts(), TIMEOUT)
        alice.said("still here")
        replayed = [(e.name, e.text) for e in bob.history if e.kind == "message"]
        assert replayed == [("alice", "before the failover"), ("alice", "during the outage")]

        alice.sendline("/quit")
        assert alice.wait_exit() == 0
        assert process_state(net) is None, "the network process was reaped"
    finally:
        reserve.close()

    screen = Vt().feed(alice.output).text()
    said = [line.split(" │ ", 1)[1] for line in screen if " │ " in line and "alice │" in line]
    assert said == [
        "before the failover",
        "during the outage  … sending",
        "during the outage  ✓ delivered",
        "still here",
    ], screen
    assert sum("hello from B" in line for line in screen) == 1
    assert "reconnected" not in alice.output  # moved, not back to the same server
    assert "Traceback" not in alice.output

    b.stop()
    assert _stored_messages(db) == [
        ("alice", "before the failover"),
        ("alice", "during the outage"),
        ("bob", "hello from B"),
        ("alice", "still here"),
    ]


@pytest.mark.parametrize("command", [["join", "alice"], ["status"], ["announce", "hi"]])
def test_a_clients_port_0_is_refused_as_its_help_says(command: list[str]) -> None:
    """The server may listen on port 0 (any free port); a client cannot talk to it."""
    help_text = CliRunner().invoke(cli, [command[0], "--help"]).output
    assert "1<=x<=65535" in help_text
    result = CliRunner().invoke(cli, [*command, "--port", "0"])
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--port'" in result.output
    assert "0<=x<=65535" in CliRunner().invoke(cli, ["serve", "--help"]).output


@pytest.mark.parametrize("command", [["join", "alice"], ["serve"], ["status"]])
def test_a_port_that_is_not_a_number_says_so(command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--port", "abc"])
    assert result.exit_code == 2, result.output
    assert "'abc' is not a port number" in result.output
    assert "integer range" not in result.output
