"""Redis as the cluster's broker: live fan-out, name claims, node leases.

Why Redis (docs/architecture.md, "Several nodes"): plain pub/sub is all the
live path needs, because PostgreSQL is the record and a node repairs from it
whatever the broker did not bring; SET NX PX is a lease in one command, and a
Lua script makes claim, renew and release atomic. docs/broker-choice.md has
the measurements against NATS.

Keys, all under ``chatroom:<cluster>:`` (several clusters share one Redis):

- ``events``: the pub/sub channel of stored event batches (wire.py);
- ``name:<key>`` = ``"<node> <sid> <name>"``, with a lease (the idle timeout):
  who holds a name; renewed by its node, so a dead node's names come free;
- ``node:<id>``: the node's lease (alive while it exists); ``nodes``: the set of
  node ids ever seen and not yet reaped;
- ``presence:<id>``: hash, name key -> ``{"name": ..., "rooms": [...]}`` of the
  node's users: what a starting node learns, whose names a reaper frees. A
  claim adds the entry in the same script, so a node killed right after a
  login still has the user reaped; the node rewrites it as rooms change;
- ``reap:<id>``: who is timing out a dead node's users (one node does).

Blocking calls (claims, leases) run on the node's loop with short socket
timeouts, and only at logins and once per lease period; the subscription and
publishing run on two threads of their own, so a slow or dead broker never
holds the loop. An unreachable broker makes claims answer None (the login is
refused for now) and is reported once, then again when it is back.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
from collections.abc import Callable, Iterable
from typing import Any, Final

import redis
from redis.exceptions import RedisError

from chatroom import protocol as p

log = logging.getLogger("chatroom.cluster")

#: Socket timeouts of the blocking calls made on the loop.
TIMEOUT: Final = 0.5
#: Longest wait between two reconnection attempts.
BACKOFF_MAX: Final = 5.0

_CLAIM = """
local v = redis.call('GET', KEYS[1])
if v then
  local node, sid = string.match(v, '^(%S+) (%S+)')
  if not (ARGV[2] ~= '-' and sid == ARGV[2]) and not (node == ARGV[1] and sid == ARGV[2]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[2] .. ' ' .. ARGV[3], 'PX', ARGV[4])
redis.call('HSETNX', KEYS[2], ARGV[5], ARGV[6])
return 1
"""
_RELEASE = """
redis.call('HDEL', KEYS[2], ARGV[2])
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, string.len(ARGV[1])) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
# Renew every claim this node holds; claim again one that is gone (a broker
# restarted without persistence forgot them all); the indexes (1-based) of those
# another node holds now (their clients moved there). ARGV: node, lease, then
# each key's value.
_RENEW = """
local lost = {}
local prefix = ARGV[1] .. ' '
for i, key in ipairs(KEYS) do
  local v = redis.call('GET', key)
  if not v then
    redis.call('SET', key, ARGV[i + 2], 'PX', ARGV[2])
  elseif string.sub(v, 1, string.len(prefix)) == prefix then
    redis.call('PEXPIRE', key, ARGV[2])
  else
    table.insert(lost, i)
  end
end
return lost
"""

Online = list[tuple[str, list[str]]]


