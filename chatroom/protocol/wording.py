"""How each kind of event reads, in each language: the one wording that the
classic dialect sends, the client shows and ``chatroom history`` prints.

A message that starts with ``ACTION_PREFIX`` (``/me waves``) is an *action*,
worded ``* alice waves``. The Chinese follows the course's seed wording.
"""

from __future__ import annotations

from typing import Final

from chatroom.protocol.frames import Lang

#: What makes a message an action: ``/me waves`` is shown as ``* alice waves``.
ACTION_PREFIX: Final = "/me "

EVENT_WORDING: Final[dict[Lang, dict[str, str]]] = {
    "en": {
        "join": "{name} joined",
        "message": "{name} : {text}",
        "action": "* {name} {text}",
        "quit": "{name} left",
        "timeout": "{name} timed out",
        "announce": "[announcement] {text}",
    },
    "zh": {
        "join": "{name} 进入了聊天室",
        "message": "{name} : {text}",
        "action": "* {name} {text}",
        "quit": "{name}退出了聊天室",
        "timeout": "{name}超时退出了聊天室",
        "announce": "管理员消息: {text}",
    },
}


def wording_key(kind: str, text: str) -> tuple[str, str]:
    """The ``EVENT_WORDING`` key of an event and the text it fills in: an action's
    key and its text without the prefix, otherwise the kind and the text as is."""
    if kind == "message" and text.startswith(ACTION_PREFIX):
        return "action", text.removeprefix(ACTION_PREFIX)
    return kind, text
