"""Table-driven unit tests: every registry kind behaves the same."""

from __future__ import annotations

import pytest

from chatroom.registry import (
    REGISTRY_KINDS,
    DictRegistry,
    DuplicateUser,
    IndexedRegistry,
    LinkedRegistry,
    ListRegistry,
    Node,
    Registry,
    User,
    make_registry,
)

pytestmark = pytest.mark.pure

A1 = ("127.0.0.1", 5001)
A2 = ("127.0.0.1", 5002)
A3 = ("127.0.0.1", 5003)
A4 = ("10.0.0.1", 5001)


def user(name: str, address: tuple[str, int]) -> User:
    return User(name=name, key=name.casefold(), address=address)


@pytest.fixture(params=REGISTRY_KINDS)
def reg(request: pytest.FixtureRequest) -> Registry:
    return make_registry(request.param)


def filled(reg: Registry) -> tuple[User, User, User]:
    users = (user("Alice", A1), user("bob", A2), user("Carol", A3))
    for u in users:
        reg.add(u)
    return users


def test_kinds_and_factory() -> None:
    assert REGISTRY_KINDS[0] == "indexed"
    classes = {
        "indexed": IndexedRegistry,
        "dict": DictRegistry,
        "list": ListRegistry,
        "linked": LinkedRegistry,
    }
    assert set(classes) == set(REGISTRY_KINDS)
    for kind, cls in classes.items():
        assert type(make_registry(kind)) is cls
    with pytest.raises(ValueError, match="unknown registry kind 'tree'"):
        make_registry("tree")


def test_empty(reg: Registry) -> None:
    assert len(reg) == 0
    assert list(reg) == []
    assert reg.get("alice") is None
    assert reg.find_address(A1) is None
    assert reg.remove("alice") is None


def test_add_and_lookups(reg: Registry) -> None:
    alice, bob, carol = filled(reg)
    assert len(reg) == 3
    assert list(reg) == [alice, bob, carol]
    assert reg.get("alice") is alice
    assert reg.get("Alice") is None  # keys are canonical; the caller folds case
    assert reg.find_address(A2) is bob
    assert reg.find_address(A4) is None  # same port, other host


@pytest.mark.parametrize(
    ("name", "address", "why"),
    [
        ("alice", A4, "name"),  # same key, new address
        ("ALICE", A4, "name"),  # same key after case folding
        ("dave", A1, "address"),  # new key, taken address
        ("Alice", A1, "name"),  # both taken
    ],
)
def test_add_refuses_duplicates(
    reg: Registry, name: str, address: tuple[str, int], why: str
) -> None:
    alice, bob, carol = filled(reg)
    with pytest.raises(DuplicateUser):
        reg.add(user(name, address))
    assert list(reg) == [alice, bob, carol]  # unchanged
    assert issubclass(DuplicateUser, ValueError)


@pytest.mark.parametrize("position", [0, 1, 2])
def test_remove_each_position(reg: Registry, position: int) -> None:
    users = list(filled(reg))
    gone = users.pop(position)
    assert reg.remove(gone.key) is gone
    assert list(reg) == users
    assert len(reg) == 2
    assert reg.get(gone.key) is None
    assert reg.find_address(gone.address) is None
    assert reg.remove(gone.key) is None
    # The freed name and address can be taken again; the newcomer goes to the end.
    newcomer = user("Dave", gone.address)
    reg.add(newcomer)
    assert list(reg) == [*users, newcomer]


def test_readded_user_goes_to_the_end(reg: Registry) -> None:
    alice, bob, carol = filled(reg)
    reg.remove("alice")
    reg.add(alice)
    assert list(reg) == [bob, carol, alice]
    dave = user("dave", A4)
    reg.add(dave)  # the tail is still right after removing and re-adding
    assert list(reg) == [bob, carol, alice, dave]


def test_remove_everything_then_add(reg: Registry) -> None:
    users = filled(reg)
    for u in reversed(users):
        assert reg.remove(u.key) is u
    assert len(reg) == 0
    assert list(reg) == []
    reg.add(users[1])
    assert list(reg) == [users[1]]


def test_readdress(reg: Registry) -> None:
    alice, bob, carol = filled(reg)
    reg.readdress(bob, A4)
    assert bob.address == A4
    assert reg.find_address(A4) is bob
    assert reg.find_address(A2) is None
    assert list(reg) == [alice, bob, carol]  # join order kept
    reg.add(user("dave", A2))  # the old address is free again
    reg.readdress(bob, A4)  # to its own address: a no-op
    assert reg.find_address(A4) is bob


def test_readdress_refuses_a_taken_address(reg: Registry) -> None:
    _alice, bob, _carol = filled(reg)
    with pytest.raises(DuplicateUser):
        reg.readdress(bob, A1)
    assert bob.address == A2
    assert reg.find_address(A2) is bob


def test_readdress_of_an_absent_user_is_a_key_error(reg: Registry) -> None:
    filled(reg)
    with pytest.raises(KeyError):
        reg.readdress(user("zed", A4), ("127.0.0.1", 9))


@pytest.mark.parametrize("kind", REGISTRY_KINDS)
def test_bulk_load(kind: str) -> None:
    users = [user(f"u{i}", ("127.0.0.1", 1000 + i)) for i in range(50)]
    reg = make_registry(kind, users)
    assert list(reg) == users
    assert reg.find_address(("127.0.0.1", 1049)) is users[-1]
    reg.add(user("last", A4))
    assert len(reg) == 51


@pytest.mark.parametrize("kind", REGISTRY_KINDS)
@pytest.mark.parametrize(
    "dup", [user("u1", ("127.0.0.1", 9)), user("other", ("127.0.0.1", 1001))], ids=["key", "addr"]
)
def test_bulk_load_refuses_duplicates(kind: str, dup: User) -> None:
    users = [user(f"u{i}", ("127.0.0.1", 1000 + i)) for i in range(3)]
    with pytest.raises(DuplicateUser):
        make_registry(kind, [*users, dup])


def test_linked_registry_is_made_of_nodes() -> None:
    reg = LinkedRegistry()
    alice, bob, carol = (user("alice", A1), user("bob", A2), user("carol", A3))
    for u in (alice, bob, carol):
        reg.add(u)
    node = reg._head
    seen = []
    while node is not None:
        assert isinstance(node, Node)
        assert not hasattr(node, "__dict__")
        seen.append((node.name, node.address, node.user))
        node = node.next
    assert seen == [("alice", A1, alice), ("bob", A2, bob), ("carol", A3, carol)]
    assert reg._tail is not None and reg._tail.user is carol
    reg.remove("carol")
    assert reg._tail is not None and reg._tail.user is bob
    reg.readdress(bob, A4)
    assert reg._tail.address == A4
    # No built-in container hides inside the structure.
    for value in (reg._head, reg._tail, reg._size):
        assert not isinstance(value, list | dict | set | tuple)
