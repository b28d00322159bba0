"""The classic dialect's wording, in English and in the course's Chinese: its
replies and refusals here, its event lines from chatroom/protocol/wording.py."""

from __future__ import annotations

from typing import Final

from chatroom.events import Event
from chatroom.protocol.frames import MAX_TEXT, ROOM_RULE, Lang
from chatroom.protocol.wording import EVENT_WORDING, wording_key

_CLASSIC: Final[dict[str, dict[str, str]]] = {
    "en": {
        **EVENT_WORDING["en"],
        "taken": "name already taken",
        "invalid": (
            "invalid name: 1-32 characters, no spaces or control characters, "
            "not starting with # or @"
        ),
        "reserved": "name reserved for the operator",
        "badroom": f"invalid room: {ROOM_RULE}",
        "confusable": "name looks too much like someone who is online",
        "notyou": "ERR not logged in as {name} from this address",
        "already": "ERR already logged in here as {name} (send Q {name} first)",
        "unknown": "ERR not logged in (send L name first)",
        "badtext": "ERR control characters are not allowed",
        "slowdown": "ERR slow down: too many messages",
        "toolong": f"ERR message too long (the limit is {MAX_TEXT} bytes of UTF-8)",
        "ratelimited": "too many logins from your address; try again shortly",
        "full": "too many sessions from your address",
        "shutdown": "[announcement] server shutting down",
        "storage": "the server cannot store messages right now; try again shortly",
        "nostore": "ERR the server cannot store messages right now; try again shortly",
    },
    "zh": {
        **EVENT_WORDING["zh"],
        "taken": "该用户已存在",
        "invalid": "用户名无效: 1-32 个字符, 不能含空格或控制字符, 不能以 # 或 @ 开头",
        "reserved": "该用户名保留给管理员",
        "badroom": "聊天室名无效: # 加 1-32 个字符, 不能含空格、冒号或控制字符",
        "confusable": "该用户名与在线用户过于相似",
        "notyou": "ERR 此地址未以 {name} 登录",
        "already": "ERR 此地址已以 {name} 登录 (请先发送 Q {name})",
        "unknown": "ERR 尚未登录 (请先发送 L 用户名)",
        "badtext": "ERR 消息不能包含控制字符",
        "slowdown": "ERR 发言太快, 请稍后再试",
        "toolong": f"ERR 消息太长 (上限为 {MAX_TEXT} 字节 UTF-8)",
        "ratelimited": "该地址登录过于频繁, 请稍后再试",
        "full": "该地址的会话数已达上限",
        "shutdown": "管理员消息: 服务器即将关闭",
        "storage": "服务器暂时无法保存消息, 请稍后再试",
        "nostore": "ERR 服务器暂时无法保存消息, 请稍后再试",
    },
}

OK: Final = b"OK"
EXIT: Final = b"EXIT"


def classic_text(lang: Lang, key: str, name: str = "", text: str = "") -> bytes:
    """A classic-dialect line (reply or broadcast) in the server's language."""
    return _CLASSIC[lang][key].format(name=name, text=text).encode("utf-8")


def classic_event(lang: Lang, event: Event) -> bytes:
    """How a stored event reads to a classic client, e.g. ``alice : hi``."""
    key, text = wording_key(event.kind, event.text)
    return classic_text(lang, key, event.name, text)
