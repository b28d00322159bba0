"""How each kind of event reads, in each language: the one wording that the
classic dialect sends, the client shows and ``chatroom history`` prints.

A message that starts with ``ACTION_PREFIX`` (``/me waves``) is an *action*,
worded ``* alice waves``. The Chinese follows the course's seed wording.
"""

from __future__ import annotations

from typing import Final

from chatroom.events import EventKind
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


#: Joins and leaves of a large room told together (chatroom/server/crowd.py):
#: who, as the ``name`` of the join and quit wordings above.
PRESENCE_WORDING: Final[dict[Lang, dict[str, str]]] = {
    "en": {
        "and": " and ",
        "both": " and ",
        "others": "{count} others",
        "other": "1 other",
        "people": "{count} people",
        "sep": ", ",
    },
    "zh": {
        "and": " 等 ",
        "both": "和",
        "others": "{count} 人",
        "other": "1 人",
        "people": "{count} 人",
        "sep": "、",
    },
}


def presence_summary(
    lang: Lang, joined: int, left: int, names: tuple[str, ...]
) -> list[tuple[EventKind, str]]:
    """A large room's joins and leaves told together, as (kind, who) pairs:
    ``("join", "alice, bob and 38 others")``, ``("quit", "carol")``; worded
    with ``EVENT_WORDING[lang][kind]``. ``names`` are ``+name`` (joined) and
    ``-name`` (left or timed out), the first few of each."""
    words = PRESENCE_WORDING[lang]
    told: list[tuple[EventKind, str]] = []
    cases: tuple[tuple[EventKind, str, int], ...] = (("join", "+", joined), ("quit", "-", left))
    for kind, sign, count in cases:
        if count <= 0:
            continue
        shown = [n[1:] for n in names if n[0] == sign][:count]
        more = count - len(shown)
        if not shown:
            who = words["people"].format(count=count)
        elif more:
            rest = words["other"] if more == 1 else words["others"].format(count=more)
            who = f"{words['sep'].join(shown)}{words['and']}{rest}"
        else:
            who = words["sep"].join(shown[:-1])
            who = f"{who}{words['both']}{shown[-1]}" if who else shown[-1]
        told.append((kind, who))
    return told


def presence_lines(lang: Lang, joined: int, left: int, names: tuple[str, ...]) -> list[str]:
    """``presence_summary`` as lines: ``alice, bob and 38 others joined``."""
    wording = EVENT_WORDING[lang]
    return [wording[k].format(name=who) for k, who in presence_summary(lang, joined, left, names)]
