"""What the core hands the socket loop: plain values, no behaviour.

The loop commits every ``Store`` of a batch in one transaction and only then
performs the ``Send`` effects, so anything a client is shown is already durable.
"""

from __future__ import annotations

from dataclasses import dataclass

from chatroom.events import Event
from chatroom.registry import Address


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``payload`` to each address (encoded once, sent many times)."""

    payload: bytes
    addrs: tuple[Address, ...]


@dataclass(frozen=True, slots=True)
class Store:
    """Persist ``event`` before any Send of the same batch goes out."""

    event: Event


Effect = Send | Store
