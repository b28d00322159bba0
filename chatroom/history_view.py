"""How ``chatroom history`` prints events: text lines in the chat's own words,
JSON (one array), JSON lines, CSV.

Every user-supplied part of a text line is made visible (chatroom/sanitize.py);
JSON escapes what a terminal would act on. CSV and JSON share one shape per
event (``as_dict``), whose fields only ever grow at the end.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from datetime import UTC, datetime, tzinfo
from typing import IO, Final

from chatroom import protocol as p
from chatroom.events import DM_PREFIX, Event
from chatroom.sanitize import BIDI_AND_SEPARATORS, visible

FORMATS: Final = ("text", "json", "jsonl", "csv")
# New fields go last: a script that reads the columns by position keeps working.
CSV_FIELDS: Final = (
    "id",
    "kind",
    "name",
    "text",
    "created_at",
    "room",
    "room_seq",
    "recipient",
)

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
    """An event for JSON and CSV: ``room`` as stored (a direct message's is its
    conversation key, ``@alice bob``), ``recipient`` None except for direct messages."""
    return {
        "id": event.id,
        "kind": event.kind,
        "name": event.name,
        "text": event.text,
        "created_at": iso_utc(event.created_at),
        "room": event.room,
        "room_seq": event.room_seq,
        "recipient": event.to,
    }


def to_json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False).translate(_JSON_SAFE)


def where(event: Event) -> str:
    """Where an event happened, for text output: ``#dev``, or ``@alice→bob`` for a
    direct message from alice to bob."""
    if event.direct and event.to is not None:
        return f"{DM_PREFIX}{visible(event.name)}→{visible(event.to)}"
    return visible(event.room)


def text_line(event: Event, tz: tzinfo | None, *, room: bool = False) -> str:
    """One event in the chat's own words, every user-supplied part made visible;
    with ``room``, where it happened comes after the time."""
    moment = datetime.fromtimestamp(event.created_at, UTC)
    local = moment.astimezone(tz) if tz is not None else moment.astimezone()
    stamp = local.strftime("%Y-%m-%d %H:%M")
    name = visible(event.name)
    key, text = p.wording_key(event.kind, event.text)
    wording = p.EVENT_WORDING["en"].get(key)
    if wording is not None:  # as the client and classic users see it
        body = wording.format(name=name, text=visible(text))
    else:
        body = f"{name} {visible(event.kind)} {visible(event.text)}".rstrip()
    if room:
        return f"{stamp}  {where(event)}  {body}"
    return f"{stamp}  {body}"


class Printer:
    """Writes events in one format; ``finish`` closes what ``json`` opened."""

    def __init__(self, out: IO[str], fmt: str, tz: tzinfo | None, *, room: bool = True) -> None:
        self.out = out
        self.fmt = fmt
        self.tz = tz
        self.room = room
        self._first = True
        self._csv = csv.writer(out) if fmt == "csv" else None
        if self._csv is not None:
            self._csv.writerow(CSV_FIELDS)
        elif fmt == "json":
            out.write("[")

    def write(self, events: Iterable[Event]) -> int:
        """Write ``events``; how many there were."""
        out = self.out
        written = 0
        for event in events:
            written += 1
            if self._csv is not None:
                d = as_dict(event)
                self._csv.writerow([d[f] for f in CSV_FIELDS])
            elif self.fmt == "json":
                out.write(("\n" if self._first else ",\n") + to_json(as_dict(event)))
            elif self.fmt == "jsonl":
                out.write(to_json(as_dict(event)) + "\n")
            else:
                out.write(text_line(event, self.tz, room=self.room) + "\n")
            self._first = False
        out.flush()
        return written

    def finish(self) -> None:
        if self.fmt == "json":
            self.out.write("]\n" if self._first else "\n]\n")
        self.out.flush()
