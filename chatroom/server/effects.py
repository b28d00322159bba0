"""What the core hands the socket loop: plain values, no behaviour.

The loop commits every ``Store`` in order, and performs a ``Send`` only once
the newest event it shows (``reveals``) is committed, so anything a client is
shown is already durable. A send that shows no event (a PONG, a COOKIE, an
error) goes at once, also while the database cannot be written.
"""

from __future__ import annotations

from dataclasses import dataclass

from chatroom.events import Event
from chatroom.registry import Address


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``payload`` to each address (encoded once, sent many times), once
    event ``reveals`` (a global id; 0: none) is committed."""

    payload: bytes
    addrs: tuple[Address, ...]
    reveals: int = 0


@dataclass(frozen=True, slots=True)
class Store:
    """Persist ``event`` before any Send of the same batch goes out."""

    event: Event


Effect = Send | Store
