"""What the client shows: catalogs, colours, widths, layout, sanitising. Pure."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chatroom.client import commands as c
from chatroom.client.effects import Notice, ShowEvent, ShowPending, ShowRooms, ShowUsers
from chatroom.client.i18n import CATALOGS, detect_lang, reason, tr
from chatroom.client.render import Renderer
from chatroom.client.style import PALETTE, Style, colour_enabled, cursor_enabled, name_colour
from chatroom.client.terminal import clear_input
from chatroom.client.width import (
    cursor_row,
    display_width,
    end_position,
    pad_left,
    rows_of,
    wrap,
)
from chatroom.events import Event, EventKind

pytestmark = pytest.mark.pure

SGR = re.compile(r"\x1b\[[0-9;]*m")
NOON = time.mktime((2025, 1, 31, 12, 1, 0, 0, 0, -1))


def render(out: object, *, lang: str = "en", colour: bool = False, columns: int = 0) -> list[str]:
    r = Renderer(lang, Style(colour), columns=lambda: columns)  # type: ignore[arg-type]
    return r.render(out, NOON)  # type: ignore[arg-type]


def event(
    kind: EventKind, name: str = "alice", text: str = "", id_: int = 1, room: str = "#lobby"
) -> Event:
    return Event(id_, kind, name, text, NOON, room=room)


# ------------------------------------------------------------------ i18n


def test_both_catalogs_have_the_same_keys_and_fields() -> None:
    en, zh = CATALOGS["en"], CATALOGS["zh"]
    assert en.keys() == zh.keys()
    fields = re.compile(r"{(\w+)}")
    for key in en:
        assert set(fields.findall(en[key])) == set(fields.findall(zh[key])), key


#: Every code the server sends (chatroom/server/v2.py, hub.py, guard.py,
#: directory.py, protocol/rules.py and codec.py), by frame.
SERVER_CODES = {
    "refused": (
        ["taken", "invalid", "reserved", "confusable", "ratelimited", "full", "badroom", "storage"]
    ),
    "err": [
        "nosession",
        "slowdown",
        "badtext",
        "toolong",
        "utf8",
        "fields",
        "verb",
        "notmember",
        "badroom",
        "toomany",
        "storage",
        "shutdown",
    ],
    "rejected": ["offline", "classic", "notmember", "badroom", "self"],
}
_ASCII_WORD = re.compile(r"[A-Za-z]{3,}")


@pytest.mark.parametrize("kind", sorted(SERVER_CODES))
def test_every_code_the_server_sends_is_worded_in_both_languages(kind: str) -> None:
    for code in SERVER_CODES[kind]:
        en = reason("en", kind, code, "FALLBACK")
        zh = reason("zh", kind, code, "FALLBACK")
        assert "FALLBACK" not in (en, zh), (kind, code)
        # no English in the Chinese (but UTF-8, and /part: a command)
        english = [w for w in _ASCII_WORD.findall(zh) if w not in ("UTF", "part")]
        assert not english, (kind, code, zh)


def test_the_server_sends_no_error_code_the_client_cannot_word() -> None:
    # A new ERR code on the server without a wording here fails this test.
    root = Path(__file__).resolve().parent.parent / "chatroom"
    sources = [*(root / "server").glob("*.py"), root / "protocol" / "codec.py"]
    text = _read(*sources)
    sent = set(re.findall(r'Error\("(\w+)"', text))
    sent |= set(re.findall(r'BadFrame\("(\w+)"', text)) - {"empty", "oversize"}  # no answer
    assert sent - set(SERVER_CODES["err"]) == set()
    assert sent, "the scan found the codes"
    # Login refusals: the name and room rules, the directory and the guard.
    checks = [root / "protocol" / "rules.py", root / "server" / "directory.py"]
    refusals = set(re.findall(r'return (?:raw|name), "(\w+)"', _read(*checks)))
    refusals |= set(re.findall(r'return "(\w+)"', _read(root / "server" / "guard.py")))
    assert refusals - set(SERVER_CODES["refused"]) == set()
    assert {"taken", "invalid", "ratelimited"} <= refusals, "the scan found the codes"


def _read(*paths: Path) -> str:
    return "\n".join(path.read_text() for path in paths)


def test_an_unknown_code_falls_back_to_the_server_s_text() -> None:
    assert reason("zh", "err", "brandnew", "something new") == "something new"
    lines = render(Notice("server_error", {"code": "brandnew", "text": "new\x1b[2J"}), lang="zh")
    assert lines == ["12:01         -- │ 服务器: new\\x1b[2J"]


@pytest.mark.parametrize(
    ("out", "en", "zh"),
    [
        (
            Notice("server_error", {"code": "storage", "text": "the server cannot store"}),
            "server: the server cannot store messages right now — yours stay queued and are "
            "retried",
            "服务器: 服务器暂时无法保存消息 — 你的消息仍在队列中, 将自动重试",
        ),
        (
            Notice("server_error", {"code": "shutdown", "text": "the server is shutting down"}),
            "server: shutting down",
            "服务器: 即将关闭",
        ),
        (
            Notice("server_error", {"code": "toomany", "text": "at most 16 rooms at once"}),
            "server: you are in too many rooms at once — /part one first",
            "服务器: 同时加入的房间过多 — 请先 /part 一个",
        ),
        (
            Notice("rejected", {"code": "badroom", "reason": "not a valid room", "text": "hi"}),
            "not sent (not a valid room): hi",
            "未发送 (无效的房间名): hi",
        ),
        (
            Notice("rejoin_refused", {"name": "bob", "code": "taken", "text": "name taken"}),
            "cannot rejoin as bob: name already taken — retrying",
            "无法以 bob 重新加入: 该用户已存在 — 正在重试",
        ),
    ],
)
def test_server_codes_are_worded_in_the_client_s_language(out: Notice, en: str, zh: str) -> None:
    assert render(out)[0].endswith(en)
    assert render(out, lang="zh")[0].endswith(zh)


@pytest.mark.parametrize(
    ("code", "en", "zh"),
    [
        ("taken", "name refused: name already taken", "无法使用该名字: 该用户已存在"),
        ("invalid", "name refused: invalid name: 1-32", "无法使用该名字: 用户名无效"),
        ("confusable", "name refused: name looks too much", "无法使用该名字: 该用户名与在线"),
        ("full", "cannot log in: too many sessions", "无法登录: 该地址的会话数已达上限"),
        ("storage", "cannot log in: the server cannot store", "无法登录: 服务器暂时无法保存"),
        ("brandnew", "cannot log in: what the server said", "无法登录: what the server said"),
    ],
)
def test_a_login_refusal_is_worded_from_its_code(code: str, en: str, zh: str) -> None:
    for lang, expected in (("en", en), ("zh", zh)):
        line = Renderer(lang, Style(False)).refused(code, "what the server said")  # type: ignore[arg-type]
        assert line.startswith(expected), line


@pytest.mark.parametrize(
    ("flag", "env", "expected"),
    [
        ("zh", {"LANG": "en_US.UTF-8"}, "zh"),
        ("en", {"LANG": "zh_CN.UTF-8"}, "en"),
        (None, {"LANG": "zh_CN.UTF-8"}, "zh"),
        (None, {"LC_ALL": "en_GB.UTF-8", "LANG": "zh_CN.UTF-8"}, "en"),
        (None, {"LC_MESSAGES": "zh_TW.UTF-8", "LANG": "C"}, "zh"),
        (None, {"LC_ALL": "", "LANG": "zh_CN"}, "zh"),  # empty means unset
        (None, {}, "en"),
    ],
)
def test_language_from_flag_then_locale(
    flag: str | None, env: dict[str, str], expected: str
) -> None:
    assert detect_lang(flag, env) == expected


def test_course_wording_in_chinese() -> None:
    assert render(ShowEvent(event("join")), lang="zh")[0].endswith("alice 进入了聊天室")
    assert render(ShowEvent(event("quit")), lang="zh")[0].endswith("alice退出了聊天室")
    announce = render(ShowEvent(event("announce", "", "开会")), lang="zh")
    assert announce[0].endswith("管理员消息: 开会")


# ------------------------------------------------------------------ colour decisions


@pytest.mark.parametrize(
    ("isatty", "flag", "env", "expected"),
    [
        (True, False, {"TERM": "xterm-256color"}, True),
        (False, False, {"TERM": "xterm-256color"}, False),
        (True, True, {"TERM": "xterm-256color"}, False),
        (True, False, {"TERM": "xterm", "NO_COLOR": "1"}, False),
        (True, False, {"TERM": "xterm", "NO_COLOR": "0"}, False),  # any non-empty value
        (True, False, {"TERM": "xterm", "NO_COLOR": ""}, True),  # empty: not set
        (True, False, {"TERM": "dumb"}, False),
    ],
)
def test_colour_only_on_a_terminal_and_never_with_no_color(
    isatty: bool, flag: bool, env: dict[str, str], expected: bool
) -> None:
    assert colour_enabled(isatty=isatty, no_color_flag=flag, env=env) is expected


def test_cursor_control_needs_a_real_terminal_but_not_colour() -> None:
    assert cursor_enabled(isatty=True, env={"TERM": "xterm", "NO_COLOR": "1"})
    assert not cursor_enabled(isatty=True, env={"TERM": "dumb"})
    assert not cursor_enabled(isatty=False, env={"TERM": "xterm"})


def test_name_colours_are_stable_across_processes_and_readable() -> None:
    code = "from chatroom.client.style import name_colour; print(name_colour('alice'))"
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert int(other.stdout) == name_colour("alice")  # not Python's salted hash()
    assert name_colour("Alice") == name_colour("alice")  # one name, one colour
    assert all(16 <= n <= 231 for n in PALETTE)  # the cube: no theme colours, no greys
    assert len(PALETTE) >= 30
    assert len({name_colour(f"user{i}") for i in range(200)}) > 20


def test_no_escape_sequences_without_colour() -> None:
    outs = [
        ShowEvent(event("message", text="hi")),
        ShowEvent(event("message", text="old"), history=True),
        ShowEvent(event("message", text="mine"), own=True),
        ShowEvent(event("join")),
        ShowEvent(event("timeout")),
        Notice("connection_lost"),
        ShowUsers(2, ("alice", "bob")),
        ShowUsers(2, ("alice", "bob"), "#dev"),
        ShowRooms(1, (("#dev", 2),)),
        ShowEvent(event("message", text="dm", room="@bob")),
        ShowEvent(event("message", text="dm", room="@bob"), own=True),
        ShowEvent(event("message", text="there", room="#dev"), elsewhere=True),
        ShowEvent(event("join", room="#dev"), elsewhere=True),
        Notice("dm_offline", {"name": "bob", "text": "hi"}),
    ]
    for out in outs:
        for line in render(out):
            assert "\x1b" not in line
        assert any(SGR.search(line) for line in render(out, colour=True))


# ------------------------------------------------------------------ layout


def test_line_layout_time_name_text() -> None:
    (line,) = render(ShowEvent(event("message", text="hello")))
    assert line == "12:01      alice │ hello"


DAY = 86400.0


def test_history_from_today_is_dimmed_and_aligned_with_live_lines() -> None:
    (line,) = render(ShowEvent(event("message", text="old news"), history=True))
    assert line == "12:01      alice │ old news"  # the columns of a live line
    (styled,) = render(ShowEvent(event("message", text="old news"), history=True), colour=True)
    assert "\x1b[2m" in styled or "\x1b[2;" in styled


def test_history_from_other_days_is_dated_by_a_line_of_its_own() -> None:
    r = Renderer("en", Style(False))
    now = NOON + 3 * DAY + 60

    def show(ts: float, text: str, *, history: bool = True) -> list[str]:
        ev = Event(1, "message", "alice", text, ts)
        return r.render(ShowEvent(ev, history=history), now)

    assert show(NOON - 3600, "a") == ["── 2025-01-31 ──", "11:01      alice │ a"]
    assert show(NOON, "b") == ["12:01      alice │ b"]  # the same day: no new date line
    assert show(NOON + DAY, "c") == ["── 2025-02-01 ──", "12:01      alice │ c"]
    # back to today after older days: dated too, or it would read as 2025-02-01
    assert show(now, "d", history=False) == ["── 2025-02-03 ──", "12:02      alice │ d"]
    assert show(now, "e", history=False) == ["12:02      alice │ e"]
    (styled, _) = Renderer("en", Style(True)).render(ShowEvent(event("message")), now)
    assert styled == "\x1b[2m── 2025-01-31 ──\x1b[0m"


def test_a_history_batch_starts_with_its_own_date() -> None:
    r = Renderer("en", Style(False))
    now = NOON + 2 * DAY
    r.render(ShowEvent(Event(9, "message", "bob", "live", now)), now)
    assert r.render(Notice("history_header", {"count": 1, "room": "#lobby"}), now) == [
        "12:01         -- │ — the last 1 event(s) of #lobby —"
    ]
    old = ShowEvent(Event(1, "message", "alice", "x", NOON), history=True)
    assert r.render(old, now)[0] == "── 2025-01-31 ──"


def test_the_day_changing_during_a_session_is_dated() -> None:
    r = Renderer("en", Style(False))
    assert len(r.render(ShowEvent(event("message")), NOON)) == 1
    late = Event(2, "message", "bob", "after midnight", NOON + DAY)
    assert r.render(ShowEvent(late), NOON + DAY)[0] == "── 2025-02-01 ──"


def test_action_and_own_message() -> None:
    (line,) = render(ShowEvent(event("message", "bob", "/me waves")))
    assert line.endswith("│ * bob waves")
    (own,) = render(ShowEvent(event("message", text="mine"), own=True), colour=True)
    assert ";1;4m" in own  # bold, underlined name


def test_peer_text_is_neutralised() -> None:
    evil = "\x1b]52;c;aGk=\x07\x1b[2J\u202eevil"
    (line,) = render(ShowEvent(event("message", "bob", evil)))
    assert "\x1b" not in line and "\x07" not in line and "\u202e" not in line
    assert "\\x1b]52;c;aGk=\\x07" in line
    lines = render(Notice("server_error", {"code": "x", "text": "\x1b[31mred"}))
    assert "\x1b" not in "".join(lines)
    lines = render(ShowUsers(1, ("\x1b[2Jname",)))
    assert "\x1b" not in "".join(lines)


def test_wide_characters_keep_the_columns() -> None:
    (a,) = render(ShowEvent(event("message", "张三", "你好")))
    (b,) = render(ShowEvent(event("message", "bob", "hi")))
    assert display_width(a.split("│")[0]) == display_width(b.split("│")[0])


def test_long_text_wraps_under_itself_by_display_width() -> None:
    lines = render(ShowEvent(event("message", "bob", "字" * 100)), columns=60)
    assert len(lines) > 1
    bar = display_width(lines[0].split("│")[0])
    for line in lines:
        assert display_width(line) <= 59
        assert display_width(line.split("│")[0]) == bar
    assert "".join(line.split("│ ", 1)[1] for line in lines) == "字" * 100


def test_help_and_usage_and_long_gave_up_notice() -> None:
    lines = render(Notice("help"))
    assert any("/history [N]" in line for line in lines)
    assert "/history" in render(Notice("usage", {"command": "/history"}))[0]
    (line,) = render(Notice("gave_up", {"text": "z" * 500}))
    assert len(line) < 140 and line.endswith("…")


def test_too_long_states_the_limit() -> None:
    (line,) = render(Notice("too_long", {"size": 1300, "limit": 1150}))
    assert "1300 bytes" in line and "1150 bytes" in line


def test_users_line_counts_those_that_did_not_fit() -> None:
    (line,) = render(ShowUsers(5, ("alice", "bob")))
    assert line.endswith("in #lobby (5): alice, bob … and 3 more")


# ------------------------------------------------------------------ width helpers


@pytest.mark.parametrize(
    ("text", "width", "expected"),
    [
        ("hello world", 20, ["hello world"]),
        ("hello world", 5, ["hello", "world"]),
        ("hello world again", 11, ["hello world", "again"]),
        ("abcdefghij", 4, ["abcd", "efgh", "ij"]),
        ("中文字符串", 4, ["中文", "字符", "串"]),
        ("a中文", 2, ["a", "中", "文"]),  # a wide character is never split
        ("anything", 0, ["anything"]),
    ],
)
def test_wrap(text: str, width: int, expected: list[str]) -> None:
    assert wrap(text, width) == expected


def test_pad_left_by_display_width() -> None:
    assert pad_left("中文", 6) == "  中文"
    assert pad_left("toolongname", 4) == "toolongname"


@pytest.mark.parametrize(
    ("text", "columns", "position", "rows"),
    [
        ("", 10, (0, 0), 1),
        ("abc", 10, (0, 3), 1),
        ("a" * 10, 10, (0, 10), 1),  # a full row: the terminal's wrap is pending
        ("a" * 11, 10, (1, 1), 2),
        ("a" * 25, 10, (2, 5), 3),
        ("a" * 9 + "中", 10, (1, 2), 2),  # one column left: the wide character moves on
        ("中" * 5, 10, (0, 10), 1),
        ("中" * 6, 10, (1, 2), 2),
        ("a" * 10 + "\u0301", 10, (0, 10), 1),  # a combining mark takes no column
    ],
)
def test_end_position_and_rows_as_readline_lays_out_its_line(
    text: str, columns: int, position: tuple[int, int], rows: int
) -> None:
    assert end_position(text, columns) == position
    assert rows_of(text, columns) == rows


@pytest.mark.parametrize(
    ("before", "after", "columns", "row"),
    [
        ("abc", "", 10, 0),
        ("a" * 9, "", 10, 0),
        ("a" * 10, "", 10, 1),  # at the end of a full row readline moves the cursor on
        ("a" * 10, "b", 10, 1),
        ("a" * 9, "b", 10, 0),
        ("a" * 9, "中", 10, 1),  # on a wide character that had to move to the next row
        ("alice> " + "中" * 130, "", 120, 2),
        ("alice> ", "x" * 250, 120, 0),  # the cursor moved back to the first row
    ],
)
def test_cursor_row(before: str, after: str, columns: int, row: int) -> None:
    assert cursor_row(before, after, columns) == row


def test_clear_input_moves_up_only_when_needed() -> None:
    assert clear_input(0) == "\r\x1b[J"  # ESC[0A would move up one row
    assert clear_input(2) == "\x1b[2A\r\x1b[J"
    assert clear_input(-1) == "\r\x1b[J"


# ------------------------------------------------------------------ typed lines


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("hello", c.Message("hello")),
        ("  hello  ", c.Message("hello")),
        ("", None),
        ("quit", c.QuitCmd()),
        ("/quit", c.QuitCmd()),
        ("/QUIT", c.Unknown("/QUIT")),
        ("/who", c.WhoCmd()),
        ("/history", c.HistoryCmd(c.HISTORY_DEFAULT)),
        ("/history 5", c.HistoryCmd(5)),
        ("/history 0", c.Usage("/history")),
        ("/history 99999", c.Usage("/history")),
        ("/me waves", c.Message("/me waves")),
        ("/me", c.Usage("/me")),
        ("//path", c.Message("/path")),
        ("/help", c.Help()),
        ("/nope", c.Unknown("/nope")),
        ("/who #dev", c.WhoCmd("#dev")),
        ("/who dev", c.WhoCmd("#dev")),
        ("/who #a #b", c.Usage("/who")),
        ("/join #dev", c.JoinCmd("#dev")),
        ("/join dev", c.JoinCmd("#dev")),
        ("/JOIN  #Dev ", c.JoinCmd("#Dev")),
        ("/j #dev", c.JoinCmd("#dev")),
        ("/join", c.Usage("/join")),
        ("/join #a #b", c.Usage("/join")),
        ("/part", c.PartCmd(None)),
        ("/part #dev", c.PartCmd("#dev")),
        ("/leave dev", c.PartCmd("#dev")),
        ("/part #a #b", c.Usage("/part")),
        ("/rooms", c.RoomsCmd()),
        ("/list", c.RoomsCmd()),
        ("/rooms x", c.Usage("/rooms")),
        ("/msg bob hi there", c.DirectCmd("bob", "hi there")),
        ("/msg @bob hi", c.DirectCmd("bob", "hi")),
        ("/m bob  /me waves", c.DirectCmd("bob", "/me waves")),
        ("/msg bob", c.Usage("/msg")),
        ("/msg", c.Usage("/msg")),
        ("/reply ok then", c.ReplyCmd("ok then")),
        ("/r ok", c.ReplyCmd("ok")),
        ("/reply", c.Usage("/reply")),
        ("#dev is a room", c.Message("#dev is a room")),
    ],
)
def test_parse_line(line: str, expected: object) -> None:
    assert c.parse_line(line) == expected


def test_completion_of_commands_and_names() -> None:
    assert c.complete("/h", []) == ["/help", "/history"]
    assert c.complete("b", ["alice", "Bob", "bobby"]) == ["Bob", "bobby"]
    assert c.complete("z", ["alice"]) == []
    assert c.complete("/j", []) == ["/join"]
    assert c.complete("/r", []) == ["/rooms", "/reply"]


def test_completion_of_rooms() -> None:
    known = ["alice", "bob", "#dev", "#Design", "#lobby"]
    assert c.complete("#d", known) == ["#Design", "#dev"]
    assert c.complete("#", known) == ["#Design", "#dev", "#lobby"]
    assert c.complete("", known) == ["alice", "bob"]  # a bare Tab offers people
    message = tr("en", "no_answer", host="h", port=1)
    assert message == "no answer from h:1 — is chatroom serve running?"


# ------------------------------------------------------------------ rooms and direct messages


@pytest.mark.parametrize(
    ("out", "line"),
    [
        # the current room: as ever
        (ShowEvent(event("message", "bob", "hi")), "12:01        bob │ hi"),
        # another room: its name first
        (
            ShowEvent(event("message", "bob", "hi", room="#dev"), elsewhere=True),
            "12:01        bob │ [#dev] hi",
        ),
        (
            ShowEvent(event("message", "bob", "/me waves", room="#dev"), elsewhere=True),
            "12:01            │ [#dev] * bob waves",
        ),
        (
            ShowEvent(event("join", "bob", room="#dev"), elsewhere=True),
            "12:01        --> │ [#dev] bob joined",
        ),
        (
            ShowEvent(event("timeout", "bob", room="#dev"), elsewhere=True),
            "12:01        <-- │ [#dev] bob timed out",
        ),
        # direct messages: theirs to us, ours to them
        (ShowEvent(event("message", "bob", "psst", room="@bob")), "12:01      bob → │ psst"),
        (
            ShowEvent(event("message", "alice", "psst", room="@bob"), own=True, elsewhere=True),
            "12:01      → bob │ psst",
        ),
        (
            ShowEvent(event("message", "bob", "/me waves", room="@bob"), elsewhere=True),
            "12:01      bob → │ * bob waves",
        ),
        (
            ShowEvent(event("message", "张三", "你好", room="@张三"), elsewhere=True),
            "12:01     张三 → │ 你好",
        ),
    ],
)
def test_room_label_and_direct_message_marker(out: ShowEvent, line: str) -> None:
    assert render(out) == [line]


def test_direct_messages_and_room_labels_have_their_colours() -> None:
    (theirs,) = render(ShowEvent(event("message", "bob", "psst", room="@bob")), colour=True)
    assert "\x1b[95m→\x1b[0m" in theirs and theirs.endswith("\x1b[95mpsst\x1b[0m")
    (ours,) = render(
        ShowEvent(event("message", "alice", "psst", room="@bob"), own=True), colour=True
    )
    assert "\x1b[95m→\x1b[0m" in ours and f"38;5;{name_colour('bob')}m" in ours
    (labelled,) = render(
        ShowEvent(event("message", "bob", "hi", room="#dev"), elsewhere=True), colour=True
    )
    assert "\x1b[94m[#dev]\x1b[0m" in labelled and SGR.sub("", labelled).endswith("[#dev] hi")


def test_a_labelled_line_wraps_under_itself() -> None:
    out = ShowEvent(event("message", "bob", "word " * 30, room="#dev"), elsewhere=True)
    lines = render(out, columns=60, colour=True)
    assert len(lines) > 1 and "[#dev]" in lines[0]
    bar = display_width(SGR.sub("", lines[0]).split("│")[0])
    assert all(display_width(SGR.sub("", x).split("│")[0]) == bar for x in lines)


def test_room_and_peer_names_are_neutralised() -> None:
    evil = "\x1b[2J"
    lines = render(ShowEvent(event("message", "bob", "x", room="#" + evil), elsewhere=True))
    lines += render(ShowEvent(event("message", "a", "x", room="@" + evil), own=True))
    lines += render(ShowUsers(1, ("bob",), "#" + evil))
    lines += render(ShowRooms(1, (("#" + evil, 1),)))
    lines += render(Notice("dm_offline", {"name": evil, "text": evil}))
    assert "\x1b" not in "".join(lines)
    r = Renderer("en", Style(False))
    assert r.prompt("#" + evil, "alice") == "#\\x1b[2J> "


@pytest.mark.parametrize(
    ("lang", "out", "line"),
    [
        ("en", ShowUsers(2, ("bob", "carol"), "#dev"), "in #dev (2): bob, carol"),
        ("zh", ShowUsers(2, ("bob", "carol"), "#dev"), "#dev 中 (2): bob, carol"),
        ("en", ShowRooms(2, (("#dev", 3), ("#lobby", 5))), "rooms (2): #dev (3), #lobby (5)"),
        ("en", ShowRooms(3, (("#dev", 3),)), "rooms (3): #dev (3) … and 2 more"),
        ("zh", ShowRooms(3, (("#dev", 3),)), "房间 (3): #dev (3) … 等 2 个"),
        ("en", Notice("dm_offline", {"name": "bob", "text": "hi"}), "bob is not online"),
        ("zh", Notice("dm_offline", {"name": "bob", "text": "hi"}), "bob 不在线"),
        ("en", Notice("no_room"), "/join #room"),
        ("zh", Notice("no_room"), "/join #房间"),
        ("en", Notice("no_reply"), "nobody has written to you yet"),
        ("en", Notice("now_in", {"room": "#dev"}), "now talking in #dev"),
        ("en", Notice("parted", {"room": "#dev"}), "you left #dev"),
        ("en", Notice("usage", {"command": "/msg"}), "usage: /msg NAME TEXT"),
        ("zh", Notice("usage", {"command": "/join"}), "用法: /join #房间"),
    ],
)
def test_rooms_and_direct_message_wording(lang: str, out: object, line: str) -> None:
    assert line in render(out, lang=lang)[0]


def test_help_lists_the_room_commands_in_both_languages() -> None:
    for lang in ("en", "zh"):
        text = "\n".join(render(Notice("help"), lang=lang))
        for command in c.COMMANDS:
            assert command in text, (lang, command)


@pytest.mark.parametrize(
    ("lang", "wording"),
    [("en", "/history [N]    show the last N events of this room"), ("zh", "最近的 N 条消息")],
)
def test_help_says_history_shows_the_last_events(lang: str, wording: str) -> None:
    assert wording in "\n".join(render(Notice("help"), lang=lang))


def test_prompt_shows_the_current_room() -> None:
    r = Renderer("en", Style(False))
    assert r.prompt("#dev", "alice") == "#dev> "
    assert r.prompt(None, "alice") == "alice> "  # in no room


def test_the_keyboard_process_takes_names_rooms_and_prompt_from_the_pipe() -> None:
    import os

    from chatroom.client.keyboard import Keyboard
    from chatroom.client.network import PROMPT, ROOMS, _names_message
    from chatroom.client.terminal import SharedTerminal

    r, w = os.pipe()
    try:
        kb = Keyboard(
            0,
            -1,
            r,
            SharedTerminal(),
            prompt="#lobby> ",
            tty=False,
            cursor=False,
            say=lambda text: None,
            child_died_text="",
        )
        os.set_blocking(r, False)
        os.write(w, _names_message(("alice", "bob")) + _names_message(("#dev", "#lobby"), ROOMS))
        os.write(w, PROMPT + b"#dev> \n" + PROMPT + b"#ops> \n")
        kb._read_names()
        assert kb.prompt == "#lobby> "  # not from readline's callbacks
        kb._apply_prompt()
        assert kb.prompt == "#ops> "  # the newest
        assert kb._complete("#d", 0) == "#dev" and kb._complete("#d", 1) is None
        assert kb._complete("b", 0) == "bob"
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.parametrize("room", ["bad room", "#", "#a:b", "#" + "x" * 33, "#tab\there"])
def test_join_refuses_a_bad_room_as_a_usage_error(room: str) -> None:
    from click.testing import CliRunner

    from chatroom.cli import cli

    result = CliRunner().invoke(cli, ["join", "alice", "--port", "1", "--room", room])
    assert result.exit_code == 2, result.output
    assert "is not a room name" in result.output


def test_every_place_words_the_room_rule_the_same() -> None:
    """From a tryout: /join said "no spaces" where --room said "no spaces or
    colons". The rule has one wording, in every place that refuses a room."""
    from click.testing import CliRunner

    from chatroom import protocol as p
    from chatroom.cli import cli

    rule = p.ROOM_RULE
    assert "colons" in rule and "spaces" in rule and "control characters" in rule
    join = CliRunner().invoke(cli, ["join", "alice", "--port", "1", "--room", "#a:b"])
    history = CliRunner().invoke(cli, ["history", "--room", "#a:b"])
    assert rule in " ".join(join.output.split())  # click may wrap the line
    assert rule in " ".join(history.output.split())
    assert rule in tr("en", "bad_room", room="#a:b")
    assert rule in tr("en", "refused:badroom")
    assert rule in p.classic_text("en", "badroom").decode()


