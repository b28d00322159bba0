"""The SQLite full-text index of event text, and how a user's search becomes a query.

The 0001 migration creates, on SQLite only:

- ``events_fts``: an FTS5 table over ``events.text`` with external content
  (``content='events', content_rowid='id'``), so the text is stored once;
- ``events_fts_defer``: an always-empty marker table (see below);
- triggers: AFTER INSERT (skipped while the marker has a row), AFTER DELETE and
  AFTER UPDATE keep the index equal to the table for *every* writer, including
  ``sqlite3`` by hand.

The invariant: every row of ``events`` is in ``events_fts``; nothing else is.

Per-row triggers make a batch insert about twice as slow. So the EventStore's writer
opens its transaction by inserting a row into ``events_fts_defer`` (which silences the
insert trigger for that transaction only; no other connection can see an uncommitted
row, and SQLite has one writer at a time), inserts the batch, indexes all its rows
with one ``INSERT ... SELECT``, deletes the marker and commits. Either all of that
commits or none of it does. docs/architecture.md has the measurements.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FTS_TABLE = "events_fts"
DEFER_TABLE = "events_fts_defer"

DEFER_ON = f"INSERT INTO {DEFER_TABLE} (writer) VALUES (1)"
DEFER_OFF = f"DELETE FROM {DEFER_TABLE}"
# Index every row this transaction inserted: ids above the max(id) read after the
# marker took the write lock.
INDEX_AFTER = f"INSERT INTO {FTS_TABLE} (rowid, text) SELECT id, text FROM events WHERE id > ?"
HAS_FTS = (
    "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
    f"AND name IN ('{FTS_TABLE}', '{DEFER_TABLE}')"
)


def is_fts_table(name: str) -> bool:
    """``events_fts`` and its shadow/helper tables (not models; ignored by autogenerate)."""
    return name == FTS_TABLE or name.startswith(FTS_TABLE + "_")


# Scripts written without spaces between words: the unicode61 tokenizer sees a whole
# run of them as one token, so a word inside such a run is found by LIKE instead.
_UNSPACED = re.compile(
    "[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf"
    "\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff]"
)
_TERMS = re.compile(r'"([^"]*)"?|(\S+)')


@dataclass(frozen=True, slots=True)
class SearchPlan:
    """A user's search text as an FTS5 MATCH expression plus substring (LIKE) terms.

    All parts must match (AND). ``match`` is None when no part can use the index.
    ``words`` are all the terms as plain text, for databases without the index.
    No words: nothing to search for (blank, or only ``**``-like prefixes of nothing),
    and the plan filters nothing (``searchable`` is False).
    """

    match: str | None
    likes: tuple[str, ...]
    words: tuple[str, ...]

    @property
    def searchable(self) -> bool:
        """Does the search narrow anything down? ``chatroom history`` refuses one
        that does not rather than show every event as if it had matched."""
        return bool(self.words)


def plan_search(text: str) -> SearchPlan:
    """Turn what a user typed into a query that cannot be an FTS5 syntax error.

    Words are matched as words (any order, all required, case and accents ignored);
    ``"two words"`` is a phrase; ``word*`` is a prefix. Every term is emitted as an
    FTS5 string literal, so ``AND``, ``OR``, ``NEAR``, ``(``, ``:``, ``^``, ``-`` or a
    stray quote in the input are just text. A term with nothing indexable in it
    (only punctuation) or in a script written without spaces (Chinese, Japanese,
    Thai...) becomes a substring test instead. A prefix of nothing (``**``, ``***``)
    would match every event: it is no term at all.
    """
    # FTS5 reads its query as a C string: a NUL would cut it short mid-literal.
    text = text.replace("\x00", " ")
    matches: list[str] = []
    likes: list[str] = []
    words: list[str] = []
    empty_prefix = False
    for m in _TERMS.finditer(text):
        phrase, word = m.group(1), m.group(2)
        term = phrase if phrase is not None else word
        term = term.strip()
        if not term:
            continue
        prefix = phrase is None and term.endswith("*") and len(term) > 1
        core = term.rstrip("*") if prefix else term
        if not core:
            empty_prefix = True
            continue
        words.append(core)
        if _UNSPACED.search(core) or not any(ch.isalnum() for ch in core):
            likes.append(core)
            continue
        literal = '"' + core.replace('"', '""') + '"'
        matches.append(literal + "*" if prefix else literal)
    if not words and not empty_prefix and text.strip():
        # Only quotes (`"` or `""`): search for the text itself.
        likes.append(text.strip())
        words.append(text.strip())
    return SearchPlan(" ".join(matches) if matches else None, tuple(likes), tuple(words))
