"""A batch of stored events on the broker: compact JSON, one message per batch.

``{"n": node, "e": [[id, kind, name, text, created_us, session, seq, room,
room_seq, to], ...]}``: the events table's columns in their stored order
(storage/models.py's EVENT_COLUMNS, the same tuple the writer inserts), so the
receiving node rebuilds exactly what is in the database. A payload that does
not parse is dropped by the caller (the node repairs from the database).
"""

from __future__ import annotations

import functools
import json
from typing import Any

from chatroom.events import Event
from storage.store import event_from_row, row_from_event


class BadPayload(ValueError):
    """A broker message that is not a batch of events."""


def encode(node: str, events: list[Event]) -> bytes:
    rows = [row_from_event(e) for e in events]
    return json.dumps({"n": node, "e": rows}, ensure_ascii=False, separators=(",", ":")).encode()


def sent_by(payload: bytes, node: str) -> bool:
    """Whether ``node`` sent ``payload``, without decoding it (a node gets
    its own batches back from the broker; they were applied already)."""
    return payload.startswith(_prefix(node))


@functools.lru_cache(maxsize=8)
def _prefix(node: str) -> bytes:
    """How ``encode`` starts a payload of ``node``'s."""
    return b'{"n":' + json.dumps(node, ensure_ascii=False).encode() + b',"e":'


def decode(payload: bytes) -> tuple[str, list[Event]]:
    """The sending node and its events; BadPayload if it is not one."""
    try:
        data: Any = json.loads(payload)
        node = data["n"]
        events = [event_from_row(row) for row in data["e"]]
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise BadPayload(str(exc)) from exc
    if not isinstance(node, str):
        raise BadPayload("no node")
    return node, events
