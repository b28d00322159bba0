"""The client side of the v2 dialect as a state machine: no sockets, no clock reads.

Inputs: a datagram from the server (``receive``), a line the user typed
(``typed``), and the passage of time (``tick``). Each returns a list of outputs
(chatroom/client/effects.py): datagrams to send and things to display. The shell
calls ``tick`` no later than ``deadline()``. Randomness (login nonces, heartbeat
jitter) comes from the injected ``random.Random``.

What it does, in the order a session lives it:

* login: ``LOGIN nonce name resume cookie``, retried with the same nonce (so a
  lost WELCOME is answered again, not turned into a second session) with
  backoff. The server first answers ``COOKIE`` (proof that we receive at our
  address); the LOGIN is then repeated with it. The first login gives up with
  ``NoAnswer`` after ``first_login_timeout``.
* history: after WELCOME, the last ``history`` events before our join are pulled
  page by page (the server answers at most 32 per PULL) and shown dimmed.
* live events: every event reaches every session; ``EventStream`` releases them
  in id order exactly once, and pulls holes. Acks are cumulative (every
  ``ack_every`` events or ``ack_delay`` after the first unacked one).
* messages: ``SAY sid seq text`` through chatroom/client/outbox.py (window,
  pacing to the server's rate limit, RFC 6298 retransmission until ACKED,
  abandoned with a notice after ``give_up_after``). They are displayed when
  their EV arrives, like everyone's.
* liveness: PING every ~idle_timeout/3 (jittered, 15-20 s for 60 s); a PONG with
  a newer id pulls the lost tail. Any request unanswered for ``probe_after``
  starts probing with PINGs; after ``lost_after`` the user sees "connection
  lost"; the first answer brings "reconnected".
* ``ERR nosession`` (server restarted or evicted us): log in again with
  ``resume`` = the old sid and carry on from the last event shown; unacked
  messages are resent with their old seq, so the server stores each once.
* quit: wait up to ``flush_timeout`` for unacked messages, then BYE (retried
  until the server's BYE or ``bye_timeout``), then ``Finished``.
"""

from __future__ import annotations

import random
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
    OnlineChanged,
    Output,
    ShowEvent,
    ShowUsers,
    Transmit,
)
from chatroom.client.outbox import Outbox, Outgoing, Pacer
from chatroom.client.stream import EventStream, PullRequest, Scrollback
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
    ack_every: int = 8
    ack_delay: float = 0.2
    gap_delay: float = 0.1
    probe_after: float = 1.0
    probe_max: float = 2.0
    lost_after: float = 4.0
    give_up_after: float = 60.0
    window: int = 1
    flush_timeout: float = 1.5
    bye_timeout: float = 1.0
    bye_interval: float = 0.25
    nosession_grace: float = 1.0


@dataclass(slots=True)
class _Login:
    nonce: str
    resume: str | None
    cookie: str | None
    started: float
    retry_at: float
    rto: float


