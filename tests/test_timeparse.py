"""--since/--until values, with a pinned clock and time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import click
import pytest

from chatroom.timeparse import MomentType, parse_moment

pytestmark = pytest.mark.pure

NOW = datetime(2026, 11, 27, 15, 4, 5, tzinfo=UTC)
PLUS2 = timezone(timedelta(hours=2))


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("now", NOW),
        ("today", utc(2026, 11, 26, 22)),  # local (UTC+2) midnight
        ("yesterday", utc(2026, 11, 25, 22)),
        ("tomorrow", utc(2026, 11, 27, 22)),
        ("TODAY", utc(2026, 11, 26, 22)),
        ("10m", NOW - timedelta(minutes=10)),
        ("2h", NOW - timedelta(hours=2)),
        ("3d", NOW - timedelta(days=3)),
        ("1w", NOW - timedelta(weeks=1)),
        ("90s", NOW - timedelta(seconds=90)),
        ("1h30m", NOW - timedelta(hours=1, minutes=30)),
        ("2 hours ago", NOW - timedelta(hours=2)),
        ("-2h", NOW - timedelta(hours=2)),
        ("2026-11-27", utc(2026, 11, 26, 22)),
        ("2026-11-27 15:04", utc(2026, 11, 27, 13, 4)),
        ("2026-11-27T15:04:05", utc(2026, 11, 27, 13, 4, 5)),
        ("2026-11-27T15:04:05Z", utc(2026, 11, 27, 15, 4, 5)),
        ("2026-11-27T15:04+01:00", utc(2026, 11, 27, 14, 4)),
        ("9:30", utc(2026, 11, 27, 7, 30)),
        ("15:04:05", utc(2026, 11, 27, 13, 4, 5)),
    ],
)
def test_parse(value: str, expected: datetime) -> None:
    got = parse_moment(value, NOW, PLUS2)
    assert got == expected
    assert got.tzinfo is not None and got.utcoffset() == timedelta(0)


def test_today_follows_the_local_date_not_the_utc_date() -> None:
    late = datetime(2026, 11, 27, 23, 30, tzinfo=UTC)  # already the 28th at UTC+2
    assert parse_moment("today", late, PLUS2) == utc(2026, 11, 27, 22)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "empty"),
        ("bogus", "cannot read"),
        ("10x", "unknown unit"),
        ("1y", "unknown unit"),
        ("2026-13-01", "cannot read"),
        ("99999999999d", "before the year 1"),
    ],
)
def test_bad_values(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_moment(value, NOW, PLUS2)


def test_param_type_uses_the_injected_clock_and_fails_as_usage_error() -> None:
    t = MomentType(clock=lambda: NOW, tz=UTC)
    assert t.convert("1h", None, None) == NOW - timedelta(hours=1)
    with pytest.raises(click.BadParameter):
        t.convert("nonsense", None, None)
