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

from dataclasses import dataclass
from typing import Final

#: The refusal's wording, for logs and the operator (clients word the code).
UNAVAILABLE: Final = "the server cannot store messages right now"


@dataclass(slots=True)
class StorageState:
    writable: bool = True
    committed: int = 0
