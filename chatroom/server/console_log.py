"""What the server's terminal shows of the chat: who comes and goes, and a pulse.

One line per join, leave and timeout, with how many are online after it, and a
summary line a minute (messages per second over that minute, users online)::

    14:02:11 alice joined #lobby (3 online)
    14:02:40 bob left #lobby, #dev (2 online)
    14:03:05 carol timed out #lobby (1 online)
    14:03:11 last minute: 42 messages (0.70/s), 1 online
    14:05:02 2 user(s) back after the restart (2 online)

Only committed events are reported: the loop's ``Committer`` hands each batch
to ``committed`` once it is stored (a batch that waits out a storage fault is
reported when it is finally stored), so the terminal never claims what the
database does not hold. A user leaving several rooms at once (BYE, a timeout)
is one line naming each room. An idle, empty minute prints no summary. Sessions
that resume after a server restart store no join (nobody saw them leave), so
they are counted instead, a line per tick that saw some.

The terminal must never hold up the chat: a line is written only when the output
can take it without blocking (a pipe nobody reads, a terminal stopped with
Ctrl-S); what could not be written is counted and said with the next line that
can. ``chatroom serve -q`` turns all of this off.
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable, Sequence
from typing import Final, TextIO

from chatroom.events import DM_PREFIX, Event
from chatroom.sanitize import visible

#: Seconds between summary lines.
SUMMARY_EVERY: Final = 60.0

_VERBS: Final = {"join": "joined", "quit": "left", "timeout": "timed out"}


class ConsoleLog:
    def __init__(
        self,
        out: TextIO,
        online: Callable[[], int],
        now: float,
        *,
        every: float = SUMMARY_EVERY,
        localtime: Callable[[float], time.struct_time] = time.localtime,
        resumed: Callable[[], int] | None = None,
    ) -> None:
        self.out = out
        self.online = online
        #: How many sessions have come back after a restart so far (the hub's
        #: count): they store no join, so ``committed`` never sees them.
        self.resumed = resumed
        self._resumed_seen = 0
        self.every = every
        self.localtime = localtime
        self._since = now
        self._next = now + every
        self._messages = 0
        self._peak = 0
        #: Lines that could not be written (the output was not being read).
        self.dropped = 0

    def committed(self, events: Sequence[Event]) -> None:
        """A batch of events is stored: report its joins, leaves and timeouts."""
        moves: dict[tuple[str, str], list[Event]] = {}
        for ev in events:
            if ev.kind == "message":
                self._messages += 1
            elif ev.kind in _VERBS and not ev.room.startswith(DM_PREFIX):
                moves.setdefault((ev.kind, ev.name), []).append(ev)
        if not moves:
            return
        online = self.online()
        self._peak = max(self._peak, online)
        for (kind, name), evs in moves.items():
            rooms = ", ".join(dict.fromkeys(ev.room for ev in evs))
            self._write(
                f"{self._stamp(evs[0].created_at)} {_plain(name)} {_VERBS[kind]} "
                f"{_plain(rooms)} ({online} online)"
            )

    def tick(self, now: float, wall: float) -> None:
        """Time passes: the sessions that came back since the last tick, and
        the summary line when a minute is up."""
        back = self.resumed() if self.resumed is not None else 0
        if back > self._resumed_seen:
            online = self.online()
            self._peak = max(self._peak, online)
            self._write(
                f"{self._stamp(wall)} {back - self._resumed_seen} user(s) back after the "
                f"restart ({online} online)"
            )
            self._resumed_seen = back
        if now < self._next:
            return
        online = self.online()
        seconds = max(now - self._since, 1e-9)
        if self._messages or online or self._peak:
            rate = self._messages / seconds
            span = "minute" if self.every == SUMMARY_EVERY else f"{self.every:g} s"
            self._write(
                f"{self._stamp(wall)} last {span}: {self._messages} message(s) "
                f"({rate:.2f}/s), {online} online"
            )
        self._since, self._messages, self._peak = now, 0, online
        self._next = max(self._next + self.every, now)  # never a burst to catch up

    def _stamp(self, wall: float) -> str:
        return time.strftime("%H:%M:%S", self.localtime(wall))

    def _write(self, line: str) -> None:
        if not _writable(self.out):
            self.dropped += 1
            return
        if self.dropped:
            line += f" ({self.dropped} earlier line(s) not shown: the output was not read)"
            self.dropped = 0
        try:
            self.out.write(line + "\n")
            self.out.flush()
        except (OSError, ValueError):
            self.dropped += 1  # the terminal is gone: the chat goes on


def _writable(out: TextIO) -> bool:
    """Can ``out`` take a line now without blocking? (A stream with no file
    descriptor, a test's StringIO, always can.)"""
    try:
        fd = out.fileno()
    except (OSError, ValueError, AttributeError):
        return True
    try:
        return bool(select.select([], [fd], [], 0)[1])
    except (OSError, ValueError):
        return False


def _plain(text: str) -> str:
    """Names and rooms as the terminal may show them: nothing a peer chose can
    drive it (they are checked on login, but the operator's terminal is worth a
    second look)."""
    return visible(text)
