"""What ``chatroom status`` and ``chatroom who`` report about a running server.

Plain data built from the parts that own each fact: the hub (who is online,
in which room; its counters), the committer (the storage state, the last
commit), the loop (uptime, the database it writes). ``Pulse`` keeps the message
counter's samples of the last minute for the rate. Served as one JSON line on
the local control socket (chatroom/control.py).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Final

from chatroom.server.commits import Commits
from chatroom.server.hub import Hub

#: The window the message rate is measured over.
WINDOW: Final = 60.0


class Pulse:
    """Messages stored per second over the last minute, from the hub's counter
    sampled on the loop's timer."""

    def __init__(self, now: float) -> None:
        self._samples: deque[tuple[float, int]] = deque([(now, 0)])

    def sample(self, now: float, messages: int) -> None:
        samples = self._samples
        if now - samples[-1][0] >= 1.0:
            samples.append((now, messages))
        while len(samples) > 2 and now - samples[1][0] >= WINDOW:
            samples.popleft()

    def rate(self, now: float, messages: int) -> float:
        start, count = self._samples[0]
        return (messages - count) / max(now - start, 1.0)


def report(
    hub: Hub,
    commits: Commits,
    pulse: Pulse,
    *,
    now: float,
    started: float,
    address: tuple[str, int],
    database: str,
    database_bytes: int | None,
) -> dict[str, Any]:
    """The status of the server, as JSON-ready data."""
    stats = hub.stats
    rooms = sorted((c.key, c.count()) for c in hub.conversations.rooms())
    drops = {k: v for k, v in sorted(stats.items()) if k.startswith(("drop.", "errors."))}
    refused = {k: v for k, v in sorted(stats.items()) if k.startswith(("refused.", "rejected."))}
    last_commit = commits.last_commit_at
    return {
        "address": f"{address[0]}:{address[1]}",
        "uptime_s": round(now - started, 1),
        "online": hub.online(),
        "rooms": {room: members for room, members in rooms},
        "messages_per_s": round(pulse.rate(now, stats["events.message"]), 2),
        "events_stored": hub.storage.committed,
        "datagrams": stats["datagrams"],
        "dropped": drops,
        "refused": refused,
        "storage": {
            "database": database,
            "bytes": database_bytes,
            "writable": hub.storage.writable,
            "last_commit_s_ago": None if last_commit is None else round(now - last_commit, 1),
            "waiting_events": commits.pending,
            "error": commits.last_error or None,
        },
        "cluster": commits.cluster_status(),
    }


def members(hub: Hub, room: str) -> dict[str, Any]:
    """Who is in ``room`` (every name: this is local, not a datagram)."""
    conv = hub.conversations.get(room)
    names = conv.names() if conv is not None else []
    return {"room": room, "total": len(names), "names": names}
