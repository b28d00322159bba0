"""Large rooms: each event sent once, joins and leaves told together.

Why (issue 12, docs/architecture.md "Large rooms"): in a room of N members,
every join is an event for N people, so N logins cost N² datagrams; and every
member acknowledging what it receives makes one message cost the server two
datagrams per recipient. Large IRC networks and reliable multicast answer both
the same way, and so does a room here once it has ``LARGE`` members on this
node (until it falls below ``SMALL``, so that a room at the edge does not flip
at every join):

- **No per-member delivery state.** An event goes out once to every member (one
  payload, many addresses: sendmmsg), with no window and no retransmission
  timer. Receivers repair by NACK, as PGM and NORM do: the client pulls any hole
  it sees (it always could) and sends no ACKs. A lost *last* event has no later
  one to reveal it, so once the room falls quiet for ``TAIL_DELAY``, a ``HEAD``
  with the room's newest position (PGM's source path message) goes to the
  members that had to repair something in the last ``REPAIR_MEMORY`` seconds:
  those whose path loses datagrams; and again ``TAIL_BACKOFF`` times later,
  twice (as PGM repeats its SPMs), since a path that lost the event may lose
  the HEAD too. A HEAD to everyone would cost a datagram
  per member, as much as the event itself; a member on a clean path that does
  lose a last event learns of it from the PONG of its next heartbeat.
- **Joins and leaves coalesced.** They are stored and numbered as ever (the
  history keeps every one, positions stay contiguous), but not sent one by one:
  a run of them goes out as one ``SUM`` (``alice, bob and 37 others joined``),
  ``PRESENCE_DELAY`` after the run began, or just before the next message.
  Classic members get the same as plain lines.

A room that shrinks back to ``SMALL`` tells its members (``HEAD ... ack``) and
restarts their per-member streams at its newest position; what a member lacked
before that it pulls, as in the large room.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from chatroom import protocol as p
from chatroom.events import Event
from chatroom.protocol.wording import presence_lines
from chatroom.registry import Address, User
from chatroom.server.conversation import Conversation
from chatroom.server.delivery import Outbox
from chatroom.server.effects import Effect, Send, Store

#: Members (on this node) from which a room is large...
LARGE: Final = 100
#: ...and below which it is small again.
SMALL: Final = 50
#: A run of joins and leaves is told at most this long after it began.
PRESENCE_DELAY: Final = 1.0
#: A large room quiet this long tells its lossy members its newest position...
TAIL_DELAY: Final = 0.5
#: ...and again this many times later, ``TAIL_REPEATS`` times in all.
TAIL_BACKOFF: Final = 4.0
TAIL_REPEATS: Final = 3
#: A member that pulled a hole this recently is sent the HEADs.
REPAIR_MEMORY: Final = 300.0
#: Names a SUM lists, of those who joined and of those who left.
NAMES_SHOWN: Final = 3
PRESENCE: Final = frozenset({"join", "quit", "timeout"})


@dataclass(slots=True)
class PresenceRun:
    """Consecutive joins and leaves of one room, not sent yet."""

    first: int
    due: float
    last: int = 0
    #: The global id of the last: a SUM shows it, so it waits for its commit.
    last_id: int = 0
    ts: float = 0.0
    joined: int = 0
    left: int = 0
    names: list[str] = field(default_factory=list)

    def add(self, event: Event) -> None:
        self.last, self.last_id, self.ts = event.room_seq, event.id, event.created_at
        sign = "+" if event.kind == "join" else "-"
        if sign == "+":
            self.joined += 1
        else:
            self.left += 1
        if sum(1 for n in self.names if n[0] == sign) < NAMES_SHOWN:
            self.names.append(sign + event.name)

    def frame(self, chan: str) -> p.Summary:
        return p.Summary(
            self.first, self.last, self.ts, self.joined, self.left, tuple(self.names), chan
        )


@dataclass(slots=True)
class Audience:
    """A large room's addresses, by dialect, built once per membership change
    rather than once per event (10,000 members: a walk costs ~1 ms)."""

    v2: tuple[Address, ...]
    #: Where each v2 address is in ``v2``: a sender is cut out by slicing.
    index: dict[Address, int]
    classic: tuple[Address, ...]
    classic_nl: tuple[Address, ...]

    @classmethod
    def of(cls, members: Iterable[User]) -> Audience:
        v2: list[Address] = []
        classic: list[Address] = []
        classic_nl: list[Address] = []
        for u in members:
            if u.session is not None:
                v2.append(u.address)
            else:
                (classic_nl if u.newline else classic).append(u.address)
        return cls(tuple(v2), {a: i for i, a in enumerate(v2)}, tuple(classic), tuple(classic_nl))

    @property
    def has_classic(self) -> bool:
        """Classic members are rare in a large room: their lines are worded
        only when there is one to send them to."""
        return bool(self.classic or self.classic_nl)

    def v2_except(self, addr: Address | None) -> tuple[Address, ...]:
        i = self.index.get(addr) if addr is not None else None
        return self.v2 if i is None else self.v2[:i] + self.v2[i + 1 :]


@dataclass(slots=True)
class Crowd:
    """What a large room keeps instead of per-member streams."""

    run: PresenceRun | None = None
    #: When the room's HEAD is due (None: nothing sent since the last one).
    tail_due: float | None = None
    #: HEADs sent since the room's last event.
    tail_sent: int = 0
    audience: Audience | None = None
    #: Members that pulled a hole: address -> when they last did.
    repairing: dict[Address, float] = field(default_factory=dict)

    def lossy(self, audience: Audience, now: float) -> tuple[Address, ...]:
        """The members to send a HEAD to: those that repaired recently."""
        for addr in [a for a, t in self.repairing.items() if now - t > REPAIR_MEMORY]:
            del self.repairing[addr]
        return tuple(a for a in self.repairing if a in audience.index)


def shown(conv: Conversation) -> int:
    """The newest position ``conv``'s members are told exists (PONG, HEAD):
    not the joins and leaves waiting to be told together, or every member
    would pull them one by one before their SUM goes out."""
    crowd = conv.crowd
    if crowd is not None and crowd.run is not None:
        return crowd.run.first - 1
    return conv.last_seq


def _reveals(conv: Conversation) -> int:
    """The global id of the room's newest event: a HEAD shows it exists."""
    newest = conv.ring.get(conv.last_seq)
    return newest.id if newest is not None else 0


