"""Who is online: the user registry, v2 sessions by id, and name admission.

Names are unique across the server (ignoring case and width) and may not look
like the name of someone online (chatroom/confusables.py). The registry is the
pluggable structure ``--registry`` names; it answers "who is at this address"
on every datagram.

In a cluster a name must also be free on the other nodes: the directory knows
who is online elsewhere (``remote``, kept from the events every node applies),
and claims each name in the broker with a lease before admitting it
(``Claims``, chatroom/cluster/claims.py), which settles two logins racing on
two nodes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Protocol

from chatroom import protocol as p
from chatroom.confusables import skeletons
from chatroom.registry import Address, Registry, User


class Claims(Protocol):
    """Names held across a cluster (a lease per name, renewed by its node)."""

    def claim(self, key: str, name: str, sid: str | None) -> bool | None:
        """Take ``key`` for this node: True if free, or already held by the same
        session ``sid`` (a client moving here from another node); False if
        someone else holds it; None when the cluster cannot be asked."""
        ...

    def release(self, key: str, sid: str | None) -> None:
        """Give ``key`` back, if this node still holds it for ``sid``."""
        ...


class Directory:
    def __init__(self, users: Registry, claims: Claims | None = None) -> None:
        self.users = users
        self.sessions: dict[str, User] = {}
        #: Look-alike keys of the names online.
        self._skeletons: dict[str, str] = {}
        self.claims = claims
        #: Users online on other nodes of a cluster: name key -> name, and in
        #: how many rooms each is (online while in one).
        self.remote: dict[str, str] = {}
        self._remote_rooms: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self.users)

    def names(self) -> list[str]:
        return [u.name for u in self.users]

    def find_address(self, addr: Address) -> User | None:
        return self.users.find_address(addr)

    def get(self, key: str) -> User | None:
        return self.users.get(key)

    def check_new_name(self, raw: str) -> tuple[str, str | None]:
        """Normalise a requested name; the reason code if it cannot be had now.
        (In a cluster, whether another node has it is the claim's to say:
        ``admit``. What this node has applied of the others may lag.)"""
        name, why = p.check_name(raw)
        if why is not None:
            return name, why
        if self.users.get(p.name_key(name)) is not None:
            return name, "taken"
        if any(sk in self._skeletons for sk in skeletons(name)):
            return name, "confusable"
        return name, None

    def admit(self, name: str, sid: str | None) -> str | None:
        """Claim ``name`` across the cluster (nothing to do on a single node);
        the refusal code if it cannot be had."""
        if self.claims is None:
            return None
        got = self.claims.claim(p.name_key(name), name, sid)
        if got is None:
            return "storage"  # the cluster cannot say who holds it: try again shortly
        return None if got else "taken"

    def remote_entered(self, key: str, name: str) -> None:
        """A user of another node is in one more room."""
        self.remote[key] = name
        self._remote_rooms[key] += 1

    def remote_left(self, key: str) -> None:
        """A user of another node left a room (gone once in none)."""
        left = self._remote_rooms[key] - 1
        if left > 0:
            self._remote_rooms[key] = left
            return
        self._remote_rooms.pop(key, None)
        self.remote.pop(key, None)

    def add(self, user: User) -> None:
        self.users.add(user)
        for sk in skeletons(user.name):
            self._skeletons[sk] = user.key
        if user.session is not None:
            self.sessions[user.session.sid] = user

    def remove(self, user: User, *, release: bool = True) -> None:
        """``user`` is gone; its claim is given back unless ``release`` is False
        (it moved to another node, which holds the name now)."""
        if release and self.claims is not None:
            self.claims.release(user.key, None if user.session is None else user.session.sid)
        for sk in skeletons(user.name):
            if self._skeletons.get(sk) == user.key:
                del self._skeletons[sk]
        self.users.remove(user.key)
        if user.session is not None:
            self.sessions.pop(user.session.sid, None)

    def readdress(self, user: User, addr: Address, rooms: Iterable[Registry]) -> None:
        """Move ``user`` to ``addr`` in the directory and in every room registry
        it is in. Each registry indexes the address it last saw, so each is
        told from the old address (``readdress`` sets the user's address)."""
        old = user.address
        for registry in (self.users, *rooms):
            user.address = old
            registry.readdress(user, addr)
        user.address = addr
