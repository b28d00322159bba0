"""The processes a benchmark measures or puts in the way, started alike: each
prints its ``listening on udp://HOST:PORT`` banner (testkit/processes.py).
``chatroom serve``, the bare relay (bench/procs/bare_relay.py), the lossy proxy
(testkit/lossy_proxy.py)."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from chatroom.registry import Address
from testkit.processes import await_banner, chatroom_cmd, stop_process

#: The checkout: processes start here, so that ``python -m`` finds its packages.
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Relay:
    """A relay process under test: ``chatroom serve``, the bare relay, the proxy."""

    name: str
    proc: subprocess.Popen[bytes]
    addr: tuple[str, int]
    banner: bytes = b""

    @classmethod
    def start(
        cls, name: str, cmd: list[str], stdin: bytes | None = None, cwd: Path = ROOT
    ) -> Relay:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            if stdin is not None:
                assert proc.stdin is not None
                proc.stdin.write(stdin)
                proc.stdin.close()
            return cls.started(name, proc)
        except BaseException:
            proc.kill()
            proc.wait(10)
            raise

    @classmethod
    def started(cls, name: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> Relay:
        """``proc`` once its banner says where it listens; RuntimeError if it does
        not say so in time (the caller reaps it)."""
        addr, banner = await_banner(proc, timeout)
        if addr is None:
            raise RuntimeError(f"relay did not start: {banner.decode(errors='replace')}")
        return cls(name, proc, addr, banner)

    @classmethod
    def server(
        cls, db: Path, registry: str, *extra: str, source: Path = ROOT, name: str = ""
    ) -> Relay:
        """``chatroom serve`` on 127.0.0.1, port 0, storage on, rate limits off.

        ``extra`` goes between the interpreter and ``-m chatroom`` (``-m cProfile -o F``);
        ``source`` is the tree to run it from: ``python -m`` imports from the working
        directory first, so another checkout's ``chatroom/`` runs instead of ours."""
        cmd = chatroom_cmd("serve", "--host", "127.0.0.1", "--port", "0", python=extra)
        cmd += ["--db", str(db), "--rate-limit", "off", "--registry", registry]
        return cls.start(name or f"server[{registry}]", cmd, cwd=source)

    @classmethod
    def bare(cls, receivers: Sequence[tuple[str, int]], *, batched: bool = False) -> Relay:
        """The bare relay (bench/procs/bare_relay.py); ``batched``: its sendmmsg variant."""
        lines = "".join(f"{host} {port}\n" for host, port in receivers)
        cmd = [sys.executable, "-m", "bench.procs.bare_relay", *(["--sendmmsg"] if batched else [])]
        return cls.start("bare-sendmmsg" if batched else "bare", cmd, lines.encode())

    @classmethod
    def bare_routes(cls, routes: Sequence[Sequence[tuple[str, int]]]) -> Relay:
        """The bare relay of many rooms: each route is a sender, then its receivers."""
        lines = "".join(" ".join(f"{h} {p}" for h, p in route) + "\n" for route in routes)
        cmd = [sys.executable, "-m", "bench.procs.bare_relay", "--routes"]
        return cls.start("bare-routes", cmd, lines.encode())

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then reap (SIGKILL if it does not exit); returns the exit status."""
        rc, rest = stop_process(self.proc, signal.SIGTERM, timeout, kill_timeout=10)
        self.banner += rest
        return rc

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(db: Path, *args: str) -> Relay:
    """A real ``chatroom serve`` on 127.0.0.1, port 0, with ``args``."""
    cmd = chatroom_cmd("serve", "--host", "127.0.0.1", "--port", "0", "--db", str(db), *args)
    return Relay.start("server", cmd)


def lossy_proxy(server: Address, drop: float, seed: int) -> Relay:
    """testkit/lossy_proxy.py in its own process: ``drop`` each way, seeded."""
    cmd = [sys.executable, "-m", "testkit.lossy_proxy", server[0], str(server[1])]
    return Relay.start("proxy", [*cmd, "--drop", str(drop), "--seed", str(seed)])
