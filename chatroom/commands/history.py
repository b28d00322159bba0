"""``chatroom history``: read, filter, search and follow the stored events.

Anchors: ``journalctl`` (-n, -r, -S/-U, -f), ``llm logs`` (-n, -q, --json),
``sqlite-utils`` (--csv/--json shapes). It opens the database read-only and never
creates one; it runs next to a writing server (WAL, busy_timeout).
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, tzinfo
from typing import IO, TYPE_CHECKING, Final

import click

from chatroom.commands.options import db_option
from chatroom.events import EVENT_KINDS, Event, EventKind
from chatroom.sanitize import BIDI_AND_SEPARATORS, visible
from chatroom.timeparse import Clock, MomentType, system_clock

if TYPE_CHECKING:
    from storage.queries import HistoryQuery
    from storage.store import EventStore

FORMATS: Final = ("text", "json", "jsonl", "csv")
CSV_FIELDS: Final = ("id", "kind", "name", "text", "created_at")
POLL_SECONDS: Final = 0.5
FOLLOW_PAGE: Final = 1000
# A message starting with this is an action (chatroom.protocol.classic.classic_event).
ACTION_PREFIX: Final = "/me "

# JSON escapes C0 controls itself; these too, so that JSON printed on a terminal
# cannot drive it either (still valid JSON, and the exact text once parsed).
_JSON_SAFE: Final = str.maketrans(
    {c: f"\\u{c:04x}" for c in (0x7F, *range(0x80, 0xA0), *BIDI_AND_SEPARATORS)}
)


def iso_utc(epoch_seconds: float) -> str:
    """``2026-11-27T15:04:05.123456Z``."""
    moment = datetime.fromtimestamp(epoch_seconds, UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def as_dict(event: Event) -> dict[str, object]:
    return {
        "id": event.id,
        "kind": event.kind,
        "name": event.name,
        "text": event.text,
        "created_at": iso_utc(event.created_at),
    }


def to_json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False).translate(_JSON_SAFE)


def text_line(event: Event, tz: tzinfo | None) -> str:
    """One event in the chat's own words, every user-supplied part made visible."""
    moment = datetime.fromtimestamp(event.created_at, UTC)
    local = moment.astimezone(tz) if tz is not None else moment.astimezone()
    stamp = local.strftime("%Y-%m-%d %H:%M")
    name = visible(event.name)
    match event.kind:
        case "message" if event.text.startswith(ACTION_PREFIX):
            # `/me waves`: an action, as the client and classic users see it.
            body = f"* {name} {visible(event.text.removeprefix(ACTION_PREFIX))}"
        case "message":
            body = f"{name} : {visible(event.text)}"
        case "join":
            body = f"{name} joined"
        case "quit":
            body = f"{name} left"
        case "timeout":
            body = f"{name} timed out"
        case "announce":
            body = f"[announcement] {visible(event.text)}"
        case _:
            body = f"{name} {visible(event.kind)} {visible(event.text)}".rstrip()
    return f"{stamp}  {body}"


class Printer:
    """Writes events in one format; ``finish`` closes what ``json`` opened."""

    def __init__(self, out: IO[str], fmt: str, tz: tzinfo | None) -> None:
        self.out = out
        self.fmt = fmt
        self.tz = tz
        self._first = True
        self._csv = csv.writer(out) if fmt == "csv" else None
        if self._csv is not None:
            self._csv.writerow(CSV_FIELDS)
        elif fmt == "json":
            out.write("[")

    def write(self, events: Iterable[Event]) -> None:
        out = self.out
        for event in events:
            if self._csv is not None:
                d = as_dict(event)
                self._csv.writerow([d[f] for f in CSV_FIELDS])
            elif self.fmt == "json":
                out.write(("\n" if self._first else ",\n") + to_json(as_dict(event)))
            elif self.fmt == "jsonl":
                out.write(to_json(as_dict(event)) + "\n")
            else:
                out.write(text_line(event, self.tz) + "\n")
            self._first = False
        out.flush()

    def finish(self) -> None:
        if self.fmt == "json":
            self.out.write("]\n" if self._first else "\n]\n")
        self.out.flush()