class Crowds:
    """The large rooms of this node, and the delivery that makes them cheap."""

    def __init__(self, lang: p.Lang) -> None:
        self.lang: p.Lang = lang
        self.large: dict[str, Conversation] = {}

    # ------------------------------------------------------------------ membership

    def changed(self, conv: Conversation) -> list[Effect]:
        """``conv``'s members changed: it may become large, or small again."""
        crowd = conv.crowd
        n = len(conv.members)
        if crowd is None:
            if not conv.is_room or n < LARGE:
                return []
            conv.crowd = Crowd()
            self.large[conv.key] = conv
            for outbox in self._outboxes(conv):
                outbox.sent_at.clear()  # nothing is retransmitted in a large room
                outbox.deadline = None
            return [self._head(conv, "nack")]
        crowd.audience = None
        if n >= SMALL:
            return []
        effects = self._flush(conv, crowd)
        conv.crowd = None
        del self.large[conv.key]
        for outbox in self._outboxes(conv):
            outbox.acked = outbox.sent_upto = conv.last_seq
            outbox.probation = False
        return [*effects, self._head(conv, "ack")]

    def readdressed(self, conv: Conversation) -> None:
        if conv.crowd is not None:
            conv.crowd.audience = None

    @staticmethod
    def _outboxes(conv: Conversation) -> Iterable[Outbox]:
        for u in conv.members:
            if u.session is not None and (outbox := u.session.subs.get(conv.key)) is not None:
                yield outbox

    # ------------------------------------------------------------------ delivery

    def fan_out(
        self,
        conv: Conversation,
        event: Event,
        now: float,
        *,
        exclude: Address | None = None,
        sender: User | None = None,
    ) -> list[Effect]:
        """``Store(event)`` and its sends in a large room (see the docstring)."""
        crowd = conv.crowd
        assert crowd is not None
        effects: list[Effect] = [Store(event)]
        if event.kind in PRESENCE:
            if crowd.run is None:
                crowd.run = PresenceRun(event.room_seq, now + PRESENCE_DELAY)
            crowd.run.add(event)
            return effects
        effects += self._flush(conv, crowd)
        audience = self._audience(conv, crowd)
        v2 = audience.v2_except(sender.address if sender is not None else None)
        if v2:
            frame = conv.ring.frame(event.room_seq) or p.encode(p.EventFrame(event))
            effects.append(Send(frame, v2, event.id))
        if audience.has_classic:
            plain = p.classic_event(self.lang, event)
            effects += self._classic(audience, [plain], event.id, exclude)
        crowd.tail_due, crowd.tail_sent = now + TAIL_DELAY, 0
        return effects

    def due(self, now: float) -> list[Effect]:
        """The runs whose time has come, and the HEADs of rooms fallen quiet."""
        effects: list[Effect] = []
        for conv in self.large.values():
            crowd = conv.crowd
            assert crowd is not None
            if crowd.run is not None and now >= crowd.run.due:
                effects += self._flush(conv, crowd)
                crowd.tail_due, crowd.tail_sent = now + TAIL_DELAY, 0
            elif crowd.tail_due is not None and now >= crowd.tail_due:
                crowd.tail_sent += 1
                crowd.tail_due = None
                if crowd.tail_sent < TAIL_REPEATS:
                    crowd.tail_due = now + TAIL_DELAY * TAIL_BACKOFF**crowd.tail_sent
                to = crowd.lossy(self._audience(conv, crowd), now)
                if to:
                    effects.append(self._head(conv, "nack", to))
        return effects

    @staticmethod
    def pulled(conv: Conversation, addr: Address, now: float) -> None:
        """A member of ``conv`` pulled a hole: its path loses datagrams."""
        if conv.crowd is not None:
            conv.crowd.repairing[addr] = now

    def _flush(self, conv: Conversation, crowd: Crowd) -> list[Effect]:
        """The pending run as one SUM (and plain lines for classic members)."""
        run = crowd.run
        if run is None:
            return []
        crowd.run = None
        audience = self._audience(conv, crowd)
        effects: list[Effect] = []
        if audience.v2:
            effects.append(Send(p.encode(run.frame(conv.key)), audience.v2, run.last_id))
        if audience.has_classic:
            told = presence_lines(self.lang, run.joined, run.left, tuple(run.names))
            effects += self._classic(audience, [s.encode() for s in told], run.last_id, None)
        return effects

    def _classic(
        self, audience: Audience, lines: list[bytes], reveals: int, exclude: Address | None
    ) -> list[Effect]:
        effects: list[Effect] = []
        for addrs, end in ((audience.classic, b""), (audience.classic_nl, b"\n")):
            to = tuple(a for a in addrs if a != exclude) if exclude is not None else addrs
            if to:
                effects += [Send(line + end, to, reveals) for line in lines]
        return effects

    def _head(
        self, conv: Conversation, mode: p.HeadMode, to: tuple[Address, ...] | None = None
    ) -> Send:
        """A HEAD to ``to`` (every v2 member by default)."""
        if to is None:
            crowd = conv.crowd
            to = (self._audience(conv, crowd) if crowd else Audience.of(conv.members)).v2
        head = p.Head(shown(conv), conv.count(), mode, conv.key)
        return Send(p.encode(head), to, _reveals(conv))

    @staticmethod
    def _audience(conv: Conversation, crowd: Crowd) -> Audience:
        if crowd.audience is None:
            crowd.audience = Audience.of(conv.members)
        return crowd.audience
