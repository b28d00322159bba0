"""The cost of the server's tick with many idle sessions (issue 12).

The loop ticks ten times a second. It used to walk every v2 session's every
stream at each tick, and every session once a second for the silent ones, so
an idle server's work grew with its users. Now (chatroom/server/timers.py) a
heap holds the streams with a retransmission deadline and a wheel of
one-second slots the sessions by when they were last heard: a tick costs what
is due.

Groups ``timers.tick.<sessions>``, two rows each, measured in the same run:

- ``hub``: ``Hub.on_timer`` with that many logged-in sessions, everything
  acknowledged, nothing silent (the heap and the wheel have nothing due);
- ``walk``: the previous algorithm (every stream's deadline looked at each tick,
  every session's last_seen once a second, i.e. once in ten ticks), run over
  the same sessions: the baseline.

Each session logs in to a room of its own and acknowledges its join, so that
setting up 10,000 costs 10,000 logins rather than 10,000 joins sent to
10,000 members. The floor asserted (quick mode too): at the largest size, a
tick costs less than a tenth of the walk's.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from bench.conftest import sizes
from chatroom import protocol as p
from chatroom.registry import make_registry
from chatroom.server import Hub, ServerConfig

SIZES = sizes((1_000, 5_000, 10_000), quick=(1_000, 3_000))
Benchmark = Any


def idle_hub(n: int) -> Hub:
    config = ServerConfig(
        validate_addresses=False,
        idle_timeout=1e9,
        rate=None,
        login_rate=None,
        max_sessions_per_ip=0,
    )
    tokens = (f"{i:032x}" for i in itertools.count(1))
    hub = Hub(lambda: make_registry("indexed"), lambda: next(tokens), config)
    for i in range(n):
        addr = (f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}", 40000)
        out = hub.handle(
            p.encode_client(p.Login(f"n{i}", f"u{i}", None, None, f"#r{i}")), addr, 1.0, 1.0
        )
        sid = next(
            f.sid
            for s in out
            if isinstance(f := p.parse_server(getattr(s, "payload", b"")), p.Welcome)
        )
        hub.handle(p.encode_client(p.Ack(sid, 1, f"#r{i}")), addr, 1.1, 1.1)
    assert hub.online() == n
    return hub


def walk(hub: Hub, now: float, tick: int) -> int:
    """The previous tick: every stream's deadline, and every session's
    last_seen once a second (every tenth tick)."""
    due = 0
    sessions = hub.directory.sessions
    for user in sessions.values():
        for outbox in user.session.subs.values():
            if outbox.deadline is not None and now >= outbox.deadline:
                due += 1
    if tick % 10 == 0:
        limit = now - hub.config.idle_timeout
        due += len([u for u in sessions.values() if u.session.last_seen < limit])
    return due


_HUBS: dict[int, Hub] = {}


def hub_of(n: int) -> Hub:
    if n not in _HUBS:
        _HUBS.clear()
        _HUBS[n] = idle_hub(n)
    return _HUBS[n]


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("impl", ["hub", "walk"])
def test_tick(benchmark: Benchmark, impl: str, n: int) -> None:
    hub = hub_of(n)
    clock = itertools.count(20)
    benchmark.group = f"timers.tick.{n}"
    benchmark.extra_info.update(impl=impl, size=n)
    if impl == "hub":

        def tick() -> int:
            t = next(clock) / 10
            return len(hub.on_timer(t, t))
    else:

        def tick() -> int:
            k = next(clock)
            return walk(hub, k / 10, k)

    assert benchmark(tick) == 0  # nothing is due: every tick finds nothing


def test_a_tick_does_not_grow_with_idle_sessions() -> None:
    """Same run, no timer: at the largest size, ten ticks of the hub against ten
    of the walk (process CPU time, robust to a busy machine)."""
    import time

    n = SIZES[-1]
    hub = hub_of(n)
    rounds = 20

    def cpu(f: Any) -> float:
        start = time.process_time()
        for k in range(rounds * 10):
            f(1000 + k)
        return time.process_time() - start

    ours = cpu(lambda k: hub.on_timer(k / 10, k / 10))
    theirs = cpu(lambda k: walk(hub, k / 10, k))
    assert ours < theirs / 10, (ours, theirs)
