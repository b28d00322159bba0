"""Full-text search on PostgreSQL: a GIN index of each event's words.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

SQLite has had an FTS5 index since 0001; on PostgreSQL `chatroom history -q` was a
substring scan of every event. This creates, on PostgreSQL only:

- the text search configuration ``chatroom_fts``: a copy of ``simple`` (no stemming,
  no stop words, like FTS5's unicode61 tokenizer) whose words go through the
  ``unaccent`` dictionary first, so that case and accents are ignored as on SQLite.
  ``unaccent`` is a trusted contrib extension (a database owner may create it);
  where it is missing or may not be created, the configuration is plain ``simple``
  and accents count (docs/storage.md);
- ``events_fts_document(text)``: the text's tsvector after ASCII punctuation is made
  spaces, so that ``alice@example.com``, ``https://x.org/a``, ``e-mail`` or ``12.5``
  are their words, as FTS5 splits them, not one e-mail/URL/hyphenated token;
- ``ix_events_fts``: a GIN index of ``events_fts_document(text)``: an expression
  index, which every writer keeps up to date by itself (no trigger, no column).

The function has an SQL-standard body (PostgreSQL 14 or newer): its references
(the configuration, the functions) are resolved once, at creation, so the index
works whatever a session's search_path (pg_dump restores with an empty one).

The downgrade drops the three and leaves the extension (it may have been there
before, and other objects may use it; it holds no data).

Migrations are frozen history: literal names and SQL only.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# string.punctuation, as an escape string literal (the same whatever the server's
# standard_conforming_strings): these become spaces before the text is parsed.
PUNCTUATION = r"""E'!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~'"""
WORD_TOKENS = (
    "asciiword, word, numword, asciihword, hword, numhword, "
    "hword_asciipart, hword_part, hword_numpart"
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute("CREATE TEXT SEARCH CONFIGURATION chatroom_fts (COPY = pg_catalog.simple)")
    unaccent = _unaccent_dictionary(bind)
    if unaccent is not None:
        op.execute(
            f"ALTER TEXT SEARCH CONFIGURATION chatroom_fts "
            f"ALTER MAPPING FOR {WORD_TOKENS} WITH {unaccent}, pg_catalog.simple"
        )
    op.execute(
        "CREATE FUNCTION events_fts_document(body text) RETURNS tsvector "
        "LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT "
        "RETURN to_tsvector('chatroom_fts'::regconfig, "
        f"translate(body, {PUNCTUATION}, repeat(' ', 32)))"
    )
    op.execute("CREATE INDEX ix_events_fts ON events USING gin (events_fts_document(text))")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX ix_events_fts")
    op.execute("DROP FUNCTION events_fts_document(text)")
    op.execute("DROP TEXT SEARCH CONFIGURATION chatroom_fts")


def _unaccent_dictionary(bind: sa.engine.Connection) -> str | None:
    """The unaccent dictionary's qualified name, creating the extension if it is
    available and this role may; None otherwise (the migration goes on without)."""
    found = _find_unaccent(bind)
    if found is not None:
        return found
    available = bind.execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'unaccent'")
    ).first()
    if available is None:
        return None
    try:
        with bind.begin_nested():  # a refusal must not abort the whole upgrade
            bind.execute(sa.text("CREATE EXTENSION unaccent"))
    except sa.exc.DBAPIError:
        return None
    return _find_unaccent(bind)


def _find_unaccent(bind: sa.engine.Connection) -> str | None:
    row = bind.execute(
        sa.text(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(d.dictname) "
            "FROM pg_ts_dict d JOIN pg_namespace n ON n.oid = d.dictnamespace "
            "WHERE d.dictname = 'unaccent' ORDER BY n.nspname = current_schema() DESC"
        )
    ).first()
    return None if row is None else str(row[0])
