"""The Registry interface every user-registry implementation follows.

The room looks users up by canonical name key (unique ignoring case) on login, and
by source address on every other datagram, and iterates in join order for fan-out.
Implementations differ only in how fast those operations are; behaviour is identical
(a Hypothesis state machine checks each against a plain dict model).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

Address = tuple[str, int]


@dataclass(slots=True, eq=False)
class User:
    """A registered user. ``key`` is the canonical (case-folded) name used for
    uniqueness; ``name`` is what others see. ``session`` holds per-dialect state
    owned by the room (None for classic clients)."""

    name: str
    key: str
    address: Address
    session: Any = field(default=None)
    #: A classic peer that ends its lines with a newline (netcat) gets its lines
    #: newline-terminated too; the course's client sends none and expects none.
    newline: bool = False


class DuplicateUser(ValueError):
    """Raised by ``add`` when the key or the address is already registered (a bug in
    the caller: the room checks before adding)."""


class Registry(Protocol):
    """What the room needs from a user registry."""

    def add(self, user: User) -> None:
        """Register ``user`` at the end of the join order. Raises DuplicateUser."""
        ...

    def remove(self, key: str) -> User | None:
        """Remove and return the user with this key, or None if absent."""
        ...

    def get(self, key: str) -> User | None:
        """The user with this canonical key, or None."""
        ...

    def find_address(self, address: Address) -> User | None:
        """The user registered at this source address, or None."""
        ...

    def readdress(self, user: User, address: Address) -> None:
        """Move a registered user to a new address (NAT rebinding)."""
        ...

    def __iter__(self) -> Iterator[User]:
        """Users in join order."""
        ...

    def __len__(self) -> int: ...
