"""Running a cluster in tests: nodes sharing one PostgreSQL database and a broker.

Each test gets its own database (tests/pg.py) and its own cluster name, so its
keys on the shared Redis (``chatroom:<name>:*``) meet no other run's; they are
deleted at teardown. A test that restarts the broker runs a private
``redis-server`` on a port of its own (``PrivateRedis``) rather than touching
the machine's.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import redis

from tests.support.server import ServerProcess, start_server

REDIS_URL = os.environ.get("CHATROOM_TEST_REDIS", "redis://127.0.0.1:6379/0")
_names = itertools.count(1)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    """Nodes of one cluster; ``node()`` starts one more."""

    db_url: str
    broker_url: str = REDIS_URL
    name: str = field(default_factory=lambda: f"t{os.getpid()}-{next(_names)}")
    idle_timeout: float = 3.0
    nodes: list[ServerProcess] = field(default_factory=list)

    def node(self, *args: str) -> ServerProcess:
        srv = start_server(
            self.db_url,  # type: ignore[arg-type]  # a URL where tests usually give a file
            "--cluster",
            self.broker_url,
            "--cluster-name",
            self.name,
            "--idle-timeout",
            str(self.idle_timeout),
            "--rate-limit",
            "off",
            *args,
        )
        self.nodes.append(srv)
        return srv

    def stop(self) -> None:
        # Together: a node takes up to half a second to stop, and one after the
        # other they added a second or more to every test's teardown.
        with ThreadPoolExecutor(max(1, len(self.nodes))) as pool:
            list(pool.map(lambda srv: srv.stop(), self.nodes))
        self.forget_keys()

    def forget_keys(self) -> None:
        try:
            client = redis.Redis.from_url(self.broker_url, socket_timeout=2)
            keys = list(client.scan_iter(match=f"chatroom:{self.name}:*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()
        except (redis.RedisError, OSError):
            pass  # a private broker that is gone: nothing left to delete


class PrivateRedis:
    """A redis-server of the test's own (no persistence, like the machine's),
    which the test may stop and start again on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port, socket_timeout=0.5).ping()
                return
            except (redis.RedisError, OSError):
                time.sleep(0.05)
        raise AssertionError("the private redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None
