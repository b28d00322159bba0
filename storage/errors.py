"""Storage errors. Each carries a message a person can act on (the CLI prints it as is)."""

from __future__ import annotations


class StorageError(Exception):
    """The database cannot be used as asked: missing, not a database, wrong revision..."""


class SchemaTooNew(StorageError):
    """The database is at a revision this chatroom does not know (a newer chatroom wrote it).

    It is refused and never changed: downgrading it would lose whatever the newer schema
    holds, and writing to it could corrupt it.
    """


class NoDatabase(StorageError):
    """There is no database (yet) where one was expected."""
