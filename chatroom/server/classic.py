"""The classic dialect (the course's L/C/Q, typable in ``nc -u``).

Classic peers live in the lobby only: they join it on ``L``, talk in it with
``C`` and leave with ``Q``. Identity is the source address: a ``C``/``Q`` is
honoured only under the name registered at that address.
"""

from __future__ import annotations

from collections.abc import Callable

from chatroom import protocol as p
from chatroom.registry import Address, User
from chatroom.server.effects import Effect, Send
from chatroom.server.membership import Membership
from chatroom.server.replies import Replies, text_problem


class ClassicDialect:
    def __init__(self, members: Membership, replies: Replies) -> None:
        self.members = members
        self.replies = replies

    def handle(
        self,
        frame: p.ClassicLogin | p.ClassicChat | p.ClassicQuit,
        addr: Address,
        now: float,
        wall: float,
        newline: bool,
    ) -> list[Effect]:
        m = self.members
        lang = m.config.lang
        user = m.directory.find_address(addr)

        def line(payload: bytes) -> bytes:
            return payload + b"\n" if newline else payload

        match frame:
            case p.ClassicLogin(name=raw):
                return self._login(raw, user, addr, now, wall, newline, line)
            case p.ClassicChat(name=name, text=text):
                pass
            case p.ClassicQuit(name=name):
                text = ""
        if user is None or user.session is not None or user.name != name:
            m.stats["drop.not_you"] += 1
            key = "unknown" if user is None else "notyou"
            return self.replies.error(addr, now, line(p.classic_text(lang, key, name)))
        if isinstance(frame, p.ClassicQuit):
            exit_ = Send(line(p.EXIT), (addr,))
            return [exit_, *m.depart(user, "quit", now, wall, exclude=addr)]
        problem = text_problem(text)
        if problem is not None:
            m.stats[f"drop.{problem}"] += 1
            return self.replies.error(addr, now, line(p.classic_text(lang, problem)))
        if not m.storage.writable:
            m.stats["refused.storage"] += 1
            return self.replies.error(addr, now, line(p.classic_text(lang, "nostore")))
        if not m.guard.classic_message_allowed(addr, now):
            m.stats["drop.ratelimited"] += 1
            if m.guard.over_limit(addr, now):
                m.stats["mutes"] += 1
            return self.replies.error(addr, now, line(p.classic_text(lang, "slowdown")))
        # A classic peer is in the lobby from its L to its Q (it cannot part).
        return m.publish(m.conversations.lobby, "message", name, text, now, wall, exclude=addr)

    def _login(
        self,
        raw: str,
        user: User | None,
        addr: Address,
        now: float,
        wall: float,
        newline: bool,
        line: Callable[[bytes], bytes],
    ) -> list[Effect]:
        m = self.members
        lang = m.config.lang
        if user is not None:
            if user.name == raw and user.session is None:
                return [Send(line(p.OK), (addr,))]  # a retried L: its OK was lost
            m.stats["refused.address_in_use"] += 1
            already = p.classic_text(lang, "already", user.name)
            return self.replies.error(addr, now, line(already))
        name, why = m.directory.check_new_name(raw)
        if why is None and not m.storage.writable:
            why = "storage"  # a join must be stored before anyone sees it
        if why is None:
            why = m.directory.admit(name, None)
        if why is not None:
            m.stats[f"refused.{why}"] += 1
            return [Send(line(p.classic_text(lang, why)), (addr,))]
        user = User(name, p.name_key(name), addr, newline=newline)
        m.arrive(user)
        _, effects = m.enter(user, m.conversations.lobby, now, wall)
        return [Send(line(p.OK), (addr,)), *effects]