def test_join_takes_a_room_with_or_without_its_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from chatroom.cli import cli
    from chatroom.client import shell

    rooms: list[str] = []

    def fake_run(opts: shell.JoinOptions) -> int:
        rooms.append(opts.room)
        return 0

    monkeypatch.setattr(shell, "run", fake_run)
    for room in ("#dev", "dev", "#Ｄev"):
        assert CliRunner().invoke(cli, ["join", "alice", "--room", room]).exit_code == 0
    assert CliRunner().invoke(cli, ["join", "alice"]).exit_code == 0
    assert rooms == ["#dev", "#dev", "#Ｄev", "#lobby"]


# ------------------------------------------------------------------ pending lines


@pytest.mark.parametrize(
    ("lang", "waiting", "delivered"),
    [
        ("en", "12:01      alice │ hello  … sending", "12:01      alice │ hello  ✓ delivered"),
        ("zh", "12:01      alice │ hello  … 发送中", "12:01      alice │ hello  ✓ 已送达"),
    ],
)
def test_a_pending_message_and_its_delivery_are_marked(
    lang: str, waiting: str, delivered: str
) -> None:
    assert render(ShowPending("alice", "hello", "#lobby"), lang=lang) == [waiting]
    line = ShowEvent(event("message", "alice", "hello"), own=True, delivered=True)
    assert render(line, lang=lang) == [delivered]
    plain = ShowEvent(event("message", "alice", "hello"), own=True)
    assert render(plain, lang=lang) == ["12:01      alice │ hello"]  # as ever


