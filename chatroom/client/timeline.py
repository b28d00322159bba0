"""What the session shows of one conversation, and what it acknowledges. Pure.

A ``Timeline`` is one conversation: a room (``#lobby``, ``#dev``) or the direct
messages with one peer (``@bob``), each with its own contiguous event ids. It
turns incoming events into display outputs: the live stream in id order exactly
once (``stream.EventStream``), the last N events fetched again by /history
(``stream.Scrollback``), which events are history (id <= the WELCOME's or
JOINED's last_id: dimmed; days other than today dated), which messages are our
own, and the set of names in the room (for tab completion: ``online_changed``
tells the session to send the new set). It also keeps the cumulative ACK: every
``ack_every`` events, or ``ack_delay`` after the first unacknowledged one;
none in a large room (``HEAD ... nack``), which the client repairs by pulling
holes only, and whose joins and leaves come summarised (``SUM``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from chatroom.client.effects import Notice, Output, ShowEvent, ShowPresence
from chatroom.client.stream import EventStream, Item, PullRequest, Scrollback, span
from chatroom.events import LOBBY, Event
from chatroom.protocol import Head, Summary


@dataclass(slots=True)
class Timeline:
    name: str
    #: Ids up to this one happened before we joined.
    history_upto: int
    stream: EventStream
    scrollback: Scrollback
    ack_every: int = 16
    ack_delay: float = 0.2
    acked: int = 0
    online: set[str] = field(default_factory=set)
    own_ids: set[int] = field(default_factory=set)
    #: The conversation as the wire names it (``#dev``, ``@bob``).
    chan: str = LOBBY
    #: ``online`` changed since the session last looked.
    online_changed: bool = False
    _ack_due: float | None = None
    #: A retransmission of an event we already acknowledged arrived: that ACK was
    #: lost, and until the server has another it keeps resending its oldest
    #: unacknowledged events (never the newest, which may be the one we lack).
    _reack: bool = False
    #: No second re-ACK before this (a retransmission burst is up to 8 events).
    _reack_after: float = 0.0
    #: A large room (its last HEAD said ``nack``): no ACKs, holes are pulled.
    large: bool = False

    @classmethod
    def start(
        cls,
        name: str,
        last_id: int,
        history: int,
        *,
        gap_delay: float,
        ack_every: int,
        ack_delay: float,
        now: float,
        chan: str = LOBBY,
    ) -> Timeline:
        """After the first WELCOME (or a JOINED): replay the last ``history``
        events before it. A conversation that starts at an event we were sent
        starts with ``last_id`` just before it and no history."""
        start = max(0, last_id - max(0, history))
        stream = EventStream(start, start, gap_delay)
        stream.learn_high(last_id, now, immediate=True)
        return cls(name, last_id, stream, Scrollback(), ack_every, ack_delay, start, chan=chan)

    # ------------------------------------------------------------------ incoming

    def event(self, ev: Item, now: float, claim: Callable[[Event], bool]) -> list[Output]:
        """One EV (or a large room's SUM). ``claim(event)`` settles one of our
        in-flight messages whose EV came before (or without) its ACKED; True if
        it was ours."""
        out: list[Output] = []
        if span(ev)[1] > self.stream.delivered:
            for e in self.stream.receive(ev, now):
                out += self._show(e, claim) if isinstance(e, Event) else self._summary(e)
            if self.stream.delivered > self.acked and self._ack_due is None and not self.large:
                self._ack_due = now + self.ack_delay
        elif isinstance(ev, Summary):
            pass  # had already
        elif self.scrollback.wants(ev):
            batch = self.scrollback.add(ev)
            if batch is not None:
                out += self._show_scrollback(batch)
        elif self.acked >= ev.id and now >= self._reack_after:
            self._reack = True
            self._reack_after = now + self.ack_delay / 4
        return out

    def _show(self, ev: Event, claim: Callable[[Event], bool]) -> list[Output]:
        history = ev.id <= self.history_upto
        own = ev.id in self.own_ids or (not history and ev.name == self.name)
        if own and ev.kind == "message" and ev.id not in self.own_ids and claim(ev):
            self.own_ids.add(ev.id)
        out: list[Output] = [ShowEvent(ev, history=history, own=own and ev.kind == "message")]
        if not history and ev.kind in ("join", "quit", "timeout"):
            if ev.kind == "join" and ev.name not in self.online:
                self.online.add(ev.name)
                self.online_changed = True
            elif ev.kind != "join" and ev.name in self.online:
                self.online.discard(ev.name)
                self.online_changed = True
        return out

    def _summary(self, s: Summary) -> list[Output]:
        """A large room's joins and leaves, told together (only a large room
        sends them: no ACKs from now on)."""
        self.large = True
        self._ack_due = None
        history = s.last <= self.history_upto
        out: list[Output] = [ShowPresence(s, self.chan, history=history)]
        if not history:
            for n in s.names:
                if n[0] == "+" and n[1:] not in self.online:
                    self.online.add(n[1:])
                    self.online_changed = True
                elif n[0] == "-" and n[1:] in self.online:
                    self.online.discard(n[1:])
                    self.online_changed = True
        return out

    def head(self, h: Head, now: float) -> None:
        """The room's newest id (pull what we lack) and whether it is large."""
        self.stream.learn_high(h.last_id, now)
        self.large = h.mode == "nack"
        if self.large:
            self._ack_due = None

    def _show_scrollback(self, batch: list[Event]) -> list[Output]:
        header = Notice("history_header", {"count": len(batch), "room": self.chan})
        out: list[Output] = [header]
        out += [ShowEvent(e, history=True, own=e.id in self.own_ids) for e in batch]
        return out

    def gone(self, oldest: int, claim: Callable[[Event], bool]) -> list[Output]:
        """GONE: the server no longer keeps the ids before ``oldest``."""
        out: list[Output] = []
        skipped, ready = self.stream.skip_to(oldest)
        if skipped is not None and skipped[1] > self.history_upto:
            out.append(Notice("unavailable", {"first": skipped[0], "last": skipped[1]}))
        for e in ready:
            out += self._show(e, claim) if isinstance(e, Event) else self._summary(e)
        batch = self.scrollback.skip_to(oldest)
        if batch is not None:
            out += self._show_scrollback(batch) if batch else [Notice("no_events")]
        return out

    def users(self, total: int, names: tuple[str, ...]) -> None:
        """A USERS answer for this room: who is in it (when it is complete)."""
        if set(names) != self.online and total == len(names):
            self.online = set(names)
            self.online_changed = True

    def our_message(self, event_id: int, now: float) -> None:
        """An ACKED: ``event_id`` is ours (and exists)."""
        self.own_ids.add(event_id)
        self.stream.learn_high(event_id, now)

    def rebase(self, last_id: int) -> None:
        self.stream.rebase(last_id)
        self.scrollback = Scrollback()  # a different history: what was gone may exist
        self.acked = last_id

    # ------------------------------------------------------------------ outgoing

    def more_history(self, count: int) -> Notice | None:
        """/history N: start fetching the last N events shown, or say why not."""
        if self.scrollback.active:
            return Notice("history_busy")
        if not self.scrollback.request(count, self.stream.delivered):
            return Notice("no_events")
        return None

    def pulls_due(self, now: float, rto: float) -> list[PullRequest]:
        back = self.scrollback.pull_due(now, rto)
        return self.stream.pull_due(now, rto) + ([back] if back is not None else [])

    def ack_due(self, now: float) -> int | None:
        """The id to acknowledge now, if an ACK is due."""
        delivered = self.stream.delivered
        if self._reack and delivered >= self.acked:
            self._reack = False
            self.acked = delivered
            self._ack_due = None
            return delivered
        if delivered <= self.acked or self.large:
            self._ack_due = None
            return None
        if delivered - self.acked < self.ack_every and (
            self._ack_due is None or now < self._ack_due
        ):
            return None
        self.acked = delivered
        self._ack_due = None
        return delivered

    def retry_now(self, now: float) -> None:
        self.stream.retry_now(now)
        self.scrollback.retry_now(now)

    def deadlines(self) -> list[float]:
        times = [self.stream.deadline(), self.scrollback.deadline(), self._ack_due]
        return [t for t in times if t is not None]
