"""What the core knows of the database: the loop tells it, the core decides.

The socket loop owns the commits. When one fails (the disk is full, the file is
locked by another process, an I/O error) it keeps the uncommitted events and
retries with back-off, and tells the core ``writable = False`` until a retry
succeeds; ``committed`` is the newest event id known to be on disk. While the
database cannot be written the core refuses what would only pile up behind it
(messages, room joins and leaves, announcements, new logins: each needs a
stored event before anyone may see it) and keeps everything else working:
heartbeats, pulls of what is committed, departures (their notices wait for the
commit like anything else).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

log = logging.getLogger("chatroom.server")

#: The refusal's wording, for logs and the operator (clients word the code).
UNAVAILABLE: Final = "the server cannot store messages right now"
RETRY_MIN: Final = 0.1
RETRY_MAX: Final = 5.0


@dataclass(slots=True)
class StorageState:
    writable: bool = True
    committed: int = 0


class Faults:
    """A database that fails, as every commit path handles it (a single
    node's Committer, a cluster node): the core is told it cannot write, the
    commit is retried with back-off (``RETRY_MIN`` doubling to ``RETRY_MAX``),
    and the operator is told once when it starts and once when it ends, never
    at each retry."""

    def __init__(self, state: StorageState) -> None:
        self.state = state
        #: When the next retry is due (None: nothing failed).
        self.retry_at: float | None = None
        #: The last error's text (for the operator: status, logs).
        self.last_error = ""
        self._backoff = RETRY_MIN
        self._since = 0.0

    def failed(self, exc: BaseException, now: float, waiting: int) -> bool:
        """A commit failed, ``waiting`` events wait; True if a fault starts."""
        self.last_error = str(exc)
        starting = self.state.writable
        if starting:
            log.error(
                "%s: %s; %d event(s) wait and are retried (messages are refused meanwhile)",
                UNAVAILABLE,
                exc,
                waiting,
            )
            self.state.writable = False
            self._since = now
            self._backoff = RETRY_MIN
        else:
            self._backoff = min(self._backoff * 2, RETRY_MAX)
        self.retry_at = now + self._backoff
        return starting

    def succeeded(self, now: float) -> bool:
        """A commit succeeded; True if that ends a fault."""
        if self.state.writable:
            return False
        log.warning("storage works again after %.1f s; serving as usual", now - self._since)
        self.state.writable = True
        self.retry_at = None
        self.last_error = ""
        return True
