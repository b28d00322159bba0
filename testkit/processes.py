"""Start ``chatroom serve`` (or anything that prints its banner) and stop it.

A server started on port 0 says where it listens on its first line,
``listening on udp://HOST:PORT ...``; so do the benchmark's bare relay and the
lossy proxy, so that one function starts them all.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time

#: The banner's address: IPv4, or IPv6 such as ``::1`` (the port is after the
#: last colon). The white space after the port makes sure it was read whole.
LISTEN_RE = re.compile(rb"listening on udp://([0-9A-Fa-f.:]+):(\d+)\s")


def chatroom_cmd(*args: str, python: tuple[str, ...] = ()) -> list[str]:
    """The chatroom command line as a user would run it, from this venv;
    ``python`` goes between the interpreter and ``-m chatroom`` (``-m cProfile``)."""
    return [sys.executable, *python, "-m", "chatroom", *args]


def await_banner(
    proc: subprocess.Popen[bytes], timeout: float
) -> tuple[tuple[str, int] | None, bytes]:
    """Read ``proc``'s stdout until its banner: (the address it listens on,
    everything read). The address is None if the output ended or ``timeout``
    passed first; the caller decides what that means and reaps ``proc``."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not sel.select(max(0.0, deadline - time.monotonic())):
                break
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
            m = LISTEN_RE.search(buf)
            if m:
                return (m.group(1).decode(), int(m.group(2))), buf
    return None, buf


def stop_process(
    proc: subprocess.Popen[bytes],
    sig: int = signal.SIGTERM,
    timeout: float = 10.0,
    kill_timeout: float = 5.0,
) -> tuple[int, bytes]:
    """Signal ``proc`` and reap it (SIGKILL if it has not exited after ``timeout``):
    (its exit status, the rest of its stdout)."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        rc = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait(kill_timeout)
    rest = b""
    if proc.stdout is not None and not proc.stdout.closed:
        rest = proc.stdout.read() or b""
        proc.stdout.close()
    return rc, rest
