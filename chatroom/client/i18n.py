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
        "history_header": "— {count} earlier event(s) —",
        "history_busy": "still fetching the previous /history…",
        "no_earlier": "no earlier events",
        "users": "online ({total}): {names}",
        "users_more": "{names} … and {more} more",
        "help": (
            "commands:\n"
            "  /who            who is online\n"
            "  /history [N]    show N earlier events (default 10)\n"
            "  /me ACTION      describe what you do: * you ACTION\n"
            "  /help           this help\n"
            "  /quit or quit   leave (Ctrl-D and Ctrl-C too)\n"
            "  //text          send a line that starts with /\n"
            "Tab completes commands and the names of people online."
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
        "history_header": "— 之前的 {count} 条消息 —",
        "history_busy": "正在获取上一次 /history…",
        "no_earlier": "没有更早的消息",
        "users": "在线 ({total}): {names}",
        "users_more": "{names} … 等 {more} 人",
        "help": (
            "命令:\n"
            "  /who            查看在线用户\n"
            "  /history [N]    显示之前的 N 条消息 (默认 10)\n"
            "  /me 动作        描述你的动作: * 你 动作\n"
            "  /help           显示本帮助\n"
            "  /quit 或 quit   退出聊天室 (也可用 Ctrl-D, Ctrl-C)\n"
            "  //文字          发送以 / 开头的一行\n"
            "Tab 键可补全命令和在线用户名。"
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
