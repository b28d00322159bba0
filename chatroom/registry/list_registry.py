"""``ListRegistry``: the course's ``[(name, address)]``, kept as a plain list of Users.

Why it exists: it is the structure the course starts from, and the baseline the
benchmarks measure the others against. Every lookup (by name or by address) is a
linear scan, and so is ``add`` (it must refuse a duplicate key or address first),
which is fine for a classroom of ten and the reason the server does not default to
it: see docs/benchmarks.md for where it falls behind.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from chatroom.registry.base import Address, DuplicateUser, User


class ListRegistry:
    """Users in a list, in join order; O(n) lookups, O(n) remove, O(n) add (the
    duplicate check). Do not add or remove while iterating."""

    __slots__ = ("_users",)

    def __init__(self, users: Iterable[User] = ()) -> None:
        self._users: list[User] = []
        # A bulk load validated with throwaway sets: O(n) instead of n calls to add().
        keys: set[str] = set()
        addresses: set[Address] = set()
        for user in users:
            if user.key in keys or user.address in addresses:
                raise DuplicateUser(f"{user.key!r} or {user.address!r} is listed twice")
            keys.add(user.key)
            addresses.add(user.address)
            self._users.append(user)

    def add(self, user: User) -> None:
        for other in self._users:
            if other.key == user.key:
                raise DuplicateUser(f"name {user.key!r} is already registered")
            if other.address == user.address:
                raise DuplicateUser(f"address {user.address!r} is already registered")
        self._users.append(user)

    def remove(self, key: str) -> User | None:
        user = self.get(key)
        if user is not None:
            # list.remove finds the record again with a C-level scan, then shifts the
            # tail down one slot. Measured: cheaper than counting an index in the
            # Python loop above (enumerate or i += 1), though still O(n).
            self._users.remove(user)
        return user

    def get(self, key: str) -> User | None:
        for user in self._users:
            if user.key == key:
                return user
        return None

    def find_address(self, address: Address) -> User | None:
        for user in self._users:
            if user.address == address:
                return user
        return None

    def readdress(self, user: User, address: Address) -> None:
        found: User | None = None
        for other in self._users:
            if other.key == user.key:
                found = other
            elif other.address == address:
                raise DuplicateUser(f"address {address!r} is already registered")
        if found is None:
            raise KeyError(user.key)
        found.address = address

    def __iter__(self) -> Iterator[User]:
        return iter(self._users)

    def __len__(self) -> int:
        return len(self._users)

    def __repr__(self) -> str:
        return f"ListRegistry({len(self)} users)"
