"""Test data more than one module reads.

``sample_history``: ten events over three days before ``NOW`` (joins, messages
in English and Chinese, a departure, a timeout, an announcement), on which the
history tests filter, search and page. A module passes its own version of
events 4, 5 and 9, the ones its checks are about (a text to search for, a text
that tries to drive the terminal).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chatroom.events import Event

NOW = datetime(2026, 11, 27, 15, 4, 5, tzinfo=UTC)


def at(delta: timedelta) -> float:
    """``delta`` before ``NOW``, as an event's ``created_at``."""
    return (NOW - delta).timestamp()


def sample_history(fourth: Event, fifth: Event, ninth: Event) -> list[Event]:
    """The ten events, with the module's own 4th, 5th and 9th."""
    assert (fourth.id, fifth.id, ninth.id) == (4, 5, 9)
    return [
        Event(1, "join", "alice", "", at(timedelta(days=3))),
        Event(2, "message", "alice", "hello world", at(timedelta(days=3, minutes=-1))),
        Event(3, "join", "Bob", "", at(timedelta(days=2))),
        fourth,
        fifth,
        Event(6, "announce", "server", "maintenance at five", at(timedelta(hours=3))),
        Event(7, "message", "carol", "午饭吃什么", at(timedelta(hours=2))),
        Event(8, "timeout", "bob", "", at(timedelta(hours=1))),
        ninth,
        Event(10, "quit", "alice", "", at(timedelta(minutes=5))),
    ]
