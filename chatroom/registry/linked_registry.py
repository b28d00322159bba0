"""``LinkedRegistry``: a hand-written singly linked list of ``Node`` objects.

Why it exists: the course asks for a registry built from ``Node``s, without any
built-in container, to show what a list *is*. Each node holds the key (``name``),
the address, the User and the next node; the registry keeps head and tail pointers,
so appending at the tail is O(1), and removing unlinks a node after an O(n) search.
Lookups are O(n) like ``ListRegistry``, but each step follows a pointer to another
heap object, so it is also the slowest to scan (see docs/benchmarks.md).

The structure holds no list or dict; only the bulk constructor uses a throwaway set
to validate its input in O(n).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from chatroom.registry.base import Address, DuplicateUser, User


class Node:
    """One link: the user's key (``name``), address, User record and next node."""

    __slots__ = ("address", "name", "next", "user")

    def __init__(self, user: User) -> None:
        self.name: str = user.key
        self.address: Address = user.address
        self.user: User = user
        self.next: Node | None = None

    def __repr__(self) -> str:
        return f"Node({self.name!r}, {self.address!r})"


class LinkedRegistry:
    """Users in a singly linked list of Nodes, in join order. O(1) append after an
    O(n) duplicate check; O(n) lookups and remove. Do not add or remove while
    iterating."""

    __slots__ = ("_head", "_size", "_tail")

    def __init__(self, users: Iterable[User] = ()) -> None:
        self._head: Node | None = None
        self._tail: Node | None = None
        self._size = 0
        keys: set[str] = set()
        addresses: set[Address] = set()
        for user in users:
            if user.key in keys or user.address in addresses:
                raise DuplicateUser(f"{user.key!r} or {user.address!r} is listed twice")
            keys.add(user.key)
            addresses.add(user.address)
            self._append(Node(user))

    def _append(self, node: Node) -> None:
        if self._tail is None:
            self._head = node
        else:
            self._tail.next = node
        self._tail = node
        self._size += 1

    def add(self, user: User) -> None:
        node = self._head
        while node is not None:
            if node.name == user.key:
                raise DuplicateUser(f"name {user.key!r} is already registered")
            if node.address == user.address:
                raise DuplicateUser(f"address {user.address!r} is already registered")
            node = node.next
        self._append(Node(user))

    def remove(self, key: str) -> User | None:
        prev: Node | None = None
        node = self._head
        while node is not None:
            if node.name == key:
                if prev is None:
                    self._head = node.next
                else:
                    prev.next = node.next
                if node is self._tail:
                    self._tail = prev
                node.next = None
                self._size -= 1
                return node.user
            prev, node = node, node.next
        return None

    def get(self, key: str) -> User | None:
        node = self._head
        while node is not None:
            if node.name == key:
                return node.user
            node = node.next
        return None

    def find_address(self, address: Address) -> User | None:
        node = self._head
        while node is not None:
            if node.address == address:
                return node.user
            node = node.next
        return None

    def readdress(self, user: User, address: Address) -> None:
        found: Node | None = None
        node = self._head
        while node is not None:
            if node.name == user.key:
                found = node
            elif node.address == address:
                raise DuplicateUser(f"address {address!r} is already registered")
            node = node.next
        if found is None:
            raise KeyError(user.key)
        found.address = address
        found.user.address = address

    def __iter__(self) -> Iterator[User]:
        node = self._head
        while node is not None:
            yield node.user
            node = node.next

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return f"LinkedRegistry({len(self)} users)"
