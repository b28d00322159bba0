"""The client's view of the room's event sequence: ordering, gaps and pulls.

Event ids are contiguous and every v2 session receives every event, so the
client always knows which ids it lacks. ``EventStream`` holds a reorder buffer,
releases events strictly in id order, each exactly once, and decides when to
PULL a missing range: at once for ranges the server told us about (WELCOME,
a finished page), after ``gap_delay`` for a hole in the live stream (the missing
datagram may merely be late) or as soon as ``REORDER_THRESHOLD`` later events
have arrived past it (TCP's fast retransmit, RFC 5681: that many overtaking
datagrams make a loss likelier than a reordering), and again after a timeout if
the answer is lost.

``Scrollback`` fetches the last N events shown (``/history N``), again, and hands
them over in one ordered batch once all of them have arrived.

A large room's joins and leaves come as one ``Summary`` of a range of ids
(``SUM``); the stream takes it as that whole range, in its place in the order.

Both are pure: ``now`` is passed in, nothing is sent from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from chatroom.events import Event
from chatroom.protocol import Summary

#: What a stream orders: an event, or a large room's summary of a range of them.
Item = Event | Summary


def span(item: Item) -> tuple[int, int]:
    """The ids ``item`` stands for (first, last)."""
    if isinstance(item, Summary):
        return item.first, item.last
    return item.id, item.id


#: Most events the server answers to one PULL (room.MAX_PULL).
PAGE: Final = 32
#: Events buffered ahead of a hole; anything further is dropped and pulled later.
MAX_BUFFER: Final = 4096
#: Events past a hole that make it pulled before ``gap_delay`` (a "fast pull").
REORDER_THRESHOLD: Final = 3
#: Most holes pulled at once (one PULL each).
MAX_HOLES: Final = 8
#: A hole's PULL is repeated with its timeout doubled, up to this. Every event
#: after the hole waits on it, and a PULL is one small datagram, so the cap is
#: low: at 20% loss each way a cap of 8 s (the SAY timer's) stalled a whole
#: stream for 8 s after four unlucky round trips.
PULL_BACKOFF_MAX: Final = 2.0


@dataclass(frozen=True, slots=True)
class PullRequest:
    after: int
    limit: int


@dataclass(slots=True)
class _Outstanding:
    """One PULL in flight: it asked for the ids in (after, upto]."""

    after: int
    upto: int
    deadline: float
    rto: float


@dataclass(slots=True)
class EventStream:
    """``delivered``: every id <= it has been handed out. ``known_high``: the
    highest id the server has shown to exist.

    Each hole is asked for on its own (``_asked``: the ranges PULLed and not yet
    answered), so a lost answer delays only its hole, and holes that open while
    others are being fetched are asked for at once rather than one round trip at
    a time: at 10% loss a busy room always has several (the v2 benchmark's
    head-of-line blocking, docs/benchmarks.md). A hole inside a range already
    asked for waits for that answer (a page arriving over a slow link is not
    asked for again) until the ask's timeout, which doubles on each expiry.
    """

    delivered: int
    known_high: int
    gap_delay: float = 0.1
    #: By first id (a summary's first id of its range).
    buffer: dict[int, Item] = field(default_factory=dict)
    #: When an un-asked hole became due to be pulled after ``gap_delay``.
    _gap_since: float | None = None
    _asked: list[_Outstanding] = field(default_factory=list)
    #: Events received past the newest hole (None: it has been fast-pulled).
    _past_newest: int | None = None

    @property
    def behind(self) -> bool:
        return self.delivered < self.known_high

    def learn_high(self, last_id: int, now: float, *, immediate: bool = False) -> None:
        """The server says events up to ``last_id`` exist."""
        if last_id > self.known_high:
            self.known_high = last_id
        if self.behind and (immediate or self._gap_since is None):
            self._gap_since = now - self.gap_delay if immediate else now

    def receive(self, item: Item, now: float) -> list[Item]:
        """Take one event (or summary); return those now deliverable, in id
        order (possibly none)."""
        first, last = span(item)
        first = max(first, self.delivered + 1)  # a summary of ids partly had
        if last < first or first in self.buffer:
            return []  # a duplicate
        if len(self.buffer) >= MAX_BUFFER:
            return []  # too far ahead: it will be pulled when its turn comes
        if first > self.known_high + 1:
            self._past_newest = 1  # a hole opened just before this event
        elif first > self.known_high and self._past_newest is not None:
            self._past_newest += 1
        self.buffer[first] = item
        self.known_high = max(self.known_high, last)
        out = self._release()
        if self.behind:
            if self._gap_since is None:
                self._gap_since = now
            if self._past_newest is not None and self._past_newest >= REORDER_THRESHOLD:
                self._gap_since = min(self._gap_since, now - self.gap_delay)  # due now
                self._past_newest = None
        return out

    def _release(self) -> list[Item]:
        out: list[Item] = []
        spanned = False
        while (item := self.buffer.pop(self.delivered + 1, None)) is not None:
            out.append(item)
            self.delivered = span(item)[1]
            spanned = spanned or isinstance(item, Summary)
        if spanned:  # what a summary covered, had also as events, is done with
            for key in [k for k in self.buffer if k <= self.delivered]:
                del self.buffer[key]
        if out and self._asked:
            done = [ask for ask in self._asked if ask.upto <= self.delivered]
            if done:
                self._asked = [ask for ask in self._asked if ask.upto > self.delivered]
                if self.behind and any(ask.upto - ask.after >= PAGE for ask in done):
                    # A full page arrived: fetch what follows it right away.
                    self._gap_since = float("-inf")
        if not self.behind:
            self._gap_since = None
            self._asked.clear()
        return out

    def skip_to(self, oldest: int) -> tuple[tuple[int, int] | None, list[Item]]:
        """GONE: the server no longer keeps ids < ``oldest``. Returns the skipped
        range (first, last) if any, and the events now deliverable."""
        if self.delivered + 1 >= oldest:
            return None, []
        skipped = (self.delivered + 1, oldest - 1)
        self.delivered = oldest - 1
        for key in [k for k in self.buffer if k <= self.delivered]:
            del self.buffer[key]
        self._asked.clear()
        self.known_high = max(self.known_high, self.delivered)
        self._gap_since = float("-inf") if self.behind else None
        return skipped, self._release()

    def rebase(self, last_id: int) -> None:
        """The server's history is not the one we followed (a different database):
        start again from its newest id."""
        self.delivered = self.known_high = last_id
        self.buffer.clear()
        self._asked.clear()
        self._gap_since = None

    def pull_due(self, now: float, rto: float) -> list[PullRequest]:
        """The PULLs to send now: one per hole that is due (at most ``MAX_HOLES``
        holes are considered), each for the hole only, not for what the buffer
        already holds. A hole is due ``gap_delay`` after it opened (or at once,
        see ``REORDER_THRESHOLD``) unless a PULL in flight covers it, and again
        when that PULL's answer is overdue, with the timeout doubled."""
        if not self.behind:
            self._asked.clear()
            self._gap_since = None
            return []
        fresh_due = self._gap_since is not None and now >= self._gap_since + self.gap_delay
        overdue = any(now >= ask.deadline for ask in self._asked)
        if not fresh_due and not overdue:
            return []
        out: list[PullRequest] = []
        asked: list[_Outstanding] = []
        for hole in self._holes():
            first = hole.after + 1
            cover = next((a for a in self._asked if a.after < first <= a.upto), None)
            if cover is None:
                if not fresh_due:
                    continue
                timeout = rto
            elif now < cover.deadline:
                continue
            else:
                timeout = min(cover.rto * 2, PULL_BACKOFF_MAX)  # its answer was lost
            asked.append(_Outstanding(hole.after, hole.after + hole.limit, now + timeout, timeout))
            out.append(hole)
        lapsed = [a for a in self._asked if now >= a.deadline]
        self._asked = [a for a in self._asked if now < a.deadline] + asked
        if fresh_due:
            self._gap_since = None  # every hole considered is asked for
        elif lapsed and not asked:
            self._gap_since = now  # lapsed asks of holes past the first MAX_HOLES
        return out

    def _holes(self) -> list[PullRequest]:
        holes: list[PullRequest] = []
        prev = self.delivered
        for event_id in [*sorted(self.buffer), self.known_high + 1]:
            if event_id > prev + 1:
                holes.append(PullRequest(prev, min(PAGE, event_id - 1 - prev)))
                if len(holes) == MAX_HOLES:
                    break
            item = self.buffer.get(event_id)
            prev = max(prev, span(item)[1] if item is not None else event_id)
        return holes

    def retry_now(self, now: float) -> None:
        """The path came back: re-ask for whatever is outstanding at once."""
        for ask in self._asked:
            ask.deadline = now

    def deadline(self) -> float | None:
        if not self.behind:
            return None
        times = [ask.deadline for ask in self._asked]
        if self._gap_since is not None:
            times.append(self._gap_since + self.gap_delay)
        return min(times) if times else None


