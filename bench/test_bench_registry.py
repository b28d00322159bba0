"""Registry benchmarks: every implementation x operation x size (issue 6).

Groups are ``registry.<op>.<size>`` so that pytest-benchmark (and docs/benchmarks.md)
compares the four implementations side by side for each operation and size:

- ``add``: register one more user into a registry of ``size`` (includes the duplicate
  check, which is where list/linked/dict pay a scan);
- ``get``: look a user up by canonical name;
- ``find_address``: look a user up by source address (what the server does on every
  datagram);
- ``remove``: remove the user in the middle of the join order;
- ``iterate``: walk every user in join order (a broadcast's loop, without the sends);
- ``build`` (``registry.build.<n>``): bulk-load n users; the same test measures
  the memory per registered user with tracemalloc (``extra_info``).

Lookups and removals target the user in the middle of the join order: the average
case of a linear scan. The key/address passed in is an equal but *distinct* object,
as it is when it comes out of a datagram, so string comparisons cannot short-cut on
identity. Everything but the operation itself is set up outside the timed call;
mutating operations use ``benchmark.pedantic`` with a setup that restores the size.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

import pytest

from bench.conftest import QUICK, sizes
from chatroom.registry import REGISTRY_KINDS, Address, Registry, User, make_registry

SIZES = sizes((10, 100, 1_000, 10_000, 100_000), quick=(10, 100))
MEMORY_USERS = 1_000 if QUICK else 100_000
LINEAR = frozenset({"list", "linked"})  # kinds whose every lookup is a scan

T = TypeVar("T")
Benchmark = Any  # pytest-benchmark's fixture has no public type


@cache
def make_users(n: int) -> tuple[User, ...]:
    """n distinct users with distinct, realistic-looking addresses (cached per n;
    benchmarks never mutate them, except ``readdress``, which none calls)."""
    return tuple(
        User(
            name=f"User{i:06d}",
            key=f"user{i:06d}",
            address=(f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}", 40000 + i % 1000),
        )
        for i in range(n)
    )


def fresh_key(key: str) -> str:
    """An equal string that is not the same object (like one parsed from a datagram)."""
    return "".join(list(key))


def fresh_address(address: Address) -> Address:
    host, port = address
    return ("".join(list(host)), int(str(port)))


def pedantic_rounds(kind: str, size: int) -> int:
    """Rounds for pedantic (mutating) benchmarks: many where an operation is cheap,
    few where a linear scan over 10^4..10^5 users makes each round cost milliseconds
    (the setup pays a scan too), so the whole suite stays within minutes."""
    if QUICK:
        return 3
    if kind in LINEAR or kind == "dict":
        return max(20, min(2_000, 2_000_000 // max(size, 1)))
    return 2_000


def setup_registry(kind: str, size: int) -> tuple[Registry, tuple[User, ...]]:
    users = make_users(size)
    return make_registry(kind, users), users


params = pytest.mark.parametrize(
    ("kind", "size"), [(k, s) for s in SIZES for k in REGISTRY_KINDS], ids=lambda v: str(v)
)


def label(benchmark: Benchmark, op: str, kind: str, size: int) -> None:
    benchmark.group = f"registry.{op}.{size}"
    benchmark.extra_info.update(impl=kind, size=size, op=op)


@params
def test_add(benchmark: Benchmark, kind: str, size: int) -> None:
    label(benchmark, "add", kind, size)
    reg = make_registry(kind, make_users(size))
    newcomer = make_users(size + 1)[size]

    def setup() -> tuple[tuple[User], dict[str, Any]]:
        reg.remove(newcomer.key)  # undo the previous round: back to `size` users
        return (newcomer,), {}

    benchmark.pedantic(reg.add, setup=setup, rounds=pedantic_rounds(kind, size), warmup_rounds=1)
    assert len(reg) == size + 1
    assert list(reg)[-1] is newcomer


@params
def test_get(benchmark: Benchmark, kind: str, size: int) -> None:
    label(benchmark, "get", kind, size)
    reg, users = setup_registry(kind, size)
    target = users[size // 2]
    result = benchmark(reg.get, fresh_key(target.key))
    assert result is target


@params
def test_find_address(benchmark: Benchmark, kind: str, size: int) -> None:
    label(benchmark, "find_address", kind, size)
    reg, users = setup_registry(kind, size)
    target = users[size // 2]
    result = benchmark(reg.find_address, fresh_address(target.address))
    assert result is target


@params
def test_remove(benchmark: Benchmark, kind: str, size: int) -> None:
    label(benchmark, "remove", kind, size)
    reg, users = setup_registry(kind, size)
    by_key = {u.key: u for u in users}
    order = [u.key for u in users]  # mirror of the join order, to find the middle
    removed: list[User] = []

    def setup() -> tuple[tuple[str], dict[str, Any]]:
        if removed:  # put back last round's user (at the end): size users again
            user = removed.pop()
            reg.add(user)
            order.append(user.key)
        key = order.pop(size // 2)
        removed.append(by_key[key])
        return (fresh_key(key),), {}

    benchmark.pedantic(reg.remove, setup=setup, rounds=pedantic_rounds(kind, size), warmup_rounds=1)
    assert len(reg) == size - 1
    assert reg.get(removed[0].key) is None


def walk(reg: Registry) -> int:
    """The broadcast loop without the sends."""
    count = 0
    for _user in reg:
        count += 1
    return count


@params
def test_iterate(benchmark: Benchmark, kind: str, size: int) -> None:
    label(benchmark, "iterate", kind, size)
    reg, _users = setup_registry(kind, size)
    assert benchmark(walk, reg) == size


def traced_bytes(build: Callable[[], T]) -> tuple[int, T]:
    """Bytes still allocated after ``build()`` returns (the value is kept alive)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        value = build()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return after - before, value


@pytest.mark.parametrize("kind", REGISTRY_KINDS)
def test_build_and_memory(benchmark: Benchmark, kind: str) -> None:
    """Bulk-load MEMORY_USERS users; record bytes per registered user.

    ``bytes_per_user`` is what the structure itself costs (the User records are
    shared by all kinds and measured once, as ``user_record_bytes``).
    """
    n = MEMORY_USERS
    label(benchmark, "build", kind, n)
    make_users.cache_clear()
    record_bytes, users = traced_bytes(lambda: make_users(n))
    structure_bytes, reg = traced_bytes(lambda: make_registry(kind, users))
    assert len(reg) == n
    benchmark.extra_info.update(
        users=n,
        bytes_per_user=round(structure_bytes / n, 1),
        user_record_bytes=round(record_bytes / n, 1),
    )
    del reg
    result = benchmark.pedantic(make_registry, args=(kind, users), rounds=1 if QUICK else 5)
    assert len(result) == n
