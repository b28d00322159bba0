"""Shell completion through click's own mechanism (``_CHATROOM_COMPLETE``), enabled the
way the README says, with the installed ``chatroom`` command (the one on a user's PATH)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the venv the tests run in, where chatroom is installed
CHATROOM = BIN / "chatroom"
ENABLE = re.compile(r"_CHATROOM_COMPLETE=(\w+)_source chatroom")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMP_", "_CHATROOM"))}
    return {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}", **extra}


def _readme_lines() -> dict[str, str]:
    """The README's line to enable completion, per shell."""
    lines: dict[str, str] = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        if m := ENABLE.search(line):
            lines[m.group(1)] = line.split("#", 1)[0].strip()
    return lines


def test_readme_enables_completion_for_bash_zsh_and_fish() -> None:
    lines = _readme_lines()
    assert set(lines) == {"bash", "zsh", "fish"}
    for shell in lines:
        script = subprocess.run(
            [CHATROOM],
            env=_env(_CHATROOM_COMPLETE=f"{shell}_source"),
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
        assert script.returncode == 0, script.stderr
        assert "_chatroom_completion" in script.stdout, shell


@pytest.mark.parametrize(
    ("words", "cword", "offered"),
    [("chatroom hi", 1, "history"), ("chatroom db u", 2, "upgrade")],
)
def test_completion_offers_commands(words: str, cword: int, offered: str) -> None:
    result = subprocess.run(
        [CHATROOM],
        env=_env(_CHATROOM_COMPLETE="bash_complete", COMP_WORDS=words, COMP_CWORD=str(cword)),
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    assert f"plain,{offered}" in result.stdout.splitlines()


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_readme_line_completes_in_bash() -> None:
    """The README's bash line, evaluated by bash, then a Tab after `chatroom hi`."""
    enable = _readme_lines()["bash"]
    script = (
        f"{enable}\n"
        "COMP_WORDS=(chatroom hi); COMP_CWORD=1\n"
        "_chatroom_completion chatroom\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["history"]
