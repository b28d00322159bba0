"""``IndexedRegistry``: two dicts, by key and by address; O(1) for every operation.

Why it exists: the server looks a user up by *source address* on every datagram,
and by key on every login. The course's structures make one or both of those a
linear scan; here both are hash lookups that cost the same at 10 users or 100,000
(docs/benchmarks.md has the numbers), which is why the server defaults to it. The
price is a second dict entry per user. Join order is the insertion order of the
key dict (a removed-then-re-added user goes to the end).

The address index is only correct if addresses change through ``readdress``: never
assign ``user.address`` directly while the user is registered.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from chatroom.registry.base import Address, DuplicateUser, User


class IndexedRegistry:
    """``{key: User}`` plus ``{address: User}``; O(1) add, remove and lookups. Do not
    add or remove while iterating."""

    __slots__ = ("_by_address", "_by_key")

    def __init__(self, users: Iterable[User] = ()) -> None:
        self._by_key: dict[str, User] = {}
        self._by_address: dict[Address, User] = {}
        for user in users:
            self.add(user)

    def add(self, user: User) -> None:
        if user.key in self._by_key:
            raise DuplicateUser(f"name {user.key!r} is already registered")
        if user.address in self._by_address:
            raise DuplicateUser(f"address {user.address!r} is already registered")
        self._by_key[user.key] = user
        self._by_address[user.address] = user

    def remove(self, key: str) -> User | None:
        user = self._by_key.pop(key, None)
        if user is not None:
            del self._by_address[user.address]
        return user

    def get(self, key: str) -> User | None:
        return self._by_key.get(key)

    def find_address(self, address: Address) -> User | None:
        return self._by_address.get(address)

    def readdress(self, user: User, address: Address) -> None:
        found = self._by_key.get(user.key)
        if found is None:
            raise KeyError(user.key)
        holder = self._by_address.get(address)
        if holder is not None and holder is not found:
            raise DuplicateUser(f"address {address!r} is already registered")
        del self._by_address[found.address]
        found.address = address
        self._by_address[address] = found

    def __iter__(self) -> Iterator[User]:
        return iter(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)

    def __repr__(self) -> str:
        return f"IndexedRegistry({len(self)} users)"