def test_a_pending_line_is_dimmed_like_history_and_its_mark_too() -> None:
    (line,) = render(ShowPending("alice", "hello", "#lobby"), colour=True)
    assert "\x1b[2mhello" in line
    assert line.endswith("\x1b[2m… sending\x1b[0m")
    own = ShowEvent(event("message", "alice", "hello"), own=True, delivered=True)
    (line,) = render(own, colour=True)
    assert "\x1b[2mhello" not in line  # the delivered line is a normal one
    assert line.endswith("  \x1b[2m✓ delivered\x1b[0m")


def test_pending_lines_elsewhere_direct_and_actions() -> None:
    assert render(ShowPending("alice", "hi", "#dev", elsewhere=True)) == [
        "12:01      alice │ [#dev] hi  … sending"
    ]
    assert render(ShowPending("alice", "psst", "@bob", elsewhere=True)) == [
        "12:01      → bob │ psst  … sending"
    ]
    assert render(ShowPending("alice", "/me waves", "#lobby")) == [
        "12:01            │ * alice waves  … sending"
    ]


def test_a_mark_that_does_not_fit_gets_a_row_of_its_own() -> None:
    text = "x" * 58  # fills the row of a 80-column terminal
    lines = render(ShowPending("alice", text, "#lobby"), columns=80)
    assert lines == ["12:01      alice │ " + text, "                 │ … sending"]
    lines = render(ShowPending("alice", "x" * 49, "#lobby"), columns=80)
    assert lines == ["12:01      alice │ " + "x" * 49 + "  … sending"]  # 79 columns
