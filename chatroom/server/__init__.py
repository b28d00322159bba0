"""The chat server: a sans-I/O core (``Hub`` and the parts it composes) and the
socket loop that drives it (loop.py). docs/architecture.md has the map."""

from chatroom.server.config import DEFAULT_LOGIN_RATE, DEFAULT_RATE, ServerConfig, is_loopback
from chatroom.server.effects import Effect, Send, Store
from chatroom.server.hub import Hub

__all__ = [
    "DEFAULT_LOGIN_RATE",
    "DEFAULT_RATE",
    "Effect",
    "Hub",
    "Send",
    "ServerConfig",
    "Store",
    "is_loopback",
]
