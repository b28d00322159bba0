"""``chatroom history``: read, filter, search and follow the stored events.

Anchors: ``journalctl`` (-n, -r, -S/-U, -f), ``llm logs`` (-n, -q, --json),
``sqlite-utils`` (--csv/--json shapes). It opens the database read-only and never
creates one; it runs next to a writing server (WAL, busy_timeout).
"""

from __future__ import annotations

import os
import sys
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any, Final

import click

from chatroom import protocol as p
from chatroom.commands.options import db_option
from chatroom.events import DM_PREFIX, EVENT_KINDS, EventKind
from chatroom.history_view import FORMATS, Printer
from chatroom.timeparse import Clock, MomentType, system_clock

if TYPE_CHECKING:
    from storage.queries import HistoryQuery
    from storage.store import EventStore

POLL_SECONDS: Final = 0.5


class RoomParam(click.ParamType[str, Any]):
    """``--room``: a room name, normalised (``check_room``). The ``#`` may be left out:
    unquoted, the shell reads ``#dev`` as the start of a comment."""

    name = "#ROOM"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> str:
        raw = str(value)
        if raw.startswith(DM_PREFIX):
            self.fail(f"{raw!r} is a direct conversation, not a room: use --dm NAME", param, ctx)
        room, problem = p.check_room(raw if raw.startswith(p.ROOM_PREFIX) else p.ROOM_PREFIX + raw)
        if problem is not None:
            self.fail(
                f"{raw!r} is not a room name: {p.ROOM_RULE}",
                param,
                ctx,
            )
        return room


class DmParam(click.ParamType[str, Any]):
    """``--dm``: a user's name (a leading ``@`` is allowed, as the chat writes it)."""

    name = "NAME"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> str:
        raw = str(value)
        name = unicodedata.normalize("NFC", raw.removeprefix(DM_PREFIX))
        if not name or any(ch.isspace() for ch in name):
            self.fail(f"{raw!r} is not a user name", param, ctx)
        return name


def stored_rooms(store: EventStore, rooms: Iterable[str]) -> tuple[str, ...]:
    """The stored spellings to look for, for rooms a user typed: each as typed, its
    canonical form (``room_key``), and every stored room with the same canonical form
    (``#Dev``, ``#ＤＥＶ``...): rooms are one room ignoring case and width, whichever
    way the server stored them. One index seek per stored room."""
    wanted = {p.room_key(r) for r in rooms}
    if not wanted:
        return ()
    found = dict.fromkeys(r for room in rooms for r in (room, p.room_key(room)))
    for stored in store.rooms(p.ROOM_PREFIX):
        if p.room_key(stored) in wanted:
            found[stored] = None
    return tuple(found)


HELP: Final = """Show stored chat history: joins, messages, departures, announcements,
in every room and direct conversation (each line says where).

\b
Examples:
  chatroom history                     the last 20 events
  chatroom history -n 0 --json         everything, as JSON
  chatroom history -u alice -S 2h      alice, the last two hours
  chatroom history --room '#dev'       the last 20 in #dev
  chatroom history --dm alice          direct messages to or from alice
  chatroom history -q 'lunch friday'   messages with both words
  chatroom history -f                  keep watching

\b
Times (-S/-U): 2026-11-27, '2026-11-27 15:04', 15:04, now, today,
yesterday, or how long ago: 10m, 2h, 3d, 1w. Local time unless given
with Z or an offset.
"""


def _filter_options(moment: MomentType) -> list[Callable[[Any], Any]]:
    """The options that say which events, top to bottom as ``--help`` lists them."""
    return [
        click.option(
            "-n",
            "--limit",
            type=click.IntRange(min=0),
            default=20,
            show_default=True,
            help="Show the newest N matching events (0: all).",
        ),
        click.option("-r", "--reverse", is_flag=True, help="Newest first."),
        click.option(
            "-u",
            "--user",
            "users",
            multiple=True,
            metavar="NAME",
            help="Only events of this user (ignores case; repeatable).",
        ),
        click.option(
            "--room",
            "rooms",
            multiple=True,
            type=RoomParam(),
            help="Only events of this room (ignores case; repeatable; quote it: '#dev').",
        ),
        click.option(
            "--dm",
            type=DmParam(),
            help="Only direct messages to or from NAME (with --room: those as well).",
        ),
        click.option(
            "--kind",
            "kinds",
            multiple=True,
            type=click.Choice(EVENT_KINDS),
            help="Only events of this kind (repeatable).",
        ),
        click.option(
            "-S", "--since", type=moment, help="Not before this time (formats: Times above)."
        ),
        click.option(
            "-U", "--until", type=moment, help="Not after this time (formats: Times above)."
        ),
        click.option(
            "-q",
            "--search",
            metavar="TEXT",
            help='Full-text search of whole words, "a phrase", prefix* (node* also '
            "finds nodes, node1).",
        ),
        click.option(
            "--after-id",
            type=click.IntRange(min=0),
            metavar="ID",
            help="Only ids above ID (alone: the oldest N after it, to page forward).",
        ),
        click.option(
            "--before-id",
            type=click.IntRange(min=0),
            metavar="ID",
            help="Only ids below ID (to page back).",
        ),
    ]


