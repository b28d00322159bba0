"""The local control channel: how ``chatroom announce`` reaches a running server.

A Unix stream socket with mode 0600 in a 0700 directory under $XDG_RUNTIME_DIR
(or /tmp/chatroom-<uid> when that is unset), one per server port. Only the
server's own user can connect, and the server also checks the peer's uid with
SO_PEERCRED. Nothing a network client sends can produce an announcement.

Requests, one line each (the verbs below are the only ones):

- ``ANNOUNCE <text>`` -> ``OK <recipients>`` or ``ERR <reason>``;
- ``STATUS`` -> ``OK <JSON>``: uptime, who is online per room, messages/s over
  the last minute, drops by reason, the database and its state;
- ``WHO <#room>`` -> ``OK <JSON>``: the room's members, every name.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import struct
from pathlib import Path

MAX_REQUEST = 4096

ANNOUNCE = "ANNOUNCE"
STATUS = "STATUS"
WHO = "WHO"


class ControlError(Exception):
    """The control channel cannot be used (no server, wrong owner, ...)."""


def control_dir() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return Path(runtime) / "chatroom" if runtime else Path(f"/tmp/chatroom-{os.getuid()}")


def control_path(port: int) -> Path:
    return control_dir() / f"control-{port}.sock"


def listening_ports() -> list[int]:
    """The ports of this user's servers here, by their control sockets (a stale
    one, left by a server killed with SIGKILL, is listed too: the server that
    starts next on that port replaces it)."""
    found = []
    with contextlib.suppress(OSError):
        for path in control_dir().glob("control-*.sock"):
            port = path.stem.removeprefix("control-")
            if port.isdigit():
                found.append(int(port))
    return sorted(found)


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.stat()
    if st.st_uid != os.getuid() or stat.S_IMODE(st.st_mode) & 0o077:
        raise ControlError(f"{path} must be a directory owned by you with mode 0700")


def listen(port: int) -> socket.socket:
    """Bind the control socket for ``port`` (replacing a stale one)."""
    path = control_path(port)
    _private_dir(path.parent)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(8)
    sock.setblocking(False)
    return sock


def peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def read_request(conn: socket.socket, timeout: float = 0.5) -> str:
    """One request line from a freshly accepted connection."""
    conn.settimeout(timeout)
    data = b""
    while b"\n" not in data and len(data) < MAX_REQUEST:
        chunk = conn.recv(MAX_REQUEST)
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0].decode("utf-8", errors="replace")


def request(port: int, line: str, timeout: float = 3.0) -> str:
    """Send one request to the server on ``port`` and return its answer line."""
    path = control_path(port)
    if not path.exists():
        others = listening_ports()
        hint = f"; servers here: --port {', '.join(map(str, others))}" if others else ""
        raise ControlError(f"no chatroom server on port {port} here ({path} not found{hint})")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
            sock.sendall(line.encode() + b"\n")
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = sock.recv(1024)
                if not chunk:
                    break
                answer += chunk
        except ConnectionRefusedError as exc:
            raise ControlError(f"no chatroom server on port {port} (stale {path})") from exc
        except OSError as exc:
            raise ControlError(f"cannot reach the server on port {port}: {exc}") from exc
    return answer.decode("utf-8", errors="replace").strip()
