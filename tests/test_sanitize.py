"""chatroom.sanitize.visible: stored text can never drive the terminal."""

from __future__ import annotations

import unicodedata

import pytest

from chatroom.sanitize import visible

pytestmark = pytest.mark.pure

CASES = [
    # name, raw, shown
    ("plain ascii", "hello, world!", "hello, world!"),
    ("non-ascii kept", "héllo 你好 Привет 🙂", "héllo 你好 Привет 🙂"),
    ("OSC 52 clipboard", "\x1b]52;c;ZXZpbA==\x07", "\\x1b]52;c;ZXZpbA==\\x07"),
    ("OSC 0 title (ST)", "\x1b]0;pwned\x1b\\", "\\x1b]0;pwned\\x1b\\"),
    ("CSI 21 t title report", "\x1b[21t", "\\x1b[21t"),
    ("DCS", "\x1bPq#0;2;0;0;0\x1b\\", "\\x1bPq#0;2;0;0;0\\x1b\\"),
    ("ESC c reset", "\x1bc", "\\x1bc"),
    ("ESC [2J clear", "\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H"),
    ("8-bit CSI U+009B", "\x9b2J", "\\x9b2J"),
    ("8-bit OSC U+009D", "\x9d0;t\x9c", "\\x9d0;t\\x9c"),
    ("BEL", "ding\x07", "ding\\x07"),
    ("BS overwrites", "paid\x08\x08\x08\x08owed", "paid\\x08\\x08\\x08\\x08owed"),
    ("CR overwrites the line", "fine\rhacked", "fine\\x0dhacked"),
    (
        "LF forges a line",
        "hi\n2026-11-27 15:04  bob : I owe you",
        "hi\\x0a2026-11-27 15:04  bob : I owe you",
    ),
    ("NUL", "a\x00b", "a\\x00b"),
    ("DEL", "a\x7fb", "a\\x7fb"),
    ("tab becomes a space", "a\tb", "a b"),
    ("RLO U+202E", "abc\u202edcba", "abc\\u202edcba"),
    ("LRE..PDF", "\u202a\u202b\u202c\u202d", "\\u202a\\u202b\\u202c\\u202d"),
    ("isolates U+2066-2069", "\u2066\u2067\u2068\u2069", "\\u2066\\u2067\\u2068\\u2069"),
    ("marks LRM RLM ALM", "\u200e\u200f\u061c", "\\u200e\\u200f\\u061c"),
    ("line/paragraph separators", "a\u2028b\u2029c", "a\\u2028b\\u2029c"),
]


@pytest.mark.parametrize(("raw", "shown"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_visible(raw: str, shown: str) -> None:
    assert visible(raw) == shown


@pytest.mark.parametrize("code", [*range(0x20), *range(0x7F, 0xA0)])
def test_no_control_character_survives(code: int) -> None:
    out = visible(f"x{chr(code)}y")
    assert all(unicodedata.category(ch) != "Cc" for ch in out)
    assert "\x1b" not in out


def test_idempotent_on_its_own_output() -> None:
    once = visible("\x1b[31mred\x1b[0m\u202e")
    assert visible(once) == once