#: The options that say how to show them.
_OUTPUT_OPTIONS: Final[list[Callable[[Any], Any]]] = [
    click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default=None,
        help="Output format [default: text].",
    ),
    click.option("--json", "as_json", is_flag=True, help="Same as --format json."),
    click.option("--utc", is_flag=True, help="Show times in UTC, not local time."),
    click.option("-f", "--follow", is_flag=True, help="Keep printing new events until Ctrl-C."),
    click.option("--count", is_flag=True, help="Print only the number of matching events."),
    db_option,
]


def build_history(
    clock: Clock = system_clock,
    tz: tzinfo | None = None,
    sleep: Callable[[float], object] = time.sleep,
) -> click.Command:
    """The ``history`` command; tests pass a fixed clock, a time zone and a fake sleep."""

    def history(
        limit: int,
        reverse: bool,
        users: tuple[str, ...],
        rooms: tuple[str, ...],
        dm: str | None,
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
        zone = UTC if utc else tz
        fmt = _output_format(fmt, as_json, follow=follow, count=count, reverse=reverse)
        _check_span(since, until, zone)
        # storage (SQLAlchemy) is imported here, not at the top: every other chatroom
        # command would pay ~0.3 s for it at start-up.
        from storage.queries import HistoryQuery

        _check_search(search)
        query = HistoryQuery(
            limit=limit,
            reverse=reverse,
            users=users,
            dms=(dm,) if dm is not None else (),
            kinds=kinds,
            since=since,
            until=until,
            search=search,
            after_id=after_id,
            before_id=before_id,
        )
        # One room asked for: every line is from it, no need to say so.
        one_room = len(rooms) == 1 and dm is None
        printer = None if count else Printer(sys.stdout, fmt, zone, room=not one_room)
        _show(db, query, rooms, printer, follow=follow, sleep=sleep)

    command: Callable[..., None] = history
    for option in reversed([*_filter_options(MomentType(clock, tz)), *_OUTPUT_OPTIONS]):
        command = option(command)
    return click.command("history", help=HELP)(command)


def _output_format(
    fmt: str | None, as_json: bool, *, follow: bool, count: bool, reverse: bool
) -> str:
    """The output format the options ask for, or a usage error for options that
    cannot go together."""
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
    return fmt


def _check_span(since: datetime | None, until: datetime | None, zone: tzinfo | None) -> None:
    if since is not None and until is not None and since > until:
        raise click.UsageError(
            f"--since ({_when(since, zone)}) is after --until ({_when(until, zone)}): "
            "nothing can match; swap them?"
        )


def _check_search(search: str | None) -> None:
    from storage.fts import plan_search

    if search is not None and not plan_search(search).searchable:
        # It would filter nothing: every event would look like a match.
        raise click.UsageError(
            f"the search {search!r} has no searchable words "
            '(words, "a phrase", prefix*); drop -q to see everything'
        )


def _show(
    db: str | None,
    query: HistoryQuery,
    rooms: tuple[str, ...],
    printer: Printer | None,
    *,
    follow: bool,
    sleep: Callable[[float], object],
) -> None:
    """Print what ``query`` matches (its number, without a printer), or follow it."""
    from storage.config import resolve_url
    from storage.errors import StorageError
    from storage.queries import count_events, follow_events, iter_events
    from storage.store import EventStore

    try:
        with EventStore.open(resolve_url(db), create=False) as store:
            query = replace(query, rooms=stored_rooms(store, rooms))
            if printer is None:
                sys.stdout.write(f"{count_events(store, query)}\n")
                return
            if not follow:
                shown = printer.write(iter_events(store, query))
                if printer.fmt == "text" and sys.stdout.isatty():
                    _footer(shown, query.limit)
            else:
                try:
                    for batch in follow_events(store, query, sleep, POLL_SECONDS):
                        printer.write(batch)
                except KeyboardInterrupt:
                    # The terminal echoed ^C; end that line so the shell prompt starts
                    # on its own. On stderr: stdout may be data (jsonl, csv) going to a
                    # file or a pipe.
                    click.echo(err=True)
            printer.finish()
    except StorageError as exc:
        raise click.ClickException(str(exc)) from exc
    except BrokenPipeError:
        _quiet_broken_pipe()


def _footer(shown: int, limit: int) -> None:
    """For a person at a terminal (text output, stdout a terminal), on stderr:
    that nothing matched, or that the newest ``limit`` may not be all there is.
    Both were silent, which read as "no such user" or "that is everything"."""
    if shown == 0:
        click.echo("no events match", err=True)
    elif limit and shown == limit:
        click.echo(f"(the newest {limit}: -n N for more, -n 0 for all)", err=True)


def _when(moment: datetime, tz: tzinfo | None) -> str:
    """A moment for a message, in local time (``tz``, else the system's)."""
    local = moment.astimezone(tz) if tz is not None else moment.astimezone()
    return local.strftime("%Y-%m-%d %H:%M:%S")


def _quiet_broken_pipe() -> None:
    """The reader went away (``| head``): stop quietly, as cat does."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
    raise SystemExit(0)


history = build_history()
