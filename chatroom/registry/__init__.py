"""User registries: one interface (``Registry``), four interchangeable structures.

``make_registry(kind)`` builds one by name; ``REGISTRY_KINDS`` lists the names with
the server's default first. See each module for why it exists and
docs/benchmarks.md for how they compare.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

from chatroom.registry.base import Address, DuplicateUser, Registry, User
from chatroom.registry.dict_registry import DictRegistry
from chatroom.registry.indexed_registry import IndexedRegistry
from chatroom.registry.linked_registry import LinkedRegistry, Node
from chatroom.registry.list_registry import ListRegistry

REGISTRY_KINDS: tuple[str, ...] = ("indexed", "dict", "list", "linked")
DEFAULT_REGISTRY_KIND: Final = "indexed"

_FACTORIES: Final[dict[str, Callable[[Iterable[User]], Registry]]] = {
    "indexed": IndexedRegistry,
    "dict": DictRegistry,
    "list": ListRegistry,
    "linked": LinkedRegistry,
}


def make_registry(kind: str, users: Iterable[User] = ()) -> Registry:
    """A new registry of the given kind (one of ``REGISTRY_KINDS``), optionally
    loaded with ``users`` in order (validated like ``add``, but in O(n) for every
    kind). Raises ValueError on an unknown kind, DuplicateUser on a duplicate."""
    try:
        factory = _FACTORIES[kind]
    except KeyError:
        raise ValueError(
            f"unknown registry kind {kind!r}; choose one of {', '.join(REGISTRY_KINDS)}"
        ) from None
    return factory(users)


__all__ = [
    "DEFAULT_REGISTRY_KIND",
    "REGISTRY_KINDS",
    "Address",
    "DictRegistry",
    "DuplicateUser",
    "IndexedRegistry",
    "LinkedRegistry",
    "ListRegistry",
    "Node",
    "Registry",
    "User",
    "make_registry",
]
