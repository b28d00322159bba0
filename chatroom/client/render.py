"""What the screen shows for each session output: lines of text, styled, wrapped.

Layout, one event per line (WeeChat-like, so texts line up)::

    12:01      alice │ hello everyone
    12:01        --> │ bob joined
    12:02          * │ alice waves
    12:03         -- │ connection lost — retrying…

The name column is right-aligned by display width (CJK names take two columns
a character) and a long text wraps under itself. Replayed history is dimmed.
Every line keeps the ``HH:MM`` column, so history and live lines stay aligned;
the date is a dimmed line of its own (``── 2025-01-31 ──``) before the first
event of a day that is not today, and again whenever the day changes (older
history, then today's events; midnight). Every piece of text that came from the
network goes through ``chatroom.sanitize.visible`` first, so a peer can never
send the terminal a control sequence. Pure apart from reading the local time
zone through ``localtime``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from chatroom.client import style as st
from chatroom.client.effects import Notice, Output, ShowEvent, ShowUsers
from chatroom.client.i18n import Lang, tr
from chatroom.client.width import display_width, pad_left, wrap
from chatroom.events import Event
from chatroom.sanitize import visible

#: How each kind of notice is tagged and coloured in the name column.
_NOTICE_STYLE: dict[str, tuple[str, tuple[str, ...]]] = {
    "join": ("-->", st.JOIN),
    "quit": ("<--", st.LEAVE),
    "timeout": ("<--", st.TIMEOUT),
    "announce": ("***", st.ANNOUNCE),
}

#: Columns of the name column (longer names push their text right).
NAME_COLUMNS = 10
#: Below this many columns for the text, do not wrap ourselves.
MIN_TEXT_COLUMNS = 20


@dataclass(slots=True)
class Renderer:
    lang: Lang
    style: st.Style
    columns: Callable[[], int] = lambda: 0
    localtime: Callable[[float], time.struct_time] = field(default=time.localtime)
    #: The day (YYYY-MM-DD) of the last event shown; None before the first, and
    #: at the start of a /history batch.
    _day: str | None = None

    # ------------------------------------------------------------------ entry point

    def render(self, out: Output, wall: float) -> list[str]:
        """The lines (without newlines) to print for one output; [] for none."""
        match out:
            case ShowEvent(event=ev, history=history, own=own):
                return self.day_line(ev.created_at, wall) + self.event(ev, history=history, own=own)
            case Notice(key=key, args=args):
                return self.notice(key, args, wall)
            case ShowUsers(total=total, names=names):
                return self.users(total, names, wall)
        return []

    # ------------------------------------------------------------------ pieces

    def _stamp(self, ts: float) -> str:
        return time.strftime("%H:%M", self.localtime(ts))

    def day_line(self, ts: float, wall: float) -> list[str]:
        """The dimmed date line due before an event at ``ts`` (``wall``: now)."""
        day = time.strftime("%Y-%m-%d", self.localtime(ts))
        previous, self._day = self._day, day
        if day == previous:
            return []
        if previous is None and day == time.strftime("%Y-%m-%d", self.localtime(wall)):
            return []  # today, and nothing before it to tell it from
        return [self.style.sgr(f"── {day} ──", *st.HISTORY)]

    def _line(
        self,
        stamp: str,
        tag: str,
        text: str,
        *,
        tag_styled: str | None = None,
        text_codes: tuple[str, ...] = (),
        dim: bool = False,
    ) -> list[str]:
        s = self.style
        head_plain = f"{stamp} {pad_left(tag, NAME_COLUMNS)} │ "
        indent = " " * (display_width(head_plain) - 2) + "│ "
        columns = self.columns()
        room = columns - 1 - display_width(head_plain) if columns > 0 else 0
        parts = wrap(text, room) if room >= MIN_TEXT_COLUMNS else [text]
        pad = " " * max(0, NAME_COLUMNS - display_width(tag))
        tag_out = tag_styled if tag_styled is not None else tag
        extra = ("2",) if dim else ()
        head = (
            s.sgr(stamp, *(st.TIME if not dim else st.HISTORY))
            + " "
            + pad
            + tag_out
            + " "
            + s.sgr("│", *st.TIME)
            + " "
        )
        lines = [head + s.sgr(parts[0], *extra, *text_codes)]
        lines += [s.sgr(indent, *st.TIME) + s.sgr(p, *extra, *text_codes) for p in parts[1:]]
        return lines

    def event(self, ev: Event, *, history: bool = False, own: bool = False) -> list[str]:
        s = self.style
        stamp = self._stamp(ev.created_at)
        name = visible(ev.name)
        text = visible(ev.text)
        dim = history
        match ev.kind:
            case "message" if text.startswith("/me "):
                body = tr(self.lang, "action", name=name, text=text[4:])
                return self._line(stamp, "", body, dim=dim, text_codes=("1",) if own else ())
            case "message":
                styled = s.name(ev.name, name, own=own, dim=dim)
                return self._line(stamp, name, text, tag_styled=styled, dim=dim)
            case "join" | "quit" | "timeout" | "announce":
                tag, codes = _NOTICE_STYLE[ev.kind]
                body = tr(self.lang, ev.kind, name=name, text=text)
                return self._line(
                    stamp, tag, body, tag_styled=s.sgr(tag, *codes), text_codes=codes, dim=dim
                )
        return []

    def notice(self, key: str, args: dict[str, str | int], wall: float) -> list[str]:
        safe = {k: visible(v) if isinstance(v, str) else v for k, v in args.items()}
        if key == "history_header":
            self._day = None  # the batch that follows starts with its own date
        if key == "usage":
            key = f"usage:{safe.get('command', '')}"
        if key in ("gave_up",) and isinstance(safe.get("text"), str):
            text = str(safe["text"])
            safe["text"] = text if len(text) <= 60 else text[:59] + "…"
        message = tr(self.lang, key, **safe)
        codes = (
            st.ERROR
            if key
            in (
                "connection_lost",
                "gave_up",
                "too_long",
                "control_chars",
                "undelivered",
                "undelivered_line",
            )
            else st.NOTICE
        )
        stamp = self._stamp(wall)
        lines: list[str] = []
        for i, part in enumerate(message.split("\n")):
            tag = "--" if i == 0 else ""
            lines += self._line(
                stamp if i == 0 else " " * len(stamp),
                tag,
                part,
                tag_styled=self.style.sgr(tag, *st.NOTICE),
                text_codes=codes,
            )
        return lines

    def users(self, total: int, names: tuple[str, ...], wall: float) -> list[str]:
        s = self.style
        shown = ", ".join(visible(n) for n in names)  # plain: the line may wrap
        if total > len(names):
            shown = tr(self.lang, "users_more", names=shown, more=total - len(names))
        message = tr(self.lang, "users", total=total, names=shown)
        return self._line(self._stamp(wall), "--", message, tag_styled=s.sgr("--", *st.NOTICE))

    def plain(self, key: str, **args: object) -> str:
        """A catalog message for the shell (prompts, errors), unstyled."""
        return tr(self.lang, key, **args)
