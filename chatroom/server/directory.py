"""Who is online: the user registry, v2 sessions by id, and name admission.

Names are unique across the server (ignoring case and width) and may not look
like the name of someone online (chatroom/confusables.py). The registry is the
pluggable structure ``--registry`` names; it answers "who is at this address"
on every datagram.
"""

from __future__ import annotations

from collections.abc import Iterable

from chatroom import protocol as p
from chatroom.confusables import skeletons
from chatroom.registry import Address, Registry, User


class Directory:
    def __init__(self, users: Registry) -> None:
        self.users = users
        self.sessions: dict[str, User] = {}
        #: Look-alike keys of the names online.
        self._skeletons: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.users)

    def names(self) -> list[str]:
        return [u.name for u in self.users]

    def find_address(self, addr: Address) -> User | None:
        return self.users.find_address(addr)

    def get(self, key: str) -> User | None:
        return self.users.get(key)

    def check_new_name(self, raw: str) -> tuple[str, str | None]:
        """Normalise a requested name; the reason code if it cannot be had now."""
        name, why = p.check_name(raw)
        if why is not None:
            return name, why
        if self.users.get(p.name_key(name)) is not None:
            return name, "taken"
        if any(sk in self._skeletons for sk in skeletons(name)):
            return name, "confusable"
        return name, None

    def add(self, user: User) -> None:
        self.users.add(user)
        for sk in skeletons(user.name):
            self._skeletons[sk] = user.key
        if user.session is not None:
            self.sessions[user.session.sid] = user

    def remove(self, user: User) -> None:
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
