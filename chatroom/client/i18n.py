"""The client's words in English and Chinese: one catalog per language.

A dict per language rather than gettext .mo files: two languages, no build step,
and a test can check that every key exists in both. The Chinese strings follow
the course's wording (``alice 进入了聊天室``, ``alice退出了聊天室``,
``管理员消息: text``). The language comes from ``--lang`` or, failing that, the
POSIX locale variables in their order of precedence (LC_ALL, LC_MESSAGES, LANG).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

Lang = Literal["en", "zh"]

CATALOGS: Final[dict[Lang, dict[str, str]]] = {
    "en": {
        # events
        "join": "{name} joined",
        "quit": "{name} left",
        "timeout": "{name} timed out",
        "announce": "[announcement] {text}",
        "action": "* {name} {text}",
        # connection
        "connection_lost": "connection lost — retrying…",
        "reconnected": "reconnected",
        "server_reset": "the server's history was reset; continuing from its newest event",
        "rejoin_refused": "cannot rejoin as {name}: {text} — retrying",
        "unavailable": "events {first}–{last} are no longer kept by the server",
        "server_error": "server: {text}",
        # messages
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
        "users": "online ({total}): {names}",
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
        "bad_room": "not a room name: {room} (# then 1-32 characters, no spaces)",
        "bad_name": "not a name: {name}",
        "dm_self": "not sent: that is you",
        "dm_offline": "{name} is not online — not sent: {text}",
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
        # the shell
        "name_prompt": "your name: ",
        "refused": "name refused: {text}",
        "no_answer": "no answer from {host}:{port} — is chatroom serve running?",
        "joined_as": "you are {name} — /help lists the commands, /quit leaves",
        "child_died": "the network process ended unexpectedly — exiting",
    },
    "zh": {
        "join": "{name} 进入了聊天室",
        "quit": "{name}退出了聊天室",
        "timeout": "{name}超时退出了聊天室",
        "announce": "管理员消息: {text}",
        "action": "* {name} {text}",
        "connection_lost": "连接中断 — 正在重试…",
        "reconnected": "已重新连接",
        "server_reset": "服务器的历史记录已重置, 从最新消息继续",
        "rejoin_refused": "无法以 {name} 重新加入: {text} — 正在重试",
        "unavailable": "第 {first}–{last} 条消息服务器已不再保存",
        "server_error": "服务器: {text}",
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
        "users": "在线 ({total}): {names}",
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
        "bad_room": "无效的房间名: {room} (# 加 1-32 个字符, 不能含空格)",
        "bad_name": "无效的用户名: {name}",
        "dm_self": "未发送: 不能给自己发私信",
        "dm_offline": "{name} 不在线 — 未发送: {text}",
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
        "name_prompt": "请输入姓名: ",
        "refused": "无法使用该名字: {text}",
        "no_answer": "{host}:{port} 无应答 — chatroom serve 是否在运行?",
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


def tr(lang: Lang, key: str, **args: object) -> str:
    """The message ``key`` in ``lang`` (English if a key is missing), filled in."""
    template = CATALOGS[lang].get(key) or CATALOGS["en"].get(key, key)
    return template.format(**args)
