"""The chat server as a state machine: datagrams in, effects out.

``Hub`` composes the parts, each with one job: the ``Directory`` (who is
online, name admission), the ``Conversations`` (rooms and direct conversations,
each with its members, positions and recent events), the ``EventLog`` (ids),
``Membership`` (entering, leaving, publishing), the ``Guard`` (abuse), and one
object per dialect. It dispatches each input to them and returns effects.

No sockets, no clock reads, no randomness except through the injected token
source; every entry point takes ``now`` (monotonic) and ``wall`` (the epoch
time events are stamped with). The socket loop (loop.py) commits every
``Store`` of a batch, and only then performs the ``Send`` effects, so anything a
client is shown is already durable.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from chatroom import protocol as p
from chatroom.events import Event
from chatroom.registry import Address, Registry
from chatroom.server.classic import ClassicDialect
from chatroom.server.config import ServerConfig
from chatroom.server.conversation import Conversations
from chatroom.server.directory import Claims, Directory
from chatroom.server.effects import Effect, Send
from chatroom.server.eventlog import EventLog
from chatroom.server.guard import Guard
from chatroom.server.membership import Membership
from chatroom.server.replica import Replica
from chatroom.server.replies import Replies
from chatroom.server.storage_state import UNAVAILABLE, StorageState
from chatroom.server.v2 import V2Dialect

#: Seconds between two looks for silent sessions.
IDLE_CHECK: float = 1.0


class Hub:
    """The whole server core. See the module docstring for the contract."""

    def __init__(
        self,
        new_registry: Callable[[], Registry],
        token: Callable[[], str],
        config: ServerConfig | None = None,
        *,
        last_id: int = 0,
        recent: Iterable[Event] = (),
        heads: dict[str, int] | None = None,
        claims: Claims | None = None,
    ) -> None:
        """``claims``: this node is one of a cluster (chatroom/cluster/): names
        are claimed across it, and events are numbered by the database as they
        are stored, then applied (``replica``) rather than numbered here."""
        self.config = config or ServerConfig()
        self.stats: Counter[str] = Counter()
        #: The loop keeps it current (see storage_state.py).
        self.storage = StorageState(committed=last_id)
        self.directory = Directory(new_registry(), claims)
        self.conversations = Conversations(
            new_registry, self.config.ring_size, recent=recent, heads=heads
        )
        self.guard = Guard(
            lambda: bytes.fromhex(token() + token()),
            rate=self.config.rate,
            login_rate=self.config.login_rate,
            max_sessions_per_ip=self.config.max_sessions_per_ip,
        )
        self.members = Membership(
            self.config,
            self.directory,
            self.conversations,
            EventLog(last_id, numbering=claims is None),
            self.guard,
            self.stats,
            self.storage,
        )
        replies = Replies(self.guard, self.stats)
        self.classic = ClassicDialect(self.members, replies)
        self.v2 = V2Dialect(self.members, replies, token)
        self._replies = replies
        #: Applies events numbered by the database (a cluster's nodes).
        self.replica = Replica(self.members)
        self._next_idle_check = 0.0

    # ------------------------------------------------------------------ queries

    @property
    def last_id(self) -> int:
        return self.members.log.last_id

    def users(self) -> list[str]:
        return self.directory.names()

    def online(self) -> int:
        """Users online: here, and on the other nodes of a cluster."""
        return len(self.directory) + len(self.directory.remote)

    # ------------------------------------------------------------------ inputs

    def handle(self, data: bytes, addr: Address, now: float, wall: float) -> list[Effect]:
        """One datagram from ``addr``. Never raises on peer input."""
        self.stats["datagrams"] += 1
        if self.guard.muted(addr, now):  # a flooder: not even parsed
            self.stats["drop.muted"] += 1
            return []
        frame = p.parse(data)
        match frame:
            case p.BadFrame():
                return self._bad(frame, addr, now)
            case p.ClassicLogin() | p.ClassicChat() | p.ClassicQuit():
                if not self.config.classic_allowed(addr):
                    self.stats["drop.classic_policy"] += 1
                    return []
                return self.classic.handle(frame, addr, now, wall, data.endswith(b"\n"))
            case p.Login():
                return self.v2.login(frame, addr, now, wall)
            case _:
                return self.v2.handle(frame, addr, now, wall)

    def announcement_problem(self, text: str) -> str | None:
        """Why ``announce(text)`` would refuse it, for the operator; None if fine."""
        if not self.storage.writable:
            return UNAVAILABLE
        text = " ".join(text.split())
        if not text:
            return "the announcement is empty"
        if p.bad_text_char(text) is not None:
            return "control characters are not allowed"
        if p.text_too_long(text):
            return f"too long: the limit is {p.MAX_TEXT} bytes of UTF-8"
        return None

    def announce(self, text: str, now: float, wall: float) -> list[Effect]:
        """An operator announcement (console or control socket), stored and sent
        in every room (the lobby always). Refused (no effects) when
        ``announcement_problem`` names a problem."""
        if self.announcement_problem(text) is not None:
            return []
        text = " ".join(text.split())
        effects: list[Effect] = []
        for conv in list(self.conversations.rooms()):
            effects += self.members.publish(conv, "announce", "", text, now, wall)
        return effects

    def on_timer(self, now: float, wall: float) -> list[Effect]:
        """Retransmit what is overdue; once a second, evict silent v2 sessions."""
        effects = self.v2.on_timer(now) + self.members.crowds.due(now)
        if now < self._next_idle_check:
            return effects
        self._next_idle_check = now + IDLE_CHECK
        for user in self.v2.stale(now):
            self.stats["timeouts"] += 1
            effects += self.members.depart(user, "timeout", now, wall, exclude=None)
        self.guard.prune(now)
        return effects

    def shutdown(self, now: float, wall: float) -> list[Effect]:
        """Tell everyone the server is going away (stored as an announcement)."""
        if self.online() == 0:
            return []
        return self.announce("server shutting down", now, wall)

    def farewell(self) -> list[Effect]:
        """The shutdown notice when it cannot be stored (the database is failing):
        classic peers get the usual line, v2 sessions ``ERR shutdown``; nothing is
        stored or numbered, so no client's sequence is disturbed."""
        effects: list[Effect] = []
        line = p.classic_text(self.config.lang, "shutdown")
        err = p.encode(p.Error("shutdown", "the server is shutting down"))
        for user in self.directory.users:
            if user.session is not None:
                effects.append(Send(err, (user.address,)))
            else:
                effects.append(Send(line + b"\n" if user.newline else line, (user.address,)))
        return effects

    # ------------------------------------------------------------------ garbage

    def _bad(self, frame: p.BadFrame, addr: Address, now: float) -> list[Effect]:
        self.stats[f"drop.{frame.reason}"] += 1
        if frame.reason == "empty":
            return []  # nothing worth answering, and an answer would help a flood
        user = self.directory.find_address(addr)
        if user is None:
            return []  # an unknown peer's garbage gets no answer
        if frame.reason == "oversize":
            # A netcat user's long line: say why it vanished (a reply a
            # fraction of its size, rate-limited like every error). Our client
            # never sends one: it checks the size before.
            if user.session is not None or not self.config.classic_allowed(addr):
                return []
            nl = b"\n" if user.newline else b""
            toolong = p.classic_text(self.config.lang, "toolong")
            return self._replies.error(addr, now, toolong + nl)
        if frame.dialect == "v2":
            err = p.encode(p.Error(frame.reason, frame.detail))
            return self._replies.error(addr, now, err)
        if not self.config.classic_allowed(addr):
            return []
        nl = b"\n" if user.newline else b""
        return self._replies.error(addr, now, f"ERR {frame.detail}".encode() + nl)