@dataclass(slots=True)
class Scrollback:
    """Fetches the last ``count`` events up to the newest shown, for /history:
    those of the replay and of the live stream alike, which is what people
    expect of it (``/history 20``: the room's last 20 events), not only the ones
    older than the screen (none, in a room younger than the replay)."""

    #: Ids up to this one are no longer kept by the server (GONE).
    floor: int = 0
    lo: int = 0
    hi: int = 0
    active: bool = False
    got: dict[int, Event] = field(default_factory=dict)
    _pull: _Outstanding | None = None

    def request(self, count: int, newest: int) -> bool:
        """Start fetching the ``count`` events up to id ``newest``; False when
        there is none to fetch."""
        if newest <= self.floor or count <= 0:
            return False
        self.lo, self.hi = max(self.floor, newest - count), newest
        self.active = True
        self.got.clear()
        self._pull = None
        return True

    def wants(self, event: Event) -> bool:
        return self.active and self.lo < event.id <= self.hi

    def add(self, event: Event) -> list[Event] | None:
        """Store one fetched event; return the whole ordered batch when complete."""
        self.got[event.id] = event
        first = self._first_missing()
        if first is None:
            return self._finish()
        if self._pull is not None and first > self._pull.upto:
            self._pull = None  # this page is complete: ask for the next at once
        return None

    def _finish(self) -> list[Event]:
        batch = [self.got[i] for i in sorted(self.got)]
        self.active = False
        self.got.clear()
        self._pull = None
        return batch

    def skip_to(self, oldest: int) -> list[Event] | None:
        """GONE: the earliest ids are not kept any more; narrow the range."""
        self.floor = max(self.floor, oldest - 1)
        if not self.active or self.lo + 1 >= oldest:
            return None
        self.lo = min(oldest - 1, self.hi)
        self.got = {k: v for k, v in self.got.items() if k > self.lo}
        self._pull = None
        if self._first_missing() is None:
            return self._finish()
        return None

    def _first_missing(self) -> int | None:
        for i in range(self.lo + 1, self.hi + 1):
            if i not in self.got:
                return i
        return None

    def pull_due(self, now: float, rto: float) -> PullRequest | None:
        if not self.active:
            return None
        if self._pull is not None:
            if now < self._pull.deadline:
                return None
            rto = min(self._pull.rto * 2, 8.0)
        first = self._first_missing()
        if first is None:
            return None
        limit = min(PAGE, self.hi - first + 1)
        self._pull = _Outstanding(first - 1, first - 1 + limit, now + rto, rto)
        return PullRequest(first - 1, limit)

    def retry_now(self, now: float) -> None:
        if self._pull is not None:
            self._pull.deadline = now

    def deadline(self) -> float | None:
        if not self.active:
            return None
        return float("-inf") if self._pull is None else self._pull.deadline