class RedisBroker:
    def __init__(
        self, url: str, cluster: str, node: str, wake: Callable[[], None], *, lease: float
    ) -> None:
        self.node = node
        #: How long a claim lives without renewal (the server's idle timeout).
        self.lease = lease
        self._prefix = f"chatroom:{cluster}:"
        self._channel = self._prefix + "events"
        self._wake = wake
        self._client: redis.Redis = redis.Redis.from_url(
            url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
        )
        self._url = url
        self._claim = self._client.register_script(_CLAIM)
        self._release = self._client.register_script(_RELEASE)
        self._renew = self._client.register_script(_RENEW)
        self._inbox: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()
        self._outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._subscribe, name="chatroom-broker-in", daemon=True),
            threading.Thread(target=self._publish, name="chatroom-broker-out", daemon=True),
        ]
        #: Set by the subscriber once it is listening (tests, start-up).
        self.listening = threading.Event()

    def key(self, *parts: str) -> str:
        return self._prefix + ":".join(parts)

    # ------------------------------------------------------------------ lifecycle

    def check(self) -> None:
        """Raise RedisError if the broker cannot be reached (at start-up)."""
        self._client.ping()

    def start(self) -> None:
        for thread in self._threads:
            thread.start()
        self.listening.wait(3.0)

    def close(self) -> None:
        self._stop.set()
        self._outbox.put(None)
        for thread in self._threads:
            thread.join(2.0)
        self._client.close()

    # ------------------------------------------------------------------ events

    def publish(self, payload: bytes) -> None:
        """Queue ``payload`` for every node (never blocks the loop)."""
        self._outbox.put(payload)

    def received(self) -> list[tuple[str, bytes]]:
        """What arrived since the last call: ("events", payload), ("down",
        reason) when the broker was lost, ("up", b"") when it is back."""
        out: list[tuple[str, bytes]] = []
        while True:
            try:
                out.append(self._inbox.get_nowait())
            except queue.Empty:
                return out

    def _subscribe(self) -> None:
        backoff = 0.1
        down = False
        while not self._stop.is_set():
            client = redis.Redis.from_url(self._url, socket_connect_timeout=TIMEOUT)
            pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
            try:
                pubsub.subscribe(self._channel)
                self.listening.set()
                if down:
                    self._report("up", b"")
                    down = False
                backoff = 0.1
                while not self._stop.is_set():
                    msg = pubsub.get_message(timeout=0.5)
                    if msg is not None and msg.get("type") == "message":
                        self._report("events", msg["data"])
            except (RedisError, OSError) as exc:
                if not down:
                    self._report("down", str(exc).encode())
                    down = True
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    pubsub.close()
                    client.close()

    def _publish(self) -> None:
        client = redis.Redis.from_url(
            self._url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
        )
        while (payload := self._outbox.get()) is not None:
            # A batch that cannot be published is not retried: the other nodes
            # read it back from the database (node.py, repair).
            with contextlib.suppress(RedisError, OSError):
                client.publish(self._channel, payload)
        client.close()

    def _report(self, kind: str, data: bytes) -> None:
        self._inbox.put((kind, data))
        self._wake()

    # ------------------------------------------------------------------ claims

    def claim(self, key: str, name: str, sid: str | None) -> bool | None:
        """The Claims of chatroom/server/directory.py."""
        try:
            got = self._claim(
                keys=[self.key("name", key), self.key("presence", self.node)],
                args=[self.node, sid or "-", name, _ms(self.lease), key, self.presence(name, [])],
            )
        except (RedisError, OSError) as exc:
            log.warning("cannot claim the name %r: %s", name, exc)
            return None
        return bool(got)

    def release(self, key: str, sid: str | None) -> None:
        with contextlib.suppress(RedisError, OSError):
            self._release(
                keys=[self.key("name", key), self.key("presence", self.node)],
                args=[f"{self.node} {sid or '-'} ", key],
            )

    def renew(self, held: list[tuple[str, str, str | None]], lease: float) -> list[str]:
        """Extend this node's claims on ``held`` (key, name, sid), claiming again
        those the broker forgot; the keys another node holds now (the session
        moved there). Raises RedisError if unreachable."""
        if not held:
            return []
        values = [f"{self.node} {sid or '-'} {name}" for _, name, sid in held]
        lost: Any = self._renew(
            keys=[self.key("name", k) for k, _, _ in held], args=[self.node, _ms(lease), *values]
        )
        return [held[int(i) - 1][0] for i in lost]

    # ------------------------------------------------------------------ nodes

    def heartbeat(self, lease: float, presence: dict[str, str], gone: Iterable[str]) -> None:
        """Renew this node's lease and write what changed in its presence.
        Raises RedisError if unreachable."""
        pipe = self._client.pipeline()
        pipe.set(self.key("node", self.node), b"1", px=_ms(lease))
        pipe.sadd(self.key("nodes"), self.node)
        if presence:
            pipe.hset(self.key("presence", self.node), mapping=presence)  # type: ignore[arg-type]
        gone = list(gone)
        if gone:
            pipe.hdel(self.key("presence", self.node), *gone)
        pipe.execute()

    def presence(self, user: str, rooms: list[str]) -> str:
        """How one user is written in the presence hash."""
        return json.dumps({"name": user, "rooms": rooms}, ensure_ascii=False)

    def others(self) -> tuple[list[str], list[str]]:
        """The other nodes: (alive, dead). Raises RedisError if unreachable."""
        nodes = sorted(n.decode() for n in self._client.smembers(self.key("nodes")))  # type: ignore[union-attr]
        nodes = [n for n in nodes if n != self.node]
        if not nodes:
            return [], []
        pipe = self._client.pipeline()
        for n in nodes:
            pipe.exists(self.key("node", n))
        alive = pipe.execute()
        return [n for n, a in zip(nodes, alive, strict=True) if a], [
            n for n, a in zip(nodes, alive, strict=True) if not a
        ]

    def online_at(self, node: str) -> Online:
        """The users a node wrote in its presence, each with its rooms."""
        raw: Any = self._client.hgetall(self.key("presence", node))
        out: Online = []
        for value in raw.values():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                data = json.loads(value)
                out.append((str(data["name"]), [str(r) for r in data["rooms"]]))
        return out

    def reap(self, dead: str, lease: float) -> list[str] | None:
        """Take the job of timing out ``dead``'s users (None: another node has
        it). Returns the names it still held, and forgets the node."""
        if not self._client.set(self.key("reap", dead), self.node, nx=True, px=_ms(lease)):
            return None
        users = self.online_at(dead)
        out: list[str] = []
        for name, _ in users:
            claim_key = self.key("name", p.name_key(name))
            holder: Any = self._client.get(claim_key)
            holder_node = holder.decode().split(" ", 1)[0] if holder else None
            if holder_node not in (None, dead):
                continue  # the client moved to a live node: it has not left
            if holder_node == dead:
                self._client.delete(claim_key)
            out.append(name)
        pipe = self._client.pipeline()
        pipe.delete(self.key("presence", dead))
        pipe.srem(self.key("nodes"), dead)
        pipe.execute()
        return out

    def resign(self) -> None:
        """A clean stop: give up this node's lease now, so that the others time
        out at once (within a second) the users who did not move to another
        node, rather than when the lease runs out. Its presence and claims stay
        for that: the reaper needs them, and frees the names."""
        with contextlib.suppress(RedisError, OSError):
            self._client.delete(self.key("node", self.node))


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
