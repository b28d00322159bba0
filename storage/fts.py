"""The full-text index of event text, and how a user's search becomes a query.

SQLite (migration 0001) has an FTS5 index; PostgreSQL (migration 0005) a GIN index
of a tsvector (below). Both index words the same way as far as PostgreSQL allows:
runs of letters and digits, case and accents ignored, no stemming, no stop words.

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

The 0005 migration creates, on PostgreSQL only:

- ``chatroom_fts``: a text search configuration, a copy of ``simple`` (no stemming
  and no stop words, as FTS5's unicode61: ``at`` is a word to find) that removes
  accents with the ``unaccent`` dictionary where that extension can be installed;
- ``events_fts_document(text)``: the tsvector of a text: ASCII punctuation becomes
  spaces first, so the parser finds plain words where it would otherwise make one
  token of an e-mail address, a URL, a hyphenated word or ``12.5`` (FTS5 splits
  them into their words, and ``-q example`` should find ``alice@example.com``
  there too);
- ``ix_events_fts``: a GIN index of ``events_fts_document(text)``.

An expression index, not a stored column: nothing to keep in step for any writer
(the server, ``psql``, an import), no second copy of the text in the table. A
search matches ``events_fts_document(text) @@ query``, the indexed expression.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FTS_TABLE = "events_fts"
#: PostgreSQL (0005): the text search configuration, the document function and its index.
PG_CONFIG = "chatroom_fts"
PG_DOCUMENT = "events_fts_document"
PG_INDEX = "ix_events_fts"
#: What events_fts_document turns into spaces before parsing (migration 0005 has
#: the same characters): a query's terms get the same treatment here.
PG_PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
_PG_SPACES = str.maketrans(dict.fromkeys(PG_PUNCTUATION, " "))
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


def is_fts_object(name: str | None, type_: str) -> bool:
    """Whether a reflected object belongs to a full-text index, which the migrations
    create with explicit SQL and the models leave out: the SQLite tables, and the
    PostgreSQL expression index (autogenerate would otherwise offer to drop it).
    An ``include_name`` for Alembic can return ``not is_fts_object(name, type_)``."""
    if name is None:
        return False
    if type_ == "table":
        return is_fts_table(name)
    return type_ == "index" and name == PG_INDEX


# Scripts written without spaces between words: the unicode61 tokenizer sees a whole
# run of them as one token, so a word inside such a run is found by LIKE instead.
_UNSPACED = re.compile(
    "[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf"
    "\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff]"
)
_TERMS = re.compile(r'"([^"]*)"?|(\S+)')


@dataclass(frozen=True, slots=True)
class Term:
    """One indexable term of a search: a word or a phrase (``text``), maybe a prefix."""

    text: str
    prefix: bool = False

    def pg_parts(self) -> tuple[str, str | None]:
        """The term for PostgreSQL's ``phraseto_tsquery`` / ``to_tsquery``, with ASCII
        punctuation made spaces as events_fts_document does to the text: (the phrase,
        None), or for a prefix (the words before the last, the last word as a
        ``to_tsquery`` prefix literal, ``'lun':*``). FTS5 reads ``"e-ma"*`` as the
        phrase ``e ma*``, a prefix on its last word only; so does this. No quote or
        backslash survives the punctuation, so the literal is never a syntax error."""
        plain = self.text.translate(_PG_SPACES)
        if not self.prefix:
            return plain, None
        *head, last = plain.split() or [""]
        return " ".join(head), f"'{last}':*"


@dataclass(frozen=True, slots=True)
class SearchPlan:
    """A user's search text as an FTS5 MATCH expression plus substring (LIKE) terms.

    All parts must match (AND). ``match`` is None when no part can use the index;
    ``terms`` are the same parts, for PostgreSQL's index. ``words`` are all the
    terms as plain text, for databases without an index. No words: nothing to
    search for (blank, or only ``**``-like prefixes of nothing), and the plan
    filters nothing (``searchable`` is False).
    """

    match: str | None
    likes: tuple[str, ...]
    words: tuple[str, ...]
    terms: tuple[Term, ...] = ()

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
    terms: list[Term] = []
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
        terms.append(Term(core, prefix))
    if not words and not empty_prefix and text.strip():
        # Only quotes (`"` or `""`): search for the text itself.
        likes.append(text.strip())
        words.append(text.strip())
    return SearchPlan(
        " ".join(matches) if matches else None, tuple(likes), tuple(words), tuple(terms)
    )
