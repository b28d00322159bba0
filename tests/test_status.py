"""``chatroom status`` and ``chatroom who`` against a real server, over the local
control socket: what an operator sees of a running chat."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

import pytest

from testkit.processes import chatroom_cmd
from tests.support.headless import Headless
from tests.support.server import ServerProcess, UdpPeer

pytestmark = pytest.mark.integration


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        chatroom_cmd(*args), capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
    )


def test_status_and_who_show_the_running_chat(
    server_factory: Callable[..., ServerProcess],
) -> None:
    srv = server_factory("--rate-limit", "off")
    alice, bob = UdpPeer(srv.addr), UdpPeer(srv.addr)
    carol = Headless(srv.addr, "carol")
    try:
        alice.send("L alice")
        assert alice.recv() == b"OK"
        bob.send("L bob")
        assert bob.recv() == b"OK"
        assert carol.logged_in.wait(10)
        carol.say("/join #dev")
        assert carol.wait_until(lambda: any(e.room == "#dev" for e in carol.shown), 10)
        for i in range(5):
            alice.send(f"C alice hello {i}")
        for _ in range(5):
            bob.recv()
        alice.send(b"\xff\xfe")  # garbage: dropped and counted
        impostor = UdpPeer(srv.addr)
        try:
            impostor.send("L alice")  # a name taken: refused and counted
            assert impostor.recv() == b"name already taken"
        finally:
            impostor.close()
        port = str(srv.port)
        report = json.loads(_run("status", "--port", port, "--json").stdout)
        assert report["online"] == 3
        assert report["rooms"] == {"#dev": 1, "#lobby": 3}
        assert report["messages_per_s"] > 0
        assert report["dropped"].get("drop.utf8") == 1
        storage = report["storage"]
        assert storage["database"] == str(srv.db)
        assert storage["bytes"] > 0 and storage["writable"] is True
        assert storage["last_commit_s_ago"] is not None and storage["error"] is None
        text = _run("status", "--port", port)
        assert text.returncode == 0
        assert "online: 3 in 2 room(s)" in text.stdout and "#dev: 1" in text.stdout
        assert f"database: {srv.db}" in text.stdout and "writable" in text.stdout
        assert report["refused"] == {"refused.taken": 1}
        assert "refused: refused.taken 1" in text.stdout  # as --json has it
        lobby = _run("who", "--port", port)
        head, *names = lobby.stdout.splitlines()
        assert head == "#lobby: 3 online"
        assert sorted(names) == ["  alice", "  bob", "  carol"]  # in join order: carol races
        dev = json.loads(_run("who", "dev", "--port", port, "--json").stdout)
        assert dev == {"room": "#dev", "total": 1, "names": ["carol"]}
    finally:
        carol.close()
        alice.close()
        bob.close()


def test_no_server_on_that_port_names_the_ports_that_have_one(server: ServerProcess) -> None:
    """From a tryout: `chatroom status` (port 8888) said only that nothing ran
    there, while a server ran on another port of the same machine."""
    result = _run("status", "--port", "1")
    assert result.returncode == 1
    hint = result.stderr.partition("servers here: --port ")[2]
    assert str(server.port) in hint.replace(",", " ").replace(")", " ").split()


def test_no_server_is_a_clear_error() -> None:
    result = _run("status", "--port", "1")
    assert result.returncode == 1
    assert "no chatroom server on port 1" in result.stderr
    assert "Traceback" not in result.stderr
    bad = _run("who", "#a:b", "--port", "1")
    assert bad.returncode == 1