@dataclass(slots=True)
class ClientSession:
    name: str
    rng: random.Random
    config: SessionConfig = field(default_factory=SessionConfig)
    state: State = State.IDLE
    sid: str = ""
    idle_timeout: float = 60.0
    history_upto: int = 0
    stream: EventStream | None = None
    scrollback: Scrollback | None = None
    online: set[str] = field(default_factory=set)
    outbox: Outbox = field(default_factory=Outbox)
    own_ids: set[int] = field(default_factory=set)
    lost: bool = False
    _login: _Login | None = None

    def __post_init__(self) -> None:
        self.outbox.window = self.config.window
        self.outbox.give_up_after = self.config.give_up_after
    _stash: list[Event] = field(default_factory=list)
    _welcomed_at: float = 0.0
    _acked: int = 0
    _ack_due: float | None = None
    _next_ping: float = 0.0
    _ping_sent: float | None = None
    _awaiting: float | None = None
    _next_probe: float | None = None
    _probe_gap: float = 0.0
    _who_wanted: int = 0
    _close_phase: str = ""
    _close_deadline: float = 0.0
    _bye_at: float = 0.0

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
        """Leave: flush unacked messages briefly, say BYE, then ``Finished``."""
        if self.state in (State.CLOSING, State.DONE):
            return []
        if self.state != State.LIVE:
            return self._finish()
        self.state = State.CLOSING
        if self.outbox:
            self._close_phase = "flush"
            self._close_deadline = now + self.config.flush_timeout
            return []
        return self._start_bye(now)

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
        if self.state == State.LOGIN:
            if isinstance(frame, p.EventFrame) and len(self._stash) < 256:
                self._stash.append(frame.event)  # overtook the WELCOME
            return []
        out = self._heard(now)
        match frame:
            case p.EventFrame(event=ev):
                out += self._on_event(ev, now)
            case p.Acked(seq=seq, id=id_):
                out += self._on_acked(seq, id_, now)
            case p.Pong(last_id=last):
                if self._ping_sent is not None:
                    self.outbox.rtt.sample(now - self._ping_sent)
                    self._ping_sent = None
                self._learn_high(last, now)
            case p.Users(total=total, names=names):
                out += self._on_users(total, names)
            case p.Gone(oldest=oldest):
                out += self._on_gone(oldest)
            case p.Goodbye():
                if self.state == State.CLOSING:
                    return out + self._finish()
            case p.Error(code="slowdown"):
                pass  # over the rate limit: not acked, so it is simply retried
            case p.Error(code=code, text=text):
                out.append(Notice("server_error", {"code": code, "text": text}))
        return out + self._pump(now)

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
        """The latest time ``tick`` must be called."""
        times: list[float] = []
        if self.state in (State.LOGIN, State.RELOGIN) and self._login is not None:
            times.append(self._login.retry_at)
            if self.state == State.LOGIN:
                times.append(self._login.started + self.config.first_login_timeout)
        if self.state in (State.LIVE, State.CLOSING) and (t := self.outbox.deadline()):
            times.append(t)
        if self.state == State.LIVE:
            times.append(self._next_ping)
            for t in (
                self._ack_due,
                self._next_probe,
                self.stream.deadline() if self.stream else None,
                self.scrollback.deadline() if self.scrollback else None,
            ):
                if t is not None:
                    times.append(t)
        if self.state == State.CLOSING:
            times.append(self._close_deadline)
            if self._close_phase == "bye":
                times.append(self._bye_at)
        if self._awaiting is not None and not self.lost:
            times.append(self._awaiting + self.config.lost_after)
        return min(times) if times else None

    def max_text_bytes(self) -> int:
        """The longest message text (UTF-8 bytes) whose SAY fits in a datagram."""
        frame = p.encode_client(p.Say(self.sid or "0" * 32, _SEQ_WIDTH, ""))
        return p.MAX_DATAGRAM - len(frame)

    # ------------------------------------------------------------------ login

    def _send_login(self, now: float, *, resume: str | None) -> list[Output]:
        nonce = f"{self.rng.getrandbits(64):016x}"
        rto = self.config.login_rto
        self._login = _Login(nonce, resume, None, now, now + rto, rto)
        self._expect(now)
        return [self._login_frame()]

    def _login_frame(self) -> Transmit:
        assert self._login is not None
        lg = self._login
        login = p.Login(lg.nonce, self.name, lg.resume, lg.cookie)
        return Transmit(p.encode_client(login))

    def _login_retry(self, now: float) -> list[Output]:
        lg = self._login
        if lg is None or now < lg.retry_at:
            return []
        lg.rto = min(lg.rto * 2, self.config.login_rto_max)
        lg.retry_at = now + lg.rto
        self._expect(now)
        return [self._login_frame()]

    def _on_cookie(self, ck: p.Cookie, now: float) -> list[Output]:
        lg = self._login
        if lg is None or ck.nonce != lg.nonce or ck.cookie == lg.cookie:
            return []
        self._heard(now)
        lg.cookie = ck.cookie
        lg.rto = self.config.login_rto
        lg.retry_at = now + lg.rto
        self._expect(now)
        return [self._login_frame()]

    def _on_welcome(self, w: p.Welcome, now: float) -> list[Output]:
        if self._login is None or w.nonce != self._login.nonce:
            return []  # an answer to an older attempt, or a duplicate
        first = self.state == State.LOGIN
        self._login = None
        self.sid = w.sid
        self.idle_timeout = w.idle_timeout
        self.state = State.LIVE
        self._welcomed_at = now
        self.outbox.pacer = Pacer.from_rate(w.rate, now)
        out: list[Output] = []
        if first or self.stream is None:
            self.history_upto = w.last_id
            start = max(0, w.last_id - max(0, self.config.history))
            self.stream = EventStream(start, start, self.config.gap_delay)
            self.scrollback = Scrollback(start + 1)
            self._acked = start
            out.append(LoggedIn(self.name, self.sid))
        else:
            if w.last_id < self.stream.delivered:
                self.stream.rebase(w.last_id)
                self._acked = w.last_id
                out.append(Notice("server_reset"))
            out.append(Notice("reconnected"))
            self.lost = False
            self.outbox.resend_now(now)  # same seq: stored once
        self.stream.learn_high(w.last_id, now, immediate=True)
        self._heard(now)
        self._schedule_ping(now)
        stash, self._stash = self._stash, []
        for ev in stash:
            out += self._on_event(ev, now)
        out += self._who(now, show=False)  # seeds tab completion
        return out + self._live_timers(now)

    def _on_refused(self, r: p.Refused, now: float) -> list[Output]:
        if self._login is None or r.nonce != self._login.nonce:
            return []
        self._heard(now)
        if self.state == State.LOGIN:
            self.state = State.IDLE
            self._login = None
            return [LoginRefused(r.code, r.text)]
        # Logging in again after a server restart and someone holds our name now:
        # keep trying (they may leave) but say so.
        self._login.retry_at = now + self.config.login_rto_max
        self._login.nonce = f"{self.rng.getrandbits(64):016x}"
        self._login.cookie = None
        return [Notice("rejoin_refused", {"name": self.name, "text": r.text})]

    def _on_nosession(self, now: float) -> list[Output]:
        if self.state == State.CLOSING:
            return self._finish()  # nothing left to say goodbye to
        if self.state != State.LIVE or now < self._welcomed_at + self.config.nosession_grace:
            return []  # an answer to a frame sent before our (re)login was processed
        self.state = State.RELOGIN
        self._ack_due = None
        return self._send_login(now, resume=self.sid)

    # ------------------------------------------------------------------ events

    def _on_event(self, ev: Event, now: float) -> list[Output]:
        assert self.stream is not None and self.scrollback is not None
        out: list[Output] = []
        if ev.id > self.stream.delivered:
            for e in self.stream.receive(ev, now):
                out += self._show(e)
            self._ack_after_delivery(now, out)
        elif self.scrollback.wants(ev):
            batch = self.scrollback.add(ev)
            if batch is not None:
                out += self._show_scrollback(batch)
        return out

    def _show(self, ev: Event) -> list[Output]:
        history = ev.id <= self.history_upto
        own = ev.id in self.own_ids or (not history and ev.name == self.name)
        # Our message's EV overtook (or outlived) its ACKED: that is an ack too.
        if (
            own
            and ev.kind == "message"
            and ev.id not in self.own_ids
            and self.outbox.stored_as_event(ev.text)
        ):
            self.own_ids.add(ev.id)
        out: list[Output] = [ShowEvent(ev, history=history, own=own and ev.kind == "message")]
        if not history and ev.kind in ("join", "quit", "timeout"):
            before = set(self.online)
            if ev.kind == "join":
                self.online.add(ev.name)
            else:
                self.online.discard(ev.name)
            if self.online != before:
                out.append(OnlineChanged(tuple(sorted(self.online))))
        return out

    def _show_scrollback(self, batch: list[Event]) -> list[Output]:
        out: list[Output] = [Notice("history_header", {"count": len(batch)})]
        out += [ShowEvent(e, history=True, own=e.id in self.own_ids) for e in batch]
        return out

    def _ack_after_delivery(self, now: float, out: list[Output]) -> None:
        assert self.stream is not None
        if self.stream.delivered <= self._acked:
            return
        if self.stream.delivered - self._acked >= self.config.ack_every:
            out += self._send_ack()
        elif self._ack_due is None:
            self._ack_due = now + self.config.ack_delay

    def _send_ack(self) -> list[Output]:
        assert self.stream is not None
        self._acked = self.stream.delivered
        self._ack_due = None
        return [Transmit(p.encode_client(p.Ack(self.sid, self._acked)))]

    def _learn_high(self, last_id: int, now: float) -> None:
        if self.stream is not None:
            self.stream.learn_high(last_id, now)

    def _on_gone(self, oldest: int) -> list[Output]:
        assert self.stream is not None and self.scrollback is not None
        out: list[Output] = []
        skipped, ready = self.stream.skip_to(oldest)
        if skipped is not None:
            if self.scrollback.oldest_shown > skipped[0]:
                self.scrollback.oldest_shown = skipped[1] + 1
            if skipped[1] > self.history_upto:
                out.append(Notice("unavailable", {"first": skipped[0], "last": skipped[1]}))
        for e in ready:
            out += self._show(e)
        batch = self.scrollback.skip_to(oldest)
        if batch is not None:
            out += self._show_scrollback(batch) if batch else [Notice("no_earlier")]
        return out

    def _on_users(self, total: int, names: tuple[str, ...]) -> list[Output]:
        out: list[Output] = []
        if self._who_wanted > 0:
            self._who_wanted -= 1
            out.append(ShowUsers(total, names))
        if set(names) != self.online and total == len(names):
            self.online = set(names)
            out.append(OnlineChanged(tuple(sorted(self.online))))
        return out

    # ------------------------------------------------------------------ commands

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
        self._expect(now)
        return Transmit(p.encode_client(p.Say(self.sid, o.seq, o.text)))

    def _on_acked(self, seq: int, id_: int, now: float) -> list[Output]:
        if not self.outbox.acked(seq, now):
            return []  # a duplicate answer
        self.own_ids.add(id_)
        self._learn_high(id_, now)
        if self.state == State.CLOSING and not self.outbox and self._close_phase == "flush":
            return self._start_bye(now)
        return []

    def _who(self, now: float, *, show: bool) -> list[Output]:
        if self.state != State.LIVE:
            return [Notice("not_connected")] if show else []
        if show:
            self._who_wanted += 1
            self._expect(now)
        return [Transmit(p.encode_client(p.Who(self.sid)))]

    def _more_history(self, count: int, now: float) -> list[Output]:
        if self.state != State.LIVE or self.scrollback is None:
            return [Notice("not_connected")]
        if self.scrollback.active:
            return [Notice("history_busy")]
        if not self.scrollback.request(count):
            return [Notice("no_earlier")]
        return self._live_timers(now)

    # ------------------------------------------------------------------ timers

    def _live_timers(self, now: float) -> list[Output]:
        assert self.stream is not None and self.scrollback is not None
        out = self._pump(now)
        rto = self.outbox.rtt.rto
        for req in (self.stream.pull_due(now, rto), self.scrollback.pull_due(now, rto)):
            if req is not None:
                out.append(self._pull(req, now))
        if self._ack_due is not None and now >= self._ack_due:
            out += self._send_ack()
        if now >= self._next_ping:
            out.append(self._ping(now))
            self._schedule_ping(now)
        if self._next_probe is not None and now >= self._next_probe:
            out.append(self._ping(now, probe=True))
            self._probe_gap = min(self._probe_gap * 2, self.config.probe_max)
            self._next_probe = now + self._probe_gap
        return out + self._check_lost(now)

    def _closing_timers(self, now: float) -> list[Output]:
        out = self._pump(now)
        if self._close_phase == "flush":
            if now >= self._close_deadline:
                out += self._start_bye(now)
        elif now >= self._close_deadline:
            out += self._finish()
        elif now >= self._bye_at:
            self._bye_at = now + self.config.bye_interval
            out.append(Transmit(p.encode_client(p.Bye(self.sid))))
        return out

    def _pull(self, req: PullRequest, now: float) -> Transmit:
        self._expect(now)
        return Transmit(p.encode_client(p.Pull(self.sid, req.after, req.limit)))

    def _ping(self, now: float, *, probe: bool = False) -> Transmit:
        assert self.stream is not None
        self._ping_sent = now if self._ping_sent is None and not probe else None
        self._expect(now)
        return Transmit(p.encode_client(p.Ping(self.sid, self.stream.delivered)))

    def _schedule_ping(self, now: float) -> None:
        # About a third of the idle timeout, jittered down to a quarter (15-20 s for 60 s).
        fraction = 0.25 + self.rng.random() * (1 / 3 - 0.25)
        self._next_ping = now + self.idle_timeout * fraction

    def _expect(self, now: float) -> None:
        """We sent something that calls for an answer."""
        if self._awaiting is None:
            self._awaiting = now
            self._probe_gap = self.config.probe_after
            self._next_probe = now + self.config.probe_after

    def _heard(self, now: float) -> list[Output]:
        """Any valid frame from the server: the path works."""
        self._awaiting = None
        self._next_probe = None
        if not self.lost or self.state != State.LIVE:
            return []
        self.lost = False
        self.outbox.resend_now(now)
        out = self._pump(now)
        if self.stream is not None:
            self.stream.retry_now(now)
        if self.scrollback is not None:
            self.scrollback.retry_now(now)
        return [Notice("reconnected"), *out]

    def _check_lost(self, now: float) -> list[Output]:
        if self.lost or self._awaiting is None or now < self._awaiting + self.config.lost_after:
            return []
        self.lost = True
        return [Notice("connection_lost")]

    def _start_bye(self, now: float) -> list[Output]:
        self._close_phase = "bye"
        self._close_deadline = now + self.config.bye_timeout
        self._bye_at = now + self.config.bye_interval
        return [Transmit(p.encode_client(p.Bye(self.sid)))]

    def _finish(self) -> list[Output]:
        out: list[Output] = []
        if self.outbox:
            out.append(Notice("undelivered", {"count": len(self.outbox.drain())}))
        self.state = State.DONE
        return [*out, Finished()]