def build_history(
    clock: Clock = system_clock,
    tz: tzinfo | None = None,
    sleep: Callable[[float], object] = time.sleep,
) -> click.Command:
    """The ``history`` command; tests pass a fixed clock, a time zone and a fake sleep."""
    moment = MomentType(clock, tz)

    @click.command("history")
    @click.option(
        "-n",
        "--limit",
        type=click.IntRange(min=0),
        default=20,
        show_default=True,
        help="Show the newest N matching events (0: all).",
    )
    @click.option("-r", "--reverse", is_flag=True, help="Newest first.")
    @click.option(
        "-u",
        "--user",
        "users",
        multiple=True,
        metavar="NAME",
        help="Only events of this user (ignores case; repeatable).",
    )
    @click.option(
        "--kind",
        "kinds",
        multiple=True,
        type=click.Choice(EVENT_KINDS),
        help="Only events of this kind (repeatable).",
    )
    @click.option("-S", "--since", type=moment, help="Not before this time (formats: Times above).")
    @click.option("-U", "--until", type=moment, help="Not after this time (formats: Times above).")
    @click.option(
        "-q", "--search", metavar="TEXT", help='Full-text search: words, "a phrase", prefix*.'
    )
    @click.option(
        "--after-id",
        type=click.IntRange(min=0),
        metavar="ID",
        help="Only ids above ID (alone: the oldest N after it, to page forward).",
    )
    @click.option(
        "--before-id",
        type=click.IntRange(min=0),
        metavar="ID",
        help="Only ids below ID (to page back).",
    )
    @click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default=None,
        help="Output format [default: text].",
    )
    @click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
    @click.option("--utc", is_flag=True, help="Show times in UTC, not local time.")
    @click.option("-f", "--follow", is_flag=True, help="Keep printing new events until Ctrl-C.")
    @click.option("--count", is_flag=True, help="Print only the number of matching events.")
    @db_option
    def history(
        limit: int,
        reverse: bool,
        users: tuple[str, ...],
        kinds: tuple[EventKind, ...],
        since: datetime | None,
        until: datetime | None,
        search: str | None,
        after_id: int | None,
        before_id: int | None,
        fmt: str | None,
        as_json: bool,
        utc: bool,
        follow: bool,
        count: bool,
        db: str | None,
    ) -> None:
        """Show stored chat history: joins, messages, departures, announcements.

        \b
        Examples:
          chatroom history                     the last 20 events
          chatroom history -n 0 --json         everything, as JSON
          chatroom history -u alice -S 2h      alice, the last two hours
          chatroom history -q 'lunch friday'   messages with both words
          chatroom history -f                  keep watching

        \b
        Times (-S/-U): 2026-11-27, '2026-11-27 15:04', 15:04, now, today,
        yesterday, or how long ago: 10m, 2h, 3d, 1w. Local time unless given
        with Z or an offset.
        """
        if as_json:
            if fmt not in (None, "json"):
                raise click.UsageError("--json conflicts with --format " + str(fmt))
            fmt = "json"
        fmt = fmt or "text"
        if follow and count:
            raise click.UsageError("--follow and --count cannot be used together")
        if follow and reverse:
            raise click.UsageError("--follow prints new events last; drop --reverse")
        if follow and fmt == "json":
            raise click.UsageError("--follow needs a streamable format: use --format jsonl")
        # storage (SQLAlchemy) is imported here, not at the top: every other chatroom
        # command would pay ~0.3 s for it at start-up.
        from storage.config import resolve_url
        from storage.errors import StorageError
        from storage.queries import HistoryQuery, count_events, iter_events
        from storage.store import EventStore

        query = HistoryQuery(
            limit=limit,
            reverse=reverse,
            users=users,
            kinds=kinds,
            since=since,
            until=until,
            search=search,
            after_id=after_id,
            before_id=before_id,
        )
        out = sys.stdout
        try:
            with EventStore.open(resolve_url(db), create=False) as store:
                if count:
                    out.write(f"{count_events(store, query)}\n")
                    return
                printer = Printer(out, fmt, UTC if utc else tz)
                if follow:
                    _follow(store, query, printer, sleep)
                else:
                    printer.write(iter_events(store, query))
                printer.finish()
        except StorageError as exc:
            raise click.ClickException(str(exc)) from exc
        except BrokenPipeError:
            _quiet_broken_pipe()

    return history


def _follow(
    store: EventStore, query: HistoryQuery, printer: Printer, sleep: Callable[[float], object]
) -> None:
    """The newest matches up to now, then every new match, until Ctrl-C (exit 0)."""
    from storage.queries import iter_events

    try:
        top = store.last_id()
        first = replace(query, before_id=_below(query.before_id, top + 1))
        printer.write(iter_events(store, first))
        cursor = top
        while True:
            sleep(POLL_SECONDS)
            newest = store.last_id()
            if newest <= cursor:
                continue
            window = replace(
                query,
                limit=0,
                reverse=False,
                after_id=max(cursor, query.after_id or 0),
                before_id=_below(query.before_id, newest + 1),
            )
            printer.write(iter_events(store, window))
            cursor = newest
    except KeyboardInterrupt:
        # The terminal echoed ^C; end that line so the shell prompt starts on its own.
        # On stderr: stdout may be data (jsonl, csv) going to a file or a pipe.
        click.echo(err=True)
        return


def _below(limit: int | None, bound: int) -> int:
    return bound if limit is None else min(limit, bound)


def _quiet_broken_pipe() -> None:
    """The reader went away (``| head``): stop quietly, as cat does."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
    raise SystemExit(0)


history = build_history()
