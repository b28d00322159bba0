"""``DictRegistry``: the course's ``{name: address}``, as a dict keyed by canonical name.

Why it exists: it is the course's second structure. Lookups by name, ``add`` and
``remove`` are O(1) and a dict keeps insertion order, which is the join order.
``find_address`` stays a linear scan over the values, faithful to the course (the
course has no reverse index): that is the lookup the server makes on *every*
datagram, which is why the server defaults to ``IndexedRegistry`` instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from chatroom.registry.base import Address, DuplicateUser, User


class DictRegistry:
    """``{key: User}``; O(1) by name, O(n) by address (and so O(n) for the address
    half of ``add``'s duplicate check). Do not add or remove while iterating."""

    __slots__ = ("_by_key",)

    def __init__(self, users: Iterable[User] = ()) -> None:
        self._by_key: dict[str, User] = {}
        addresses: set[Address] = set()  # throwaway: validates a bulk load in O(n)
        for user in users:
            if user.key in self._by_key or user.address in addresses:
                raise DuplicateUser(f"{user.key!r} or {user.address!r} is listed twice")
            addresses.add(user.address)
            self._by_key[user.key] = user

    def add(self, user: User) -> None:
        if user.key in self._by_key:
            raise DuplicateUser(f"name {user.key!r} is already registered")
        if self.find_address(user.address) is not None:
            raise DuplicateUser(f"address {user.address!r} is already registered")
        self._by_key[user.key] = user

    def remove(self, key: str) -> User | None:
        return self._by_key.pop(key, None)

    def get(self, key: str) -> User | None:
        return self._by_key.get(key)

    def find_address(self, address: Address) -> User | None:
        for user in self._by_key.values():
            if user.address == address:
                return user
        return None

    def readdress(self, user: User, address: Address) -> None:
        found = self._by_key.get(user.key)
        if found is None:
            raise KeyError(user.key)
        holder = self.find_address(address)
        if holder is not None and holder is not found:
            raise DuplicateUser(f"address {address!r} is already registered")
        found.address = address

    def __iter__(self) -> Iterator[User]:
        return iter(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)

    def __repr__(self) -> str:
        return f"DictRegistry({len(self)} users)"
