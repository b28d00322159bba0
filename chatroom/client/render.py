"""What the screen shows for each session output: lines of text, styled, wrapped.

Layout, one event per line (WeeChat-like, so texts line up)::

    12:01      alice │ hello everyone
    12:01        --> │ bob joined
    12:02          * │ alice waves
    12:03         -- │ connection lost — retrying…

The name column is right-aligned by display width (CJK names take two columns
a character) and a long text wraps under itself. Replayed history is dimmed.
A line from a room other than the current one starts with the room's name
(``[#dev] hi``); a direct message has an arrow in the name column, ``→ bob``
for ours to bob and ``bob →`` for bob's to us, and its own colour::

    12:04        bob │ [#dev] the build is green
    12:05      bob → │ lunch?
    12:05      → bob │ sure

One of our messages that waits (the connection is lost, or no answer came for
a second) is shown at once, dimmed and marked ``… sending``; once stored it is
shown again where it belongs, marked ``✓ delivered`` (a message that never is
gets a ``not delivered`` notice instead)::

    12:06      alice │ are you there?  … sending
    12:06         -- │ reconnected
    12:06      alice │ are you there?  ✓ delivered

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
from chatroom.client.effects import (
    Notice,
    Output,
    ShowEvent,
    ShowPending,
    ShowPresence,
    ShowRooms,
    ShowUsers,
)
from chatroom.client.i18n import NAME_REFUSALS, reason, tr
from chatroom.client.width import display_width, pad_left, wrap
from chatroom.events import DM_PREFIX, LOBBY, Event
from chatroom.protocol import ACTION_PREFIX, Lang, presence_summary
from chatroom.sanitize import visible

#: How each kind of notice is tagged and coloured in the name column.
_NOTICE_STYLE: dict[str, tuple[str, tuple[str, ...]]] = {
    "join": ("-->", st.JOIN),
    "quit": ("<--", st.LEAVE),
    "timeout": ("<--", st.TIMEOUT),
    "announce": ("***", st.ANNOUNCE),
}

#: Notices that report a failure (the rest are informational).
_ERRORS = frozenset(
    {
        "connection_lost",
        "failover",
        "no_answer_next",
        "gave_up",
        "too_long",
        "control_chars",
        "undelivered",
        "undelivered_line",
        "dm_offline",
        "dm_classic",
        "dm_self",
        "not_member",
        "rejected",
        "bad_room",
        "bad_name",
    }
)
#: Notices that quote one of our messages: shortened to a line.
_QUOTING = frozenset({"gave_up", "dm_offline", "dm_classic", "not_member", "rejected"})
#: Notices that carry a code from the server (``code``): the field its wording
#: fills, and which codes they are (i18n.reason's ``kind``).
_CODED: dict[str, tuple[str, str]] = {
    "server_error": ("text", "err"),
    "rejoin_refused": ("text", "refused"),
    "rejected": ("reason", "rejected"),
}
#: The arrow of a direct message.
ARROW = "→"

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
            case ShowEvent(
                event=ev, history=history, own=own, elsewhere=elsewhere, delivered=delivered
            ):
                mark = tr(self.lang, "delivered") if delivered else ""
                lines = self.event(ev, history=history, own=own, elsewhere=elsewhere, mark=mark)
                return self.day_line(ev.created_at, wall) + lines
            case ShowPresence(summary=s, room=room, history=history, elsewhere=elsewhere):
                lines = []
                for kind, who in presence_summary(self.lang, s.joined, s.left, s.names):
                    ev = Event(s.last, kind, who, "", s.ts, room=room)
                    lines += self.event(ev, history=history, elsewhere=elsewhere)
                return self.day_line(s.ts, wall) + lines
            case ShowPending(name=name, text=text, room=room, elsewhere=elsewhere):
                ev = Event(0, "message", name, text, wall, room=room)
                mark = tr(self.lang, "pending")
                lines = self.event(ev, own=True, elsewhere=elsewhere, mark=mark, pending=True)
                return self.day_line(wall, wall) + lines
            case Notice(key=key, args=args):
                return self.notice(key, args, wall)
            case ShowUsers(total=total, names=names, room=room):
                return self.users(total, names, wall, room=room)
            case ShowRooms(total=total, rooms=rooms):
                return self.rooms(total, rooms, wall)
        return []

    def prompt(self, room: str | None, name: str) -> str:
        """The input prompt: the current room (our name when in none)."""
        return f"{visible(room if room is not None else name)}> "

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
        label: str = "",
        mark: str = "",
    ) -> list[str]:
        """One event or notice: time, tag (right-aligned), text wrapped under
        itself. ``label`` starts the text in its own style (the room's name);
        ``mark`` ends it, dimmed (a message's delivery state)."""
        s = self.style
        head_plain = f"{stamp} {pad_left(tag, NAME_COLUMNS)} │ "
        indent = " " * (display_width(head_plain) - 2) + "│ "
        columns = self.columns()
        room = columns - 1 - display_width(head_plain) if columns > 0 else 0
        full = label + text
        parts = wrap(full, room) if room >= MIN_TEXT_COLUMNS else [full]
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
        first = parts[0]
        if label and first.startswith(label.rstrip()):
            cut = len(label.rstrip())
            first_out = s.sgr(first[:cut], *extra, *st.ROOM) + s.sgr(
                first[cut:], *extra, *text_codes
            )
        else:
            first_out = s.sgr(first, *extra, *text_codes)
        lines = [head + first_out]
        lines += [s.sgr(indent, *st.TIME) + s.sgr(p, *extra, *text_codes) for p in parts[1:]]
        if mark:
            last = display_width(head_plain) + display_width(parts[-1])
            if room < MIN_TEXT_COLUMNS or last + 2 + display_width(mark) <= columns - 1:
                lines[-1] += "  " + s.sgr(mark, *st.HISTORY)
            else:  # no room left on the last row: a row of its own
                lines.append(s.sgr(indent, *st.TIME) + s.sgr(mark, *st.HISTORY))
        return lines

    def event(
        self,
        ev: Event,
        *,
        history: bool = False,
        own: bool = False,
        elsewhere: bool = False,
        mark: str = "",
        pending: bool = False,
    ) -> list[str]:
        """One event's lines. ``mark`` ends a message (delivered, pending);
        ``pending``: one of ours not stored yet, dimmed like history."""
        s = self.style
        stamp = self._stamp(ev.created_at)
        name = visible(ev.name)
        text = visible(ev.text)
        dim = history or pending
        direct = ev.room.startswith(DM_PREFIX)
        if direct and ev.kind == "message":
            return self._direct(ev, stamp, name, text, own=own, dim=dim, mark=mark)
        label = f"[{visible(ev.room)}] " if elsewhere or direct else ""
        match ev.kind:
            case "message" if text.startswith(ACTION_PREFIX):
                body = tr(self.lang, "action", name=name, text=text.removeprefix(ACTION_PREFIX))
                codes: tuple[str, ...] = ("1",) if own else ()
                return self._line(
                    stamp, "", body, dim=dim, text_codes=codes, label=label, mark=mark
                )
            case "message":
                styled = s.name(ev.name, name, own=own, dim=dim)
                return self._line(
                    stamp, name, text, tag_styled=styled, dim=dim, label=label, mark=mark
                )
            case "join" | "quit" | "timeout" | "announce":
                tag, codes = _NOTICE_STYLE[ev.kind]
                body = tr(self.lang, ev.kind, name=name, text=text)
                return self._line(
                    stamp,
                    tag,
                    body,
                    tag_styled=s.sgr(tag, *codes),
                    text_codes=codes,
                    dim=dim,
                    label=label,
                )
        return []

    def _direct(
        self, ev: Event, stamp: str, name: str, text: str, *, own: bool, dim: bool, mark: str = ""
    ) -> list[str]:
        """A direct message: ``→ peer`` (ours) or ``name →`` (theirs), its colour."""
        s = self.style
        if own:
            peer_raw = ev.room[len(DM_PREFIX) :]
            peer = visible(peer_raw)
            tag = f"{ARROW} {peer}"
            styled = s.sgr(ARROW, *st.DIRECT) + " " + s.name(peer_raw, peer, dim=dim)
        else:
            tag = f"{name} {ARROW}"
            styled = s.name(ev.name, name, dim=dim) + " " + s.sgr(ARROW, *st.DIRECT)
        if text.startswith(ACTION_PREFIX):
            text = tr(self.lang, "action", name=name, text=text.removeprefix(ACTION_PREFIX))
        return self._line(
            stamp, tag, text, tag_styled=styled, text_codes=st.DIRECT, dim=dim, mark=mark
        )

    def notice(self, key: str, args: dict[str, str | int], wall: float) -> list[str]:
        safe = {k: visible(v) if isinstance(v, str) else v for k, v in args.items()}
        if key in _CODED and "code" in args:
            field, kind = _CODED[key]
            safe[field] = reason(self.lang, kind, str(args["code"]), str(safe.get(field, "")))
        if key == "history_header":
            self._day = None  # the batch that follows starts with its own date
        if key == "usage":
            key = f"usage:{safe.get('command', '')}"
        if key in _QUOTING and isinstance(safe.get("text"), str):
            text = str(safe["text"])
            safe["text"] = text if len(text) <= 60 else text[:59] + "…"
        message = tr(self.lang, key, **safe)
        codes = st.ERROR if key in _ERRORS else st.NOTICE
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

    def users(
        self, total: int, names: tuple[str, ...], wall: float, *, room: str = ""
    ) -> list[str]:
        """/who's answer: who is in ``room`` (its name, always shown)."""
        s = self.style
        shown = ", ".join(visible(n) for n in names)  # plain: the line may wrap
        if total > len(names):
            shown = tr(self.lang, "users_more", names=shown, more=total - len(names))
        message = tr(self.lang, "users_in", room=visible(room or LOBBY), total=total, names=shown)
        return self._line(self._stamp(wall), "--", message, tag_styled=s.sgr("--", *st.NOTICE))

    def rooms(self, total: int, rooms: tuple[tuple[str, int], ...], wall: float) -> list[str]:
        """/rooms' answer: each room with how many are in it."""
        s = self.style
        shown = ", ".join(f"{visible(r)} ({n})" for r, n in rooms)
        if total > len(rooms):
            shown = tr(self.lang, "rooms_more", rooms=shown, more=total - len(rooms))
        message = tr(self.lang, "rooms", total=total, rooms=shown)
        return self._line(self._stamp(wall), "--", message, tag_styled=s.sgr("--", *st.NOTICE))

    def plain(self, key: str, **args: object) -> str:
        """A catalog message for the shell (prompts, errors), unstyled."""
        return tr(self.lang, key, **args)

    def refused(self, code: str, text: str) -> str:
        """A login refusal (``REFUSED code text``) in the client's language; the
        server's ``text`` only for a code this client does not know."""
        key = "refused" if code in NAME_REFUSALS else "login_refused"
        return tr(self.lang, key, text=reason(self.lang, "refused", code, visible(text)))
