"""Putting a node together: what ``chatroom serve --cluster`` adds to a server.

Kept out of the click command so that it reads in one screen, and so that the
order is written once: the database first (migrated, ids caught up), then the
broker (reachable, or a clear error), then the core with claims, then the node
that announces itself.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from redis.exceptions import RedisError

from chatroom.cluster.node import ClusterNode, Wake
from chatroom.cluster.redis_broker import RedisBroker
from chatroom.server.directory import Claims
from chatroom.server.hub import Hub
from storage.errors import StorageError
from storage.sequencer import Sequencer
from storage.store import EventStore

#: The schemes ``--cluster`` accepts (docs/cluster.md says why Redis).
SCHEMES = ("redis", "rediss", "unix")


class ClusterError(Exception):
    """The cluster cannot be joined (a message for the operator)."""


def check_url(url: str) -> str | None:
    """Why ``url`` cannot name the broker, or None."""
    scheme = urlsplit(url).scheme
    if scheme not in SCHEMES:
        return f"{url!r} is not a Redis URL (redis://host:port/db)"
    return None


@dataclass
class Cluster:
    hub: Hub
    node: ClusterNode
    broker: RedisBroker
    sequencer: Sequencer

    @classmethod
    def join(
        cls,
        store: EventStore,
        broker_url: str,
        name: str,
        address: str,
        lease: float,
        new_hub: Callable[[Claims], Hub],
        now: float,
    ) -> Cluster:
        """Join cluster ``name`` through the broker at ``broker_url``, as the node
        listening at ``address``; ``new_hub(claims)`` builds the core."""
        try:
            sequencer = Sequencer(store.engine, store.url)
            sequencer.catch_up_ids()
        except StorageError as exc:
            raise ClusterError(str(exc)) from exc
        wake = Wake()
        node_id = f"{address}/{secrets.token_hex(4)}"
        broker = RedisBroker(broker_url, name, node_id, wake.poke, lease=lease)
        try:
            broker.check()
        except (RedisError, OSError) as exc:
            wake.close()
            raise ClusterError(f"cannot reach the broker at {broker_url}: {exc}") from exc
        hub = new_hub(broker)
        node = ClusterNode(hub, sequencer, broker, wake, lease=lease, name=name)
        broker.start()
        try:
            node.join(now)
        except (RedisError, OSError) as exc:
            node.close()
            broker.close()
            raise ClusterError(f"cannot join the cluster: {exc}") from exc
        return cls(hub, node, broker, sequencer)

    def close(self) -> None:
        self.broker.resign()
        self.node.close()
        self.broker.close()
        self.sequencer.close()
