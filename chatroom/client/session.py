"""The client side of the v2 dialect as a state machine: no sockets, no clock reads.

Inputs: a datagram from the server (``receive``), a line the user typed
(``typed``), and the passage of time (``tick``, due by ``deadline()``). Each
returns outputs (chatroom/client/effects.py): datagrams to send and things to
show. Randomness (nonces, heartbeat jitter) comes from the injected
``random.Random``. The parts: ``login`` (one attempt, cookie, retries),
``stream`` (event order, gaps, pulls, /history), ``outbox`` (messages in
flight), ``liveness`` (heartbeats, probes, connection lost).

A session's life: login (the first one gives up with ``NoAnswer`` after
``first_login_timeout``); history pulled page by page and shown dimmed; live
events shown once each in id order, acked cumulatively; messages sent with a
sequence number and retried until ACKED, shown when their event comes back;
``ERR nosession`` (the server restarted or evicted us) -> log in again with
``resume`` = our sid and carry on from the last event shown, resending
unacked messages under their old seq so that each is stored once; quit ->
wait briefly until our messages are stored and shown and the history replay is
shown, BYE, ``Finished``. docs/client.md has the details.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from chatroom import protocol as p
from chatroom.client import commands as c
from chatroom.client.effects import (
    Finished,
    LoggedIn,
    LoginRefused,
    NoAnswer,
    Notice,
    Output,
    ShowEvent,
    Transmit,
)
from chatroom.client.liveness import Liveness
from chatroom.client.login import LoginAttempt
from chatroom.client.outbox import Outbox, Outgoing, Pacer
from chatroom.client.stream import PullRequest
from chatroom.client.timeline import Timeline
from chatroom.events import Event

#: Seq digits assumed when checking a message's size: the limit never moves
#: under the user's feet as the sequence number grows.
_SEQ_WIDTH: Final = 10**17


class State(Enum):
    IDLE = "idle"  # before login() or after a refused first login
    LOGIN = "login"  # first login in progress
    LIVE = "live"
    RELOGIN = "relogin"  # the server forgot us: logging in again with resume
    CLOSING = "closing"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class SessionConfig:
    history: int = 20
    login_rto: float = 0.5
    login_rto_max: float = 2.0
    first_login_timeout: float = 3.0
    ack_every: int = 16
    ack_delay: float = 0.2
    gap_delay: float = 0.1
    probe_after: float = 1.0
    probe_max: float = 2.0
    lost_after: float = 4.0
    give_up_after: float = 60.0
    #: Messages in flight: 1 keeps the typed order even under loss.
    window: int = 1
    flush_timeout: float = 1.5
    #: Quitting: renew flush_timeout while messages are stored and shown (piped
    #: input, whose every line should go out; a person leaving wants to leave).
    flush_while_progress: bool = False
    bye_timeout: float = 1.0
    bye_interval: float = 0.25
    nosession_grace: float = 1.0
    #: After a live announcement (how the server says it is shutting down), the
    #: next heartbeat is due this soon: an idle client notices the server gone
    #: in ~5 s rather than at its next heartbeat, 15-20 s away.
    announce_check: float = 1.0


@dataclass(slots=True)
class ClientSession:
    name: str
    rng: random.Random
    config: SessionConfig = field(default_factory=SessionConfig)
    state: State = State.IDLE
    sid: str = ""
    idle_timeout: float = 60.0
    view: Timeline | None = None
    outbox: Outbox = field(default_factory=Outbox)
    live: Liveness = field(default_factory=Liveness)
    _login: LoginAttempt | None = None
    _stash: list[Event] = field(default_factory=list)
    _welcomed_at: float = 0.0
    _close_phase: str = ""
    _close_deadline: float = 0.0
    _bye_at: float = 0.0
    _flush_left: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        cfg = self.config
        self.outbox.window, self.outbox.give_up_after = cfg.window, cfg.give_up_after
        self.live = Liveness(cfg.probe_after, cfg.probe_max, cfg.lost_after)

    @property
    def lost(self) -> bool:
        """The user has been told the connection is lost (and not yet that it is back)."""
        return self.live.lost

    # ------------------------------------------------------------------ inputs

    def login(self, name: str, now: float) -> list[Output]:
        """Start (or restart, after a refusal) the first login as ``name``."""
        self.name = name
        self.state = State.LOGIN
        return self._send_login(now, resume=None)

    def typed(self, line: str, now: float) -> list[Output]:
        """A line the user entered."""
        match c.parse_line(line):
            case None:
                return []
            case c.Message(text=text):
                return self._say(text, now)
            case c.Help():
                return [Notice("help")]
            case c.WhoCmd():
                return self._who(now, show=True)
            case c.HistoryCmd(count=n):
                return self._more_history(n, now)
            case c.QuitCmd():
                return self.quit(now)
            case c.Usage(command=cmd):
                return [Notice("usage", {"command": cmd})]
            case c.Unknown(command=cmd):
                return [Notice("unknown_command", {"command": cmd})]
        return []  # pragma: no cover - exhaustive match

    def quit(self, now: float) -> list[Output]:
        """Leave: wait briefly until our messages are stored and shown and the
        history replay is shown (``flush_timeout``, renewed while that makes
        progress with ``flush_while_progress``), say BYE, then ``Finished``."""
        if self.state in (State.CLOSING, State.DONE):
            return []
        if self.state != State.LIVE:
            return self._finish()
        self.state = State.CLOSING
        self._close_phase = "flush"
        self._close_deadline = now + self.config.flush_timeout
        self._flush_left = self._unflushed()
        return self._flush_step(now)

    def receive(self, data: bytes, now: float) -> list[Output]:
        """One datagram from the server."""
        frame = p.parse_server(data)
        if isinstance(frame, p.BadFrame) or self.state in (State.IDLE, State.DONE):
            return []
        match frame:
            case p.Welcome():
                return self._on_welcome(frame, now)
            case p.Refused():
                return self._on_refused(frame, now)
            case p.Cookie():
                return self._on_cookie(frame, now)
            case p.Error(code="nosession"):
                return self._on_nosession(now)
        view = self.view
        if self.state == State.LOGIN or view is None:
            if isinstance(frame, p.EventFrame) and len(self._stash) < 256:
                self._stash.append(frame.event)  # overtook the WELCOME
            return []
        out = self._heard(now)
        match frame:
            case p.EventFrame(event=ev):
                shown = view.event(ev, now, self.outbox.stored_as_event)
                if any(_live_announcement(o) for o in shown):
                    self.live.check_soon(now + self.config.announce_check)
                out += shown
            case p.Acked(seq=seq, id=id_, ts=ts):
                out += self._on_acked(seq, id_, ts, now)
            case p.Pong(last_id=last):
                if (rtt := self.live.pong(now)) is not None:
                    self.outbox.rtt.sample(rtt)
                view.stream.learn_high(last, now)
            case p.Users(total=total, names=names):
                out += view.users(total, names)
            case p.Gone(oldest=oldest):
                out += view.gone(oldest, self.outbox.stored_as_event)
            case p.Goodbye():
                if self.state == State.CLOSING:
                    return out + self._finish()
            case p.Error(code="slowdown"):
                pass  # over the rate limit: not acked, so it is simply retried
            case p.Error(code=code, text=text):
                out.append(Notice("server_error", {"code": code, "text": text}))
        out += self._ack(now) + self._pump(now)
        if self.state == State.CLOSING and self._close_phase == "flush":
            out += self._flush_step(now)
        return out

    def tick(self, now: float) -> list[Output]:
        """Let time pass: retransmissions, pulls, acks, heartbeats, give-ups."""
        match self.state:
            case State.LOGIN:
                assert self._login is not None
                if now >= self._login.started + self.config.first_login_timeout:
                    self.state = State.IDLE
                    self._login = None
                    return [NoAnswer()]
                return self._login_retry(now)
            case State.RELOGIN:
                return self._login_retry(now) + self._check_lost(now)
            case State.LIVE:
                return self._live_timers(now)
            case State.CLOSING:
                return self._closing_timers(now)
        return []

    def deadline(self) -> float | None:
        """The latest time ``tick`` must be called (None: nothing to wait for)."""
        if self.state in (State.IDLE, State.DONE):
            return None  # tick does nothing here: a deadline would be a busy loop
        times: list[float] = []
        if self.state in (State.LOGIN, State.RELOGIN) and self._login is not None:
            times.append(self._login.retry_at)
            if self.state == State.LOGIN:
                times.append(self._login.started + self.config.first_login_timeout)
        if self.state in (State.LIVE, State.CLOSING) and (t := self.outbox.deadline()):
            times.append(t)
        if self.state in (State.LIVE, State.RELOGIN):  # where tick checks the path
            times += self.live.deadlines(live=self.state == State.LIVE)
        flushing = self.state == State.CLOSING and self._close_phase == "flush"
        if (self.state == State.LIVE or flushing) and self.view is not None:
            times += self.view.deadlines()
        if self.state == State.CLOSING:
            times.append(self._close_deadline)
            if self._close_phase == "bye":
                times.append(self._bye_at)
        return min(times) if times else None

    def max_text_bytes(self) -> int:
        """The longest message text (UTF-8 bytes): the server's limit, which also
        keeps every SAY and every EV frame within one datagram."""
        frame = p.encode_client(p.Say(self.sid or "0" * 32, _SEQ_WIDTH, ""))
        return min(p.MAX_TEXT, p.MAX_DATAGRAM - len(frame))

    # ------------------------------------------------------------------ login

    def _send_login(self, now: float, *, resume: str | None) -> list[Output]:
        cfg = self.config
        self._login = LoginAttempt.start(
            self.name, self.rng, now, resume=resume, rto=cfg.login_rto, rto_max=cfg.login_rto_max
        )
        self.live.expect(now)
        return [Transmit(self._login.frame())]

    def _login_retry(self, now: float) -> list[Output]:
        if self._login is None or not self._login.retry_due(now):
            return []
        self.live.expect(now)
        return [Transmit(self._login.frame())]

    def _on_cookie(self, ck: p.Cookie, now: float) -> list[Output]:
        login = self._login
        if login is None:
            return []
        # A COOKIE answers the first LOGIN only while none came before it.
        sample = login.rtt_sample(now) if login.cookie is None else None
        if not login.take_cookie(ck, now, self.config.login_rto):
            return []
        if sample is not None:
            self.outbox.rtt.sample(sample)
        self.live.heard(ends_outage=False)
        self.live.expect(now)
        return [Transmit(login.frame())]

    def _on_welcome(self, w: p.Welcome, now: float) -> list[Output]:
        if self._login is None or w.nonce != self._login.nonce:
            return []  # an answer to an older attempt, or a duplicate
        if (sample := self._login.rtt_sample(now)) is not None:
            self.outbox.rtt.sample(sample)
        self._login = None
        self.sid = w.sid
        self.idle_timeout = w.idle_timeout
        self.state = State.LIVE
        self._welcomed_at = now
        self.outbox.pacer = Pacer.from_rate(w.rate, now)
        out: list[Output] = []
        if self.view is None:  # the first login
            cfg = self.config
            self.view = Timeline.start(
                unicodedata.normalize("NFC", self.name),  # as the server stores it
                w.last_id,
                cfg.history,
                gap_delay=cfg.gap_delay,
                ack_every=cfg.ack_every,
                ack_delay=cfg.ack_delay,
                now=now,
            )
            out.append(LoggedIn(self.name, self.sid))
        else:  # back after ERR nosession: carry on from the last event shown
            if w.last_id < self.view.stream.delivered:
                self.view.rebase(w.last_id)
                out.append(Notice("server_reset"))
            self.view.stream.learn_high(w.last_id, now, immediate=True)
            out.append(Notice("reconnected"))
            self.live.lost = False
            self.outbox.resend_now(now)  # same seq: stored once
        self.live.heard(ends_outage=False)
        self.live.schedule_ping(now, self.idle_timeout, self.rng)
        stash, self._stash = self._stash, []
        for ev in stash:
            out += self.view.event(ev, now, self.outbox.stored_as_event)
        out += self._who(now, show=False)  # seeds tab completion
        return out + self._live_timers(now)

    def _on_refused(self, r: p.Refused, now: float) -> list[Output]:
        if self._login is None or r.nonce != self._login.nonce:
            return []
        self.live.heard(ends_outage=False)
        if self.state == State.LOGIN:
            self.state = State.IDLE
            self._login = None
            return [LoginRefused(r.code, r.text)]
        # Logging in again after a server restart and someone holds our name now:
        # keep trying (they may leave) but say so.
        self._login.start_over(self.rng, now)
        return [Notice("rejoin_refused", {"name": self.name, "text": r.text})]

    def _on_nosession(self, now: float) -> list[Output]:
        if self.state == State.CLOSING:
            return self._finish()  # nothing left to say goodbye to
        if self.state != State.LIVE or now < self._welcomed_at + self.config.nosession_grace:
            return []  # an answer to a frame sent before our (re)login was processed
        self.state = State.RELOGIN
        return self._send_login(now, resume=self.sid)

    # ------------------------------------------------------------------ messages and commands

    def _say(self, text: str, now: float) -> list[Output]:
        if self.state not in (State.LIVE, State.RELOGIN):
            return [Notice("not_connected")]
        bad = p.bad_text_char(text)
        if bad is not None:
            return [Notice("control_chars", {"char": f"U+{ord(bad):04X}"})]
        size, limit = len(text.encode("utf-8")), self.max_text_bytes()
        if size > limit:
            return [Notice("too_long", {"size": size, "limit": limit})]
        self.outbox.add(text, now)
        return self._pump(now)

    def _pump(self, now: float) -> list[Output]:
        """Send what the outbox says is due (new, retransmitted) and report give-ups."""
        if self.state not in (State.LIVE, State.CLOSING):
            return []
        send, gave_up = self.outbox.due(now)
        out: list[Output] = [Notice("gave_up", {"text": o.text}) for o in gave_up]
        out += [self._say_frame(o, now) for o in send]
        return out

    def _say_frame(self, o: Outgoing, now: float) -> Transmit:
        self.live.expect(now)
        return Transmit(p.encode_client(p.Say(self.sid, o.seq, o.text)))

    def _on_acked(self, seq: int, id_: int, ts: float | None, now: float) -> list[Output]:
        sent = self.outbox.acked(seq, now)
        if sent is None:
            return []  # a duplicate answer
        assert self.view is not None
        self.view.our_message(id_, now)
        if ts is None:
            return []  # the event comes as an EV (older server) or is pulled
        # The server's copy of our own message: it sends us no EV for it.
        ev = Event(id_, "message", self.view.name, sent.text, ts)
        return self.view.event(ev, now, self.outbox.stored_as_event)

    def _who(self, now: float, *, show: bool) -> list[Output]:
        if self.state != State.LIVE or self.view is None:
            return [Notice("not_connected")] if show else []
        if show:
            self.view.who_wanted += 1
            self.live.expect(now)
        return [Transmit(p.encode_client(p.Who(self.sid)))]

    def _more_history(self, count: int, now: float) -> list[Output]:
        if self.state != State.LIVE or self.view is None:
            return [Notice("not_connected")]
        refusal = self.view.more_history(count)
        return [refusal] if refusal is not None else self._live_timers(now)

    # ------------------------------------------------------------------ timers

    def _live_timers(self, now: float) -> list[Output]:
        assert self.view is not None
        out = self._pump(now)
        out += [self._pull(r, now) for r in self.view.pulls_due(now, self.outbox.rtt.rto)]
        out += self._ack(now)
        if now >= self.live.next_ping:
            out.append(self._ping(now, probe=False))
            self.live.schedule_ping(now, self.idle_timeout, self.rng)
        if self.live.probe_due(now):
            out.append(self._ping(now, probe=True))
        return out + self._check_lost(now)

    def _closing_timers(self, now: float) -> list[Output]:
        out = self._pump(now)
        if self._close_phase == "flush":
            assert self.view is not None
            out += [self._pull(r, now) for r in self.view.pulls_due(now, self.outbox.rtt.rto)]
            out += self._ack(now)
            out += self._flush_step(now)
        elif now >= self._close_deadline:
            out += self._finish()
        elif now >= self._bye_at:
            self._bye_at = now + self.config.bye_interval
            out.append(Transmit(p.encode_client(p.Bye(self.sid))))
        return out

    def _ack(self, now: float) -> list[Output]:
        if self.state not in (State.LIVE, State.CLOSING) or self.view is None:
            return []
        upto = self.view.ack_due(now)
        return [] if upto is None else [Transmit(p.encode_client(p.Ack(self.sid, upto)))]

    def _pull(self, req: PullRequest, now: float) -> Transmit:
        self.live.expect(now)
        return Transmit(p.encode_client(p.Pull(self.sid, req.after, req.limit)))

    def _ping(self, now: float, *, probe: bool) -> Transmit:
        assert self.view is not None
        self.live.ping_sent_at(now, probe=probe)
        return Transmit(p.encode_client(p.Ping(self.sid, self.view.stream.delivered)))

    def _heard(self, now: float) -> list[Output]:
        """Any valid frame from the server: the path works."""
        if not self.live.heard(ends_outage=self.state == State.LIVE):
            return []
        self.outbox.resend_now(now)
        out = self._pump(now)
        if self.view is not None:
            self.view.retry_now(now)
        return [Notice("reconnected"), *out]

    def _check_lost(self, now: float) -> list[Output]:
        return [Notice("connection_lost")] if self.live.became_lost(now) else []

    def _unflushed(self) -> tuple[int, int]:
        """(messages not yet stored, events not yet shown) that quitting waits for:
        ours and the history replay, not what others keep saying meanwhile."""
        view = self.view
        assert view is not None
        stream = view.stream
        wanted = min(max([view.history_upto, *view.own_ids]), stream.known_high)
        return len(self.outbox), max(0, wanted - stream.delivered)

    def _flush_step(self, now: float) -> list[Output]:
        """While quitting: BYE once nothing is left to wait for, or at the
        deadline (renewed by progress with ``flush_while_progress``)."""
        left = self._unflushed()
        if left == (0, 0) or now >= self._close_deadline:
            return self._start_bye(now)
        moved = left[0] < self._flush_left[0] or left[1] < self._flush_left[1]
        if moved and self.config.flush_while_progress:
            self._close_deadline = now + self.config.flush_timeout
        self._flush_left = left
        return []

    def _start_bye(self, now: float) -> list[Output]:
        self._close_phase = "bye"
        self._close_deadline = now + self.config.bye_timeout
        self._bye_at = now + self.config.bye_interval
        return [Transmit(p.encode_client(p.Bye(self.sid)))]

    def _finish(self) -> list[Output]:
        out: list[Output] = []
        if self.outbox:
            # Quitting does not wait out the rate limit (a person leaving wants to
            # leave), so say exactly which lines did not go: they can be sent again.
            lost = self.outbox.drain()
            out.append(Notice("undelivered", {"count": len(lost)}))
            out += [Notice("undelivered_line", {"text": o.text}) for o in lost]
        self.state = State.DONE
        return [*out, Finished()]


def _live_announcement(out: Output) -> bool:
    return isinstance(out, ShowEvent) and out.event.kind == "announce" and not out.history
