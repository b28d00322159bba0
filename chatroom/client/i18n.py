"""The client's words in English and Chinese: one catalog per language.

A dict per language rather than gettext .mo files: two languages, no build step,
and a test can check that every key exists in both. The Chinese strings follow
the course's wording; the events' own wording (``alice 进入了聊天室``) is
chatroom/protocol/wording.py's, the same the server sends and history prints.
The language comes from ``--lang`` or, failing that, the POSIX locale
variables in their order of precedence (LC_ALL, LC_MESSAGES, LANG).
What the server refuses or reports comes with a code (REFUSED, ERR, REJECTED):
the catalogs word each code (``refused:taken``, ``err:storage``...), so no notice
mixes the server's language into the client's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from chatroom.protocol.frames import ROOM_RULE, Lang
from chatroom.protocol.wording import EVENT_WORDING

CATALOGS: Final[dict[Lang, dict[str, str]]] = {
    "en": {
        **EVENT_WORDING["en"],  # the events, worded as everywhere else
        # connection
        "connection_lost": "connection lost — retrying…",
        "reconnected": "reconnected",
        "failover": "connection lost — trying {server}…",
        "connected_to": "connected to {server}",
        "server_reset": "the server's history was reset; continuing from its newest event",
        "rejoin_refused": "cannot rejoin as {name}: {text} — retrying",
        "unavailable": "events {first}–{last} are no longer kept by the server",
        "server_error": "server: {text}",
        # messages
        "pending": "… sending",
        "delivered": "✓ delivered",
        "gave_up": "not delivered (gave up after retrying): {text}",
        "undelivered": "{count} message(s) were not delivered:",
        "undelivered_line": "  not sent: {text}",
        "not_connected": "not connected — try again in a moment",
        "control_chars": "not sent: messages cannot contain control characters ({char})",
        "too_long": "not sent: the message is {size} bytes; the limit is {limit} bytes (UTF-8)",
        # commands
        "unknown_command": "unknown command {command} — type /help for the list",
        "usage:/history": "usage: /history [N]   (N from 1 to 1000, default 10)",
        "usage:/me": "usage: /me ACTION   (shown as * yourname ACTION)",
        "history_header": "— the last {count} event(s) of {room} —",
        "history_busy": "still fetching the previous /history…",
        "no_events": "no events to show",
        "users_in": "in {room} ({total}): {names}",
        "users_more": "{names} … and {more} more",
        "rooms": "rooms ({total}): {rooms}",
        "rooms_more": "{rooms} … and {more} more",
        # rooms and direct messages
        "usage:/join": "usage: /join #room   (joins it, creating it if new; you then talk there)",
        "usage:/part": "usage: /part [#room]   (leaves the current room if none is given)",
        "usage:/who": "usage: /who [#room]   (who is in the current room, or in #room)",
        "usage:/rooms": "usage: /rooms   (lists the rooms and how many are in each)",
        "usage:/msg": "usage: /msg NAME TEXT   (a direct message only NAME sees)",
        "usage:/reply": "usage: /reply TEXT   (answers the last person who wrote to you)",
        "now_in": "now talking in {room}",
        "parted": "you left {room}",
        "no_room": "you are in no room — /join #room to join one (/msg NAME TEXT still works)",
        "not_in_room": "you are not in {room}",
        "joining": "still joining {room}…",
        "bad_room": "not a room name: {room} (" + ROOM_RULE + ")",
        "bad_name": "not a name: {name}",
        "dm_self": "not sent: that is you",
        "dm_offline": "{name} is not online — not sent: {text}",
        "dm_classic": "{name} uses nc (the classic dialect): no direct messages there — "
        "not sent: {text}",
        "not_member": "not sent: you are not in {room} (/join {room}): {text}",
        "rejected": "not sent ({reason}): {text}",
        "no_reply": "nobody has written to you yet — /msg NAME TEXT writes to someone",
        "help": (
            "commands:\n"
            "  /join #room     join a room (created if new) and talk there\n"
            "  /part [#room]   leave a room (the current one by default)\n"
            "  /rooms          the rooms and how many are in each\n"
            "  /who [#room]    who is in the room\n"
            "  /msg NAME TEXT  a direct message only NAME sees\n"
            "  /reply TEXT     answer the last person who wrote to you\n"
            "  /history [N]    show the last N events of this room again (default 10)\n"
            "  /me ACTION      describe what you do: * you ACTION\n"
            "  /help           this help\n"
            "  /quit or quit   leave (Ctrl-D and Ctrl-C too)\n"
            "  //text          send a line that starts with /\n"
            "What you type goes to the room in the prompt; lines from your other\n"
            "rooms show their room, direct messages show → NAME (yours) or NAME →.\n"
            "Tab completes commands, rooms and the names of people online."
        ),
        # what the server's codes mean (REFUSED, ERR, REJECTED): the server's own
        # text, in its language, is shown only for a code not listed here
        "refused:taken": "name already taken",
        "refused:invalid": (
            "invalid name: 1-32 characters, no spaces or control characters, "
            "not starting with # or @"
        ),
        "refused:reserved": "name reserved for the operator",
        "refused:confusable": "name looks too much like someone who is online",
        "refused:ratelimited": "too many logins from your address; try again shortly",
        "refused:full": "too many sessions from your address",
        "refused:badroom": f"invalid room: {ROOM_RULE}",
        "refused:storage": "the server cannot store messages right now; try again shortly",
        "err:nosession": "the server does not know this session (restarted?); logging in again",
        "err:slowdown": "slow down: too many messages; yours are retried",
        "err:badtext": "control characters are not allowed",
        "err:toolong": "the message is too long for the server",
        "err:utf8": "the server could not read a request (not valid UTF-8)",
        "err:fields": "the server could not read a request (malformed)",
        "err:verb": "the server does not know a request of this client (a newer client?)",
        "err:notmember": "you are not in that room",
        "err:badroom": "not a valid room or name",
        "err:toomany": "you are in too many rooms at once — /part one first",
        "err:storage": (
            "the server cannot store messages right now — yours stay queued and are retried"
        ),
        "err:shutdown": "shutting down",
        "rejected:offline": "not online",
        "rejected:classic": "no direct messages to a classic (nc) user",
        "rejected:notmember": "you are not in that room",
        "rejected:badroom": "not a valid room",
        "rejected:self": "that is you",
        # the shell
        "name_prompt": "your name: ",
        "refused": "name refused: {text}",
        "login_refused": "cannot log in: {text}",
        "no_answer": "no answer from {host}:{port} — is chatroom serve running?",
        "no_answer_next": "no answer from {server} — trying {next}…",
        "no_answer_any": "no answer from any of {servers} — is chatroom serve running?",
        "joined_as": "you are {name} — /help lists the commands, /quit leaves",
        "child_died": "the network process ended unexpectedly — exiting",
    },
    "zh": {
        **EVENT_WORDING["zh"],
        "connection_lost": "连接中断 — 正在重试…",
        "reconnected": "已重新连接",
        "failover": "连接中断 — 正在尝试 {server}…",
        "connected_to": "已连接到 {server}",
        "server_reset": "服务器的历史记录已重置, 从最新消息继续",
        "rejoin_refused": "无法以 {name} 重新加入: {text} — 正在重试",
        "unavailable": "第 {first}–{last} 条消息服务器已不再保存",
        "server_error": "服务器: {text}",
        "pending": "… 发送中",
        "delivered": "✓ 已送达",
        "gave_up": "发送失败 (多次重试后放弃): {text}",
        "undelivered": "{count} 条消息未送达:",
        "undelivered_line": "  未发送: {text}",
        "not_connected": "尚未连接 — 请稍后再试",
        "control_chars": "未发送: 消息不能包含控制字符 ({char})",
        "too_long": "未发送: 消息为 {size} 字节, 上限为 {limit} 字节 (UTF-8)",
        "unknown_command": "未知命令 {command} — 输入 /help 查看命令列表",
        "usage:/history": "用法: /history [N]   (N 为 1 到 1000, 默认 10)",
        "usage:/me": "用法: /me 动作   (显示为 * 你的名字 动作)",
        "history_header": "— {room} 最近的 {count} 条消息 —",
        "history_busy": "正在获取上一次 /history…",
        "no_events": "没有可显示的消息",
        "users_in": "{room} 中 ({total}): {names}",
        "users_more": "{names} … 等 {more} 人",
        "rooms": "房间 ({total}): {rooms}",
        "rooms_more": "{rooms} … 等 {more} 个",
        "usage:/join": "用法: /join #房间   (加入该房间, 不存在则创建; 之后在其中发言)",
        "usage:/part": "用法: /part [#房间]   (不指定则离开当前房间)",
        "usage:/who": "用法: /who [#房间]   (查看当前房间或 #房间 中的用户)",
        "usage:/rooms": "用法: /rooms   (列出所有房间及其人数)",
        "usage:/msg": "用法: /msg 名字 文字   (只有该用户能看到的私信)",
        "usage:/reply": "用法: /reply 文字   (回复最近给你发私信的人)",
        "now_in": "现在在 {room} 发言",
        "parted": "你离开了 {room}",
        "no_room": "你不在任何房间 — 输入 /join #房间 加入一个 (/msg 名字 文字 仍可使用)",
        "not_in_room": "你不在 {room}",
        "joining": "正在加入 {room}…",
        "bad_room": "无效的房间名: {room} (# 加 1-32 个字符, 不能含空格、冒号或控制字符)",
        "bad_name": "无效的用户名: {name}",
        "dm_self": "未发送: 不能给自己发私信",
        "dm_offline": "{name} 不在线 — 未发送: {text}",
        "dm_classic": "{name} 使用 nc(经典协议),无法接收私信 — 未发送: {text}",
        "not_member": "未发送: 你不在 {room} (/join {room}): {text}",
        "rejected": "未发送 ({reason}): {text}",
        "no_reply": "还没有人给你发私信 — 用 /msg 名字 文字 给别人发私信",
        "help": (
            "命令:\n"
            "  /join #房间     加入房间 (不存在则创建) 并在其中发言\n"
            "  /part [#房间]   离开房间 (默认当前房间)\n"
            "  /rooms          所有房间及其人数\n"
            "  /who [#房间]    查看房间中的用户\n"
            "  /msg 名字 文字  发送只有该用户能看到的私信\n"
            "  /reply 文字     回复最近给你发私信的人\n"
            "  /history [N]    再次显示本房间最近的 N 条消息 (默认 10)\n"
            "  /me 动作        描述你的动作: * 你 动作\n"
            "  /help           显示本帮助\n"
            "  /quit 或 quit   退出聊天室 (也可用 Ctrl-D, Ctrl-C)\n"
            "  //文字          发送以 / 开头的一行\n"
            "输入的文字发往提示符中的房间; 其他房间的消息前会显示房间名,\n"
            "私信显示为 → 名字 (你发的) 或 名字 →。\n"
            "Tab 键可补全命令、房间名和在线用户名。"
        ),
        "refused:taken": "该用户已存在",
        "refused:invalid": "用户名无效: 1-32 个字符, 不能含空格或控制字符, 不能以 # 或 @ 开头",
        "refused:reserved": "该用户名保留给管理员",
        "refused:confusable": "该用户名与在线用户过于相似",
        "refused:ratelimited": "该地址登录过于频繁, 请稍后再试",
        "refused:full": "该地址的会话数已达上限",
        "refused:badroom": "房间名无效: # 加 1-32 个字符, 不能含空格、冒号或控制字符",
        "refused:storage": "服务器暂时无法保存消息, 请稍后再试",
        "err:nosession": "服务器不认识本会话 (已重启?), 正在重新登录",
        "err:slowdown": "发言太快, 消息将稍后重试",
        "err:badtext": "消息不能包含控制字符",
        "err:toolong": "消息太长, 服务器不接受",
        "err:utf8": "服务器无法读取请求 (不是有效的 UTF-8)",
        "err:fields": "服务器无法读取请求 (格式错误)",
        "err:verb": "服务器不认识本客户端的请求 (客户端版本较新?)",
        "err:notmember": "你不在该房间",
        "err:badroom": "无效的房间名或用户名",
        "err:toomany": "同时加入的房间过多 — 请先 /part 一个",
        "err:storage": "服务器暂时无法保存消息 — 你的消息仍在队列中, 将自动重试",
        "err:shutdown": "即将关闭",
        "rejected:offline": "对方不在线",
        "rejected:classic": "经典协议(nc)用户无法接收私信",
        "rejected:notmember": "你不在该房间",
        "rejected:badroom": "无效的房间名",
        "rejected:self": "不能给自己发私信",
        "name_prompt": "请输入姓名: ",
        "refused": "无法使用该名字: {text}",
        "login_refused": "无法登录: {text}",
        "no_answer": "{host}:{port} 无应答 — chatroom serve 是否在运行?",
        "no_answer_next": "{server} 无应答 — 正在尝试 {next}…",
        "no_answer_any": "{servers} 均无应答 — chatroom serve 是否在运行?",
        "joined_as": "你是 {name} — 输入 /help 查看命令, /quit 退出",
        "child_died": "网络进程意外结束 — 正在退出",
    },
}


def detect_lang(flag: str | None, env: Mapping[str, str]) -> Lang:
    """``--lang`` if given, else the locale: Chinese for ``zh*``, English otherwise."""
    if flag in ("en", "zh"):
        return "zh" if flag == "zh" else "en"
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(var, "")
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"


#: Login refusals about the name itself (``name refused: ...``); the others
#: (the address's limits, the room, the storage) are ``cannot log in: ...``.
NAME_REFUSALS: Final = frozenset({"taken", "invalid", "reserved", "confusable"})


def reason(lang: Lang, kind: str, code: str, fallback: str) -> str:
    """What the server meant by ``code`` in a REFUSED (``kind`` "refused"), an
    ERR ("err") or a REJECTED ("rejected"), in ``lang``. The codes are on the
    wire for this: the server's text (``fallback``) is in the server's language,
    and is shown only for a code this client does not know."""
    return CATALOGS[lang].get(f"{kind}:{code}") or fallback


def tr(lang: Lang, key: str, **args: object) -> str:
    """The message ``key`` in ``lang`` (English if a key is missing), filled in."""
    template = CATALOGS[lang].get(key) or CATALOGS["en"].get(key, key)
    return template.format(**args)
