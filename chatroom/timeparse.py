"""``--since`` / ``--until`` values: ISO dates and times, words, and "that long ago".

Accepted (the journalctl vocabulary, minus its rarer forms):

- ``2026-11-27``, ``2026-11-27 15:04``, ``2026-11-27T15:04:05``, with an optional
  ``Z`` or ``+01:00``; without an offset the time is local;
- ``15:04`` or ``15:04:05``: that time today (local);
- ``now``, ``today``, ``yesterday``, ``tomorrow`` (the last three at local midnight);
- durations meaning "that long before now": ``90s``, ``10m``, ``2h``, ``3d``, ``1w``,
  combinations such as ``1h30m``, long unit names (``2 hours``), an optional leading
  ``-`` or trailing ``ago``.

The clock and the local time zone are arguments, so tests pin them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

import click

Clock = Callable[[], datetime]

UNITS: dict[str, int] = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600),
    **dict.fromkeys(("d", "day", "days"), 86400),
    **dict.fromkeys(("w", "week", "weeks"), 7 * 86400),
}
_DURATION = re.compile(r"^-?\s*((?:\d+\s*[a-z]+\s*)+?)(?:ago)?$")
_PART = re.compile(r"(\d+)\s*([a-z]+)")
_TIME_ONLY = re.compile(r"^\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$")

HELP = (
    "an ISO date/time (2026-11-27, '2026-11-27 15:04', 15:04), "
    "now, today, yesterday, tomorrow, or a duration ago (10m, 2h, 3d, 1w)"
)


def system_clock() -> datetime:
    """The current time, UTC."""
    return datetime.now(UTC)


def parse_moment(value: str, now: datetime, tz: tzinfo | None = None) -> datetime:
    """The instant ``value`` names, as an aware UTC datetime.

    ``now`` is the current instant (aware); ``tz`` the local zone (None: the
    system's, with its daylight-saving rules). Raises ValueError with a message that
    says what is accepted.
    """
    text = value.strip().lower()
    if not text:
        raise ValueError(f"empty time; expected {HELP}")
    today = _local(now, tz).date()
    words = {
        "now": None,
        "today": today,
        "yesterday": today - timedelta(days=1),
        "tomorrow": today + timedelta(days=1),
    }
    if text in words:
        day = words[text]
        return now.astimezone(UTC) if day is None else _midnight(day, tz)
    if (m := _DURATION.match(text)) is not None:
        try:
            return now.astimezone(UTC) - _duration(m.group(1), value)
        except OverflowError:
            raise ValueError(f"{value!r} reaches back before the year 1") from None
    if _TIME_ONLY.match(text):
        return _localize(datetime.combine(today, time.fromisoformat(_pad(text))), tz)
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"cannot read {value!r} as a time; expected {HELP}") from None
    if parsed.tzinfo is None:
        return _localize(parsed, tz)
    return parsed.astimezone(UTC)


class MomentType(click.ParamType[datetime, Any]):
    """A click parameter type for :func:`parse_moment` (a bad value is a usage error)."""

    name = "when"

    def __init__(self, clock: Clock = system_clock, tz: tzinfo | None = None) -> None:
        self.clock = clock
        self.tz = tz

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_moment(str(value), self.clock(), self.tz)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _duration(spec: str, original: str) -> timedelta:
    seconds = 0
    for amount, unit in _PART.findall(spec):
        if unit not in UNITS:
            raise ValueError(
                f"unknown unit {unit!r} in {original!r}; use s, m, h, d or w (e.g. 10m, 2h)"
            )
        seconds += int(amount) * UNITS[unit]
    return timedelta(seconds=seconds)


def _pad(text: str) -> str:
    # time.fromisoformat wants two-digit hours.
    return "0" + text if text.index(":") == 1 else text


def _local(moment: datetime, tz: tzinfo | None) -> datetime:
    return moment.astimezone(tz) if tz is not None else moment.astimezone()


def _localize(naive: datetime, tz: tzinfo | None) -> datetime:
    """A naive local wall time as an aware UTC instant."""
    aware = naive.replace(tzinfo=tz) if tz is not None else naive.astimezone()
    return aware.astimezone(UTC)


def _midnight(day: date, tz: tzinfo | None) -> datetime:
    return _localize(datetime.combine(day, time()), tz)
