"""The client side of the v2 dialect as a state machine: no sockets, no clock reads.

Inputs: a datagram from the server (``receive``), a line the user typed
(``typed``), and the passage of time (``tick``, due by ``deadline()``). Each
returns outputs (chatroom/client/effects.py): datagrams to send and things to
show. Randomness (nonces, heartbeat jitter) comes from the injected
``random.Random``. The parts: ``login`` (one attempt, cookie, retries),
``timeline``/``stream`` (one per conversation: event order, gaps, pulls,
/history), ``outbox`` (messages in flight, whatever their conversation),
``rooms`` (JOIN and PART until answered), ``liveness`` (heartbeats, probes,
connection lost), ``servers`` (which of several servers to talk to).

A session's life: login (the first one gives up with ``NoAnswer`` after
``first_login_timeout``) into one room (``start_room``, #lobby by default);
history pulled page by page and shown dimmed; live events shown once each in id
order, acked cumulatively, each conversation (a room, or the direct messages
with one peer) on its own; messages sent with a sequence number and retried
until ACKED, shown when their event comes back (one that waits is shown at once
as pending, and marked delivered or failed later); ``/join`` and ``/part`` change
the rooms, ``/msg`` starts a direct conversation (one someone else starts
appears out of the blue with its first event); ``ERR nosession`` (the server
restarted or evicted us) -> log in again with ``resume`` = our sid into the
current room, JOIN every other conversation again and carry on from the last
event shown in each, resending unacked messages under their old seq so that
each is stored once; quit -> wait briefly until our messages are stored and
shown and the history replays are shown, BYE, ``Finished``. Given several
servers (``servers``: one chat on several nodes), the connection lost moves the
session to the next one (``UseServer``), where it logs in again with ``resume``
exactly as after a restart. docs/client.md has the details.
"""

from __future__ import annotations

import dataclasses
import random
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from chatroom import protocol as p
from chatroom.client import commands as c
from chatroom.client.effects import (
    CurrentRoom,
    Finished,
    LoggedIn,
    LoginRefused,
    NoAnswer,
    Notice,
    OnlineChanged,
    Output,
    RoomsChanged,
    ShowEvent,
    ShowPending,
    ShowPresence,
    ShowRooms,
    ShowUsers,
    Transmit,
    UseServer,
)
from chatroom.client.liveness import Liveness
from chatroom.client.login import LoginAttempt
from chatroom.client.rooms import Request, Requests, chan_key, is_direct
from chatroom.client.sendqueue import Outgoing, SendQueue, pacer_for
from chatroom.client.servers import Failover
from chatroom.client.stream import Item, PullRequest
from chatroom.client.timeline import Timeline
from chatroom.events import Event

#: Seq digits assumed when checking a message's size: the limit never moves
#: under the user's feet as the sequence number grows.
_SEQ_WIDTH: Final = 10**17
#: Events kept while they wait for the WELCOME or a JOINED they overtook.
_STASH_MAX: Final = 256
#: Announcements remembered to show each once (the operator's reach every room).
_ANNOUNCED_MAX: Final = 256


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
    #: A message in flight this long without an answer (or any message while
    #: the connection is lost) is shown at once as pending: normal chat, whose
    #: answers take milliseconds, looks as if it did not exist.
    pending_after: float = 1.0
    #: Several servers: one we moved to (the last one stopped answering) that
    #: says nothing at all for this long is left for the next. As long as the
    #: wait before "connection lost": a server that answers nothing in that
    #: time is treated the same, whether we were with it or just came.
    failover_after: float = 4.0


@dataclass(slots=True)
class ClientSession:
    name: str
    rng: random.Random
    config: SessionConfig = field(default_factory=SessionConfig)
    #: The room the first login starts in (``chatroom join --room``).
    start_room: str = p.LOBBY
    #: The servers to talk to, as the user names them (``Server.label``), in
    #: the order to try them; the first is where the first login goes. Fewer
    #: than two: the single-server behaviour (the shell sends to its one server).
    servers: tuple[str, ...] = ()
    state: State = State.IDLE
    sid: str = ""
    idle_timeout: float = 60.0
    #: Every conversation we are in, by ``chan_key``: rooms and direct ones.
    convs: dict[str, Timeline] = field(default_factory=dict)
    #: The room what the user types goes to: its key and its wire name (None:
    #: no room; it may still be being joined, and not in ``convs`` yet).
    current: str | None = None
    current_chan: str | None = None
    outbox: SendQueue = field(default_factory=SendQueue)
    live: Liveness = field(default_factory=Liveness)
    failover: Failover = field(default_factory=Failover)
    requests: Requests = field(default_factory=Requests)
    _login: LoginAttempt | None = None
    _welcomed: bool = False
    #: Our name as the server stores it (NFC).
    _me: str = ""
    _stash: list[Event] = field(default_factory=list)
    _welcomed_at: float = 0.0
    _close_phase: str = ""
    _close_deadline: float = 0.0
    _bye_at: float = 0.0
    _flush_left: tuple[int, int] = (0, 0)
    #: /who answers awaited, by room key; /rooms answers awaited.
    _who_wanted: dict[str, int] = field(default_factory=dict)
    _rooms_wanted: int = 0
    #: The direct conversation of the last person who wrote to us (for /reply).
    _reply_to: str | None = None
    #: (time in ms, text) of each announcement shown -> the conversation it came in.
    _announced: dict[tuple[int, str], str] = field(default_factory=dict)
    #: What tab completion was last given; the rooms the last /rooms listed.
    _names_sent: tuple[str, ...] = ()
    _rooms_sent: tuple[str, ...] = ()
    _listed: tuple[str, ...] = ()
    _completion_dirty: bool = False
    _keys: dict[str, str] = field(default_factory=dict)
    _claims: dict[str, _Claim] = field(default_factory=dict)
    #: Rooms in the order they were last current (key -> wire name): /part of
    #: the current room goes back to the one before.
    _recent: dict[str, str] = field(default_factory=dict)
    #: Logging in again found the server's history reset (the WELCOME's room):
    #: the conversations joined again start over from their JOINED's last_id.
    _rebase: set[str] = field(default_factory=set)
    #: Ids of our messages to conversations whose JOINED we wait for.
    _own_pending: dict[str, list[int]] = field(default_factory=dict)
    #: The user was told the server cannot store messages (ERR storage), and
    #: nothing has been stored since.
    _storage_told: bool = False
    #: (conversation key, id) of our stored messages that were shown as pending:
    #: their line, when it is shown, says they were delivered.
    _delivered_ids: set[tuple[str, int]] = field(default_factory=set)

    def __post_init__(self) -> None:
        cfg = self.config
        self.outbox.window, self.outbox.give_up_after = cfg.window, cfg.give_up_after
        self.live = Liveness(cfg.probe_after, cfg.probe_max, cfg.lost_after)
        self.failover = Failover(self.servers)

    @property
    def lost(self) -> bool:
        """The user has been told the connection is lost (and not yet that it is back)."""
        return self.live.lost

    # ------------------------------------------------------------------ inputs

    def login(self, name: str, now: float) -> list[Output]:
        """Start (or restart, after a refusal) the first login as ``name``."""
        self.name = name
        self.state = State.LOGIN
        self.failover.first_tries = 1  # each server gets its chance again
        return self._send_login(now, resume=None, room=self.start_room)

    def typed(self, line: str, now: float) -> list[Output]:
        """A line the user entered."""
        out: list[Output]
        match c.parse_line(line):
            case None:
                return []
            case c.Message(text=text):
                out = self._say(text, now)
            case c.Help():
                return [Notice("help")]
            case c.WhoCmd(room=room):
                out = self._who_cmd(room, now)
            case c.HistoryCmd(count=n):
                out = self._more_history(n, now)
            case c.JoinCmd(room=room):
                out = self._join_cmd(room, now)
            case c.PartCmd(room=room):
                out = self._part_cmd(room, now)
            case c.RoomsCmd():
                out = self._rooms_cmd(now)
            case c.DirectCmd(name=peer, text=text):
                out = self._direct(peer, text, now)
            case c.ReplyCmd(text=text):
                if self._reply_to is None:
                    return [Notice("no_reply")]
                out = self._direct(self._reply_to[len(p.PEER_PREFIX) :], text, now)
            case c.QuitCmd():
                return self.quit(now)
            case c.Usage(command=cmd):
                return [Notice("usage", {"command": cmd})]
            case c.Unknown(command=cmd):
                return [Notice("unknown_command", {"command": cmd})]
            case _:  # pragma: no cover - exhaustive match
                return []
        return out + self._completion() + self._show_pending(now)

    def quit(self, now: float, *, wait: bool = True) -> list[Output]:
        """Leave: wait briefly until our messages are stored and shown and the
        history replays are shown (``flush_timeout``, renewed while that makes
        progress with ``flush_while_progress``), say BYE, then ``Finished``.
        ``wait=False``: say BYE at once (nobody is left to see anything: the
        keyboard process died, and the network process has moments to say it)."""
        if self.state in (State.CLOSING, State.DONE):
            return []
        if self.state != State.LIVE:
            return self._finish()
        self.state = State.CLOSING
        if not wait:
            return self._start_bye(now)
        self._close_phase = "flush"
        self._close_deadline = now + self.config.flush_timeout
        self._flush_left = self._unflushed()
        return self._flush_step(now)

    def receive(self, data: bytes, now: float) -> list[Output]:
        """One datagram from the server."""
        frame = p.parse_server(data)
        if isinstance(frame, p.BadFrame) or self.state in (State.IDLE, State.DONE):
            return []
        self.failover.heard(now, self.config.failover_after)
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
            if isinstance(frame, p.EventFrame) and len(self._stash) < _STASH_MAX:
                self._stash.append(frame.event)  # overtook the WELCOME
            return []
        out = self._heard(now)
        if isinstance(frame, p.Goodbye) and self.state == State.CLOSING:
            return out + self._finish()
        if (
            isinstance(frame, p.Error)
            and frame.code == "shutdown"
            and self.failover.several
            and self.state == State.LIVE
        ):
            # One node of a cluster is stopping (the chat is not): move on now
            # rather than after seconds of silence.
            return out + self._fail_over(now)
        out += self._on_live_frame(frame, now)
        out += self._ack(now) + self._pump(now) + self._requests_due(now)
        if self.state == State.CLOSING and self._close_phase == "flush":
            out += self._flush_step(now)
        if self._delivered_ids:
            out = self._mark_delivered(out)
        return out + self._completion() + self._show_pending(now)

    def _on_live_frame(self, frame: p.ServerFrame, now: float) -> list[Output]:
        """A frame of a logged-in session (not the login's, not a goodbye's)."""
        out: list[Output] = []
        match frame:
            case p.EventFrame(event=ev):
                out += self._on_event(ev, now)
            case p.Acked(seq=seq, id=id_, ts=ts, chan=chan):
                out += self._on_acked(seq, id_, ts, chan, now)
            case p.Rejected(seq=seq, code=code, text=text):
                out += self._on_rejected(seq, code, text)
            case p.Summary(chan=chan):
                out += self._on_event(frame, now)
            case p.Head(chan=chan):
                if (tl := self.convs.get(self._key(chan))) is not None:
                    tl.head(frame, now)
            case p.Pong(last_id=last, others=others):
                if (rtt := self.live.pong(now)) is not None:
                    self.outbox.rtt.sample(rtt)
                if (lobby := self.convs.get(p.LOBBY)) is not None:
                    lobby.stream.learn_high(last, now)
                for chan, newest in others:
                    if (tl := self.convs.get(self._key(chan))) is not None:
                        tl.stream.learn_high(newest, now)
            case p.Users(total=total, names=names, room=room):
                out += self._on_users(total, names, room)
            case p.RoomList(total=total, rooms=rooms):
                out += self._on_rooms(total, rooms)
            case p.Joined(chan=chan, last_id=last):
                out += self._on_joined(chan, last, now)
            case p.Parted(room=room):
                out += self._on_parted(room)
            case p.Gone(oldest=oldest, chan=chan):
                key = self._key(chan)
                if (tl := self.convs.get(key)) is not None:
                    out += self._present(key, tl, tl.gone(oldest, self._claim(key)), now)
            case p.Error(code="slowdown"):
                pass  # over the rate limit: not acked, so it is simply retried
            case p.Error(code="notmember"):
                pass  # a PULL or ACK that crossed our PART, or came before a JOIN
            case p.Error(code="toomany" | "badroom" as code, text=text):
                out += self._join_refused(code, text)
            case p.Error(code="storage", text=text):
                # Not stored, not acked: the line stays queued and is retried.
                # Said once until something is stored again, not at every retry.
                if not self._storage_told:
                    self._storage_told = True
                    out.append(Notice("server_error", {"code": "storage", "text": text}))
            case p.Error(code=code, text=text):
                out.append(Notice("server_error", {"code": code, "text": text}))
        return out

    def tick(self, now: float, wall: float | None = None) -> list[Output]:
        """Let time pass: retransmissions, pulls, acks, heartbeats, give-ups.
        ``wall``, the wall-clock time at ``now``, puts heartbeats on its grid
        (liveness.py)."""
        match self.state:
            case State.LOGIN:
                assert self._login is not None
                if now >= self._login.started + self.config.first_login_timeout:
                    if self.failover.first_tries < len(self.failover.labels):
                        return self._first_login_elsewhere(now)
                    self.state = State.IDLE
                    self._login = None
                    return [NoAnswer()]
                return self._login_retry(now)
            case State.RELOGIN:
                return self._login_retry(now) + self._check_lost(now) + self._show_pending(now)
            case State.LIVE:
                return self._live_timers(now, wall) + self._show_pending(now)
            case State.CLOSING:
                return self._closing_timers(now) + self._show_pending(now)
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
        if self.state in (State.LIVE, State.CLOSING) and (t := self.outbox.deadline(self._hold)):
            times.append(t)
        if self.outbox.items and (t := self._pending_due()) is not None:
            times.append(t)
        if self.state in (State.LIVE, State.RELOGIN):  # where tick checks the path
            times += self.live.deadlines(live=self.state == State.LIVE)
        if self.state == State.RELOGIN and self.failover.switch_at is not None:
            times.append(self.failover.switch_at)
        flushing = self.state == State.CLOSING and self._close_phase == "flush"
        if self.state == State.LIVE or flushing:
            for tl in self._followed():
                times += tl.deadlines()
        if self.state == State.LIVE and (t := self.requests.deadline(self._ready)) is not None:
            times.append(t)
        if self.state == State.CLOSING:
            times.append(self._close_deadline)
            if self._close_phase == "bye":
                times.append(self._bye_at)
        return min(times) if times else None

    def max_text_bytes(self, chan: str = p.LOBBY) -> int:
        """The longest message text (UTF-8 bytes) for conversation ``chan``: the
        server's limit, which also keeps every SAY and every EV frame of it within
        one datagram (a long room name or name takes room in the EV)."""
        frame = p.encode_client(p.Say(self.sid or "0" * 32, _SEQ_WIDTH, "", chan))
        me = self._me or unicodedata.normalize("NFC", self.name)
        # How the EV names the conversation to those who receive it.
        where = p.PEER_PREFIX + p.name_key(me) if is_direct(chan) else chan
        return min(p.text_limit(where, me), p.MAX_DATAGRAM - len(frame))

    # ------------------------------------------------------------------ login

    def _send_login(self, now: float, *, resume: str | None, room: str) -> list[Output]:
        cfg = self.config
        self._login = LoginAttempt.start(
            self.name,
            self.rng,
            now,
            resume=resume,
            rto=cfg.login_rto,
            rto_max=cfg.login_rto_max,
            room=room,
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
        self.outbox.pacer = pacer_for(w.rate, now)
        key = self._key(w.room)
        out: list[Output] = []
        moved = self.failover.settled()
        here = Notice("connected_to", {"server": self.failover.current})
        if not self._welcomed:  # the first login
            self._welcomed = True
            self._me = unicodedata.normalize("NFC", self.name)  # as the server stores it
            self._open(w.room, key, w.last_id, self.config.history, now)
            self.current, self.current_chan = key, w.room
            self._recent[key] = w.room
            if moved:  # the first server(s) did not answer
                out.append(here)
            out.append(LoggedIn(self.name, self.sid))
        else:  # back after ERR nosession or a move: carry on from the last event shown
            reset = False
            if (tl := self.convs.get(key)) is not None:
                reset = w.last_id < tl.stream.delivered
                out += self._resync(tl, w.last_id, now)
            else:  # we had left every room: the login put us in one, leave it again
                self.requests.ask(key, w.room, "part")
            # The new session is in the login room only: join the others again.
            self.requests.restart()
            self._rebase = set()
            for other, t in self.convs.items():
                if other != key and other not in self.requests.items:
                    self.requests.ask(other, t.chan, "join")
                if other != key and reset:
                    self._rebase.add(other)
            out.append(here if moved else Notice("reconnected"))
            self.live.lost = False
            self.outbox.resend_now(now)  # same seq: stored once
        self.live.heard(ends_outage=False)
        self.live.schedule_ping(now, self.idle_timeout, self.rng)
        stash, self._stash = self._stash, []
        for ev in stash:
            out += self._on_event(ev, now)
        if key in self.convs:
            out += self._who(key, w.room, now, show=False)  # seeds tab completion
        return out + self._live_timers(now) + self._completion()

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
        return [Notice("rejoin_refused", {"name": self.name, "code": r.code, "text": r.text})]

    def _on_nosession(self, now: float) -> list[Output]:
        if self.state == State.CLOSING:
            return self._finish()  # nothing left to say goodbye to
        if self.state != State.LIVE or now < self._welcomed_at + self.config.nosession_grace:
            return []  # an answer to a frame sent before our (re)login was processed
        self.state = State.RELOGIN
        return self._send_login(now, resume=self.sid, room=self._login_room())

    def _first_login_elsewhere(self, now: float) -> list[Output]:
        """The first login got no answer: try the next server (each once)."""
        silent = self.failover.current
        self.failover.first_tries += 1
        index = self.failover.advance(now, self.config.failover_after)
        label = self.failover.current
        out: list[Output] = [
            UseServer(index, label),
            Notice("no_answer_next", {"server": silent, "next": label}),
        ]
        return out + self._send_login(now, resume=None, room=self.start_room)

    def _fail_over(self, now: float) -> list[Output]:
        """The server stopped answering and there are others: move to the next
        and log in there with ``resume``, as after a restart (the new node takes
        the session back; the WELCOME carries on every conversation from the
        last event shown and resends what was not acknowledged, same seq)."""
        index = self.failover.advance(now, self.config.failover_after)
        label = self.failover.current
        self.state = State.RELOGIN
        self.live.lost = True  # until the WELCOME: a line typed now shows as pending
        out: list[Output] = [UseServer(index, label), Notice("failover", {"server": label})]
        return out + self._send_login(now, resume=self.sid, room=self._login_room())

    def _login_room(self) -> str:
        """Where to log in again: the current room, else another of ours, else
        the lobby (left again at once)."""
        if self.current is not None and (tl := self.convs.get(self.current)) is not None:
            return tl.chan
        rooms = [tl.chan for key, tl in self.convs.items() if not is_direct(key)]
        return rooms[0] if rooms else p.LOBBY

    # ------------------------------------------------------------------ conversations

    def _key(self, chan: str) -> str:
        key = self._keys.get(chan)
        if key is None:
            if len(self._keys) >= 1024:
                self._keys.clear()
            key = self._keys[chan] = chan_key(chan)
        return key

    def _claim(self, key: str) -> _Claim:
        claim = self._claims.get(key)
        if claim is None:
            claim = self._claims[key] = _Claim(self.outbox, key, self._delivered_ids)
        return claim

    def _open(self, chan: str, key: str, last_id: int, history: int, now: float) -> Timeline:
        cfg = self.config
        tl = Timeline.start(
            self._me,
            last_id,
            history,
            gap_delay=cfg.gap_delay,
            ack_every=cfg.ack_every,
            ack_delay=cfg.ack_delay,
            now=now,
            chan=chan,
        )
        self.convs[key] = tl
        self._completion_dirty = True
        return tl

    def _resync(self, tl: Timeline, last_id: int, now: float) -> list[Output]:
        """A WELCOME after logging in again: ``last_id`` is the server's newest id
        in its room (a smaller one than we showed: a reset server)."""
        out: list[Output] = []
        if last_id < tl.stream.delivered:
            tl.rebase(last_id)
            out.append(Notice("server_reset"))
        tl.stream.learn_high(last_id, now, immediate=True)
        return out

    def _on_event(self, ev: Item, now: float) -> list[Output]:
        room = ev.room if isinstance(ev, Event) else ev.chan
        key = self._keys.get(room) or self._key(room)
        tl = self.convs.get(key)
        if tl is None:
            if not isinstance(ev, Event):
                return []  # a summary: its ids are pulled once the room is open
            if self.requests.wants(key, "join"):
                if len(self._stash) < _STASH_MAX:
                    self._stash.append(ev)  # overtook the JOINED
                return []
            if not is_direct(key):
                return []  # a room we left (or never joined)
            # Someone wrote to us: the server sends a new conversation's first
            # event alone until it is acked, so the stream starts just before it.
            tl = self._open(ev.room, key, ev.id - 1, 0, now)
        out = tl.event(ev, now, self._claim(key))
        if len(out) <= 1 and isinstance(ev, Event) and ev.kind == "message" and key == self.current:
            return out  # the common case (just this message): nothing to mark
            # (a delivered mark is added at the end of ``receive``)
        out = self._present(key, tl, out, now)
        if any(_live_announcement(o) for o in out):
            self.live.check_soon(now + self.config.announce_check)
        return out

    def _present(self, key: str, tl: Timeline, outs: list[Output], now: float) -> list[Output]:
        """A conversation's outputs as the user sees them: events from elsewhere
        than the current room marked so, an announcement shown once however many
        of our rooms it reaches, the last person to write to us noted."""
        result: list[Output] = []
        for o in outs:
            if isinstance(o, ShowEvent):
                ev = o.event
                if ev.kind == "announce":
                    seen = (round(ev.created_at * 1000), ev.text)
                    first = self._announced.setdefault(seen, key)
                    if first != key:
                        continue  # already shown from another room
                    if len(self._announced) > _ANNOUNCED_MAX:
                        del self._announced[next(iter(self._announced))]
                elif key != self.current:
                    o = dataclasses.replace(o, elsewhere=True)
                    if ev.kind == "message" and not o.own and not o.history and is_direct(key):
                        self._reply_to = tl.chan
            elif isinstance(o, ShowPresence) and key != self.current:
                o = dataclasses.replace(o, elsewhere=True)
            result.append(o)
        return result

    def _on_joined(self, chan: str, last_id: int, now: float) -> list[Output]:
        key = self._key(chan)
        if not self.requests.answered(key, "join"):
            return []  # the answer to a retry, or to nothing we asked
        tl = self.convs.get(key)
        if tl is not None:  # joined again after logging in again
            if key in self._rebase:  # a different history: start over from its newest
                self._rebase.discard(key)
                tl.rebase(last_id)
            # Otherwise a smaller last_id is no reset: it is where this session
            # joined (a resumed one joined long ago; a direct conversation may
            # have been opened by a message of ours since).
            tl.stream.learn_high(last_id, now, immediate=True)
            return self._pulls(tl, now)
        history = 0 if is_direct(key) else self.config.history
        tl = self._open(chan, key, last_id, history, now)
        for own in self._own_pending.pop(key, []):
            tl.our_message(own, now)
        out: list[Output] = []
        if key == self.current and chan != self.current_chan:
            self.current_chan = self._recent[key] = chan  # as the server spells it
            out.append(CurrentRoom(chan))
        waiting = [ev for ev in self._stash if self._key(ev.room) == key]
        if waiting:
            self._stash = [ev for ev in self._stash if self._key(ev.room) != key]
            for ev in waiting:
                out += self._on_event(ev, now)
        if not is_direct(key):
            out += self._who(key, chan, now, show=False)  # seeds tab completion
        return out + self._pulls(tl, now)

    def _on_parted(self, room: str) -> list[Output]:
        key = self._key(room)
        if not self.requests.answered(key, "part"):
            return []
        self._who_wanted.pop(key, None)
        self._stash = [ev for ev in self._stash if self._key(ev.room) != key]
        self._recent.pop(key, None)
        if self.convs.pop(key, None) is None:
            return []
        self._completion_dirty = True
        return [Notice("parted", {"room": room})]

    def _on_users(self, total: int, names: tuple[str, ...], room: str) -> list[Output]:
        key = self._key(room)
        if (tl := self.convs.get(key)) is not None:
            tl.users(total, names)
        wanted = self._who_wanted.get(key, 0)
        if wanted <= 0:
            return []
        if wanted == 1:
            del self._who_wanted[key]
        else:
            self._who_wanted[key] = wanted - 1
        # Always named: "online (1)" read as one person in the whole chat.
        return [ShowUsers(total, names, room)]

    def _on_rooms(self, total: int, rooms: tuple[tuple[str, int], ...]) -> list[Output]:
        self._listed = tuple(room for room, _ in rooms)
        self._completion_dirty = True
        if self._rooms_wanted <= 0:
            return []
        self._rooms_wanted -= 1
        return [ShowRooms(total, rooms)]

    def _switch(self, key: str | None, chan: str | None) -> list[Output]:
        """Make ``chan`` (None: no room) the room what is typed goes to."""
        if key == self.current:
            return [Notice("now_in", {"room": chan})] if chan is not None else []
        self.current, self.current_chan = key, chan
        if key is None or chan is None:
            return [CurrentRoom(None), Notice("no_room")]
        self._recent.pop(key, None)
        self._recent[key] = chan
        return [CurrentRoom(chan), Notice("now_in", {"room": chan})]

    def _completion(self) -> list[Output]:
        """What tab completion offers, when it changed: the people in our rooms
        and our direct conversations; our rooms and the last /rooms listing."""
        dirty = self._completion_dirty
        for tl in self.convs.values():
            if tl.online_changed:
                tl.online_changed = dirty = True
        if not dirty:
            return []
        self._completion_dirty = False
        names: set[str] = set()
        rooms: set[str] = set(self._listed)
        for key, tl in self.convs.items():
            tl.online_changed = False
            if is_direct(key):
                names.add(tl.chan[len(p.PEER_PREFIX) :])
            else:
                names |= tl.online
                rooms.add(tl.chan)
        out: list[Output] = []
        sorted_names = tuple(sorted(names))
        if sorted_names != self._names_sent:
            self._names_sent = sorted_names
            out.append(OnlineChanged(sorted_names))
        sorted_rooms = tuple(sorted(rooms))
        if sorted_rooms != self._rooms_sent:
            self._rooms_sent = sorted_rooms
            out.append(RoomsChanged(sorted_rooms))
        return out

    # ------------------------------------------------------------------ messages and commands

    def _say(
        self, text: str, now: float, chan: str | None = None, key: str | None = None
    ) -> list[Output]:
        if self.state not in (State.LIVE, State.RELOGIN):
            return [Notice("not_connected")]
        if chan is None or key is None:
            if self.current is None or self.current_chan is None:
                return [Notice("no_room")]
            chan, key = self.current_chan, self.current
        bad = p.bad_text_char(text)
        if bad is not None:
            return [Notice("control_chars", {"char": f"U+{ord(bad):04X}"})]
        size, limit = len(text.encode("utf-8")), self.max_text_bytes(chan)
        if size > limit:
            return [Notice("too_long", {"size": size, "limit": limit})]
        self.outbox.add(text, now, chan, key)
        return self._pump(now)

    def _direct(self, peer: str, text: str, now: float) -> list[Output]:
        """/msg NAME TEXT (and /reply): a direct message."""
        clean, why = p.check_name(peer)
        if why == "invalid":
            return [Notice("bad_name", {"name": peer})]
        if p.name_key(clean) == p.name_key(self._me or self.name):
            return [Notice("dm_self")]
        key = self._key(p.PEER_PREFIX + clean)
        tl = self.convs.get(key)
        chan = tl.chan if tl is not None else p.PEER_PREFIX + clean
        return self._say(text, now, chan, key)

    def _pump(self, now: float) -> list[Output]:
        """Send what the outbox says is due (new, retransmitted) and report give-ups."""
        if self.state not in (State.LIVE, State.CLOSING):
            return []
        send, gave_up = self.outbox.due(now, self._hold)
        out: list[Output] = [Notice("gave_up", {"text": o.text}) for o in gave_up]
        out += [self._say_frame(o, now) for o in send]
        return out

    @property
    def _hold(self) -> Callable[[str], bool] | None:
        """``SendQueue.due``'s ``held``: messages to a room wait until the server has
        us in it (None, the common case: nothing is being joined)."""
        return self._held if self.requests.items else None

    def _held(self, key: str) -> bool:
        return not is_direct(key) and self.requests.wants(key, "join")

    def _say_frame(self, o: Outgoing, now: float) -> Transmit:
        self.live.expect(now)
        return Transmit(p.encode_client(p.Say(self.sid, o.seq, o.text, o.chan)))

    def _on_acked(
        self, seq: int, id_: int, ts: float | None, chan: str, now: float
    ) -> list[Output]:
        sent = self.outbox.acked(seq, now)
        if sent is None:
            return []  # a duplicate answer
        self._storage_told = False
        key = self._key(chan)
        if sent.pending_shown:
            self._note_delivered(key, id_)
        tl = self.convs.get(key)
        if tl is None:
            if not is_direct(key):
                return []  # a room we are no longer in
            return self._first_direct(key, chan, id_, sent.text, ts)
        tl.our_message(id_, now)
        if ts is None:
            return []  # the event comes as an EV (older server) or is pulled
        # The server's copy of our own message: it sends us no EV for it.
        ev = Event(id_, "message", tl.name, sent.text, ts, room=tl.chan)
        return self._present(key, tl, tl.event(ev, now, self._claim(key)), now)

    def _first_direct(
        self, key: str, chan: str, id_: int, text: str, ts: float | None
    ) -> list[Output]:
        """The ACKED of our first message to someone we have no conversation with
        yet. They may have written first (their message still on its way to us,
        or lost): where our stream starts, a JOINED says, and until it comes our
        message waits with whatever else arrives."""
        if not self.requests.wants(key, "join"):
            self.requests.ask(key, chan, "join")
        self._own_pending.setdefault(key, []).append(id_)
        if ts is not None:
            self._stash.append(Event(id_, "message", self._me, text, ts, room=chan))
        return []

    def _on_rejected(self, seq: int, code: str, text: str) -> list[Output]:
        sent = self.outbox.rejected(seq)
        if sent is None:
            return []  # a duplicate answer
        match code:
            case "offline":
                peer = sent.chan[len(p.PEER_PREFIX) :]
                return [Notice("dm_offline", {"name": peer, "text": sent.text})]
            case "classic":
                peer = sent.chan[len(p.PEER_PREFIX) :]
                return [Notice("dm_classic", {"name": peer, "text": sent.text})]
            case "notmember":
                return [Notice("not_member", {"room": sent.chan, "text": sent.text})]
            case "self":
                return [Notice("dm_self")]
        return [Notice("rejected", {"code": code, "reason": text, "text": sent.text})]

    def _who(self, key: str, chan: str, now: float, *, show: bool) -> list[Output]:
        if self.state != State.LIVE:
            return [Notice("not_connected")] if show else []
        if show:
            self._who_wanted[key] = self._who_wanted.get(key, 0) + 1
            self.live.expect(now)
        return [Transmit(p.encode_client(p.Who(self.sid, chan)))]

    def _who_cmd(self, room: str | None, now: float) -> list[Output]:
        if room is None:
            if self.current is None or self.current_chan is None:
                return [Notice("no_room")]
            return self._who(self.current, self.current_chan, now, show=True)
        clean, why = p.check_room(room)
        if why is not None:
            return [Notice("bad_room", {"room": room})]
        key = self._key(clean)
        tl = self.convs.get(key)
        return self._who(key, tl.chan if tl is not None else clean, now, show=True)

    def _rooms_cmd(self, now: float) -> list[Output]:
        if self.state != State.LIVE:
            return [Notice("not_connected")]
        self._rooms_wanted += 1
        self.live.expect(now)
        return [Transmit(p.encode_client(p.ListRooms(self.sid)))]

    def _join_cmd(self, room: str, now: float) -> list[Output]:
        if self.state not in (State.LIVE, State.RELOGIN):
            return [Notice("not_connected")]
        clean, why = p.check_room(room)
        if why is not None:
            return [Notice("bad_room", {"room": room})]
        key = self._key(clean)
        tl = self.convs.get(key)
        if not self._member(key):
            self.requests.ask(key, clean, "join")
        chan = tl.chan if tl is not None else clean
        return self._switch(key, chan) + self._requests_due(now)

    def _part_cmd(self, room: str | None, now: float) -> list[Output]:
        if self.state not in (State.LIVE, State.RELOGIN):
            return [Notice("not_connected")]
        if room is None:
            if self.current is None or self.current_chan is None:
                return [Notice("no_room")]
            key, chan = self.current, self.current_chan
        else:
            clean, why = p.check_room(room)
            if why is not None:
                return [Notice("bad_room", {"room": room})]
            key = self._key(clean)
            tl = self.convs.get(key)
            chan = tl.chan if tl is not None else clean
        if not self._member(key):
            return [Notice("not_in_room", {"room": chan})]
        self.requests.ask(key, chan, "part")
        return self._switch_back(key) + self._requests_due(now)

    def _switch_back(self, key: str) -> list[Output]:
        """We are leaving ``key``: if it is the current room, go back to the room
        current before it (or any of ours, or none)."""
        self._recent.pop(key, None)
        if key != self.current:
            return []
        rooms = [(k, tl.chan) for k, tl in self.convs.items() if not is_direct(k)]
        rooms += list(self._recent.items())  # the most recently current last
        back = [(k, chan) for k, chan in rooms if k != key and self._member(k)]
        new_key, new_chan = back[-1] if back else (None, None)
        return self._switch(new_key, new_chan)

    def _join_refused(self, code: str, text: str) -> list[Output]:
        """ERR toomany or badroom: the JOINs not answered yet will not be (the
        error names no room, so all of them: one is the usual case)."""
        out: list[Output] = [Notice("server_error", {"code": code, "text": text})]
        failed = [
            key
            for key, r in self.requests.items.items()
            if r.verb == "join" and r.tries and key not in self.convs
        ]
        for key in failed:
            del self.requests.items[key]
            out += [Notice("gave_up", {"text": o.text}) for o in self.outbox.drop(key)]
            out += self._switch_back(key)
        return out

    def _member(self, key: str) -> bool:
        """In ``key`` once what was asked is done (joined, or being joined)."""
        final = self.requests.final(key)
        return key in self.convs if final is None else final == "join"

    def _ready(self, key: str, r: Request) -> bool:
        """A PART goes once our messages to the room have (they are shown then)."""
        return r.verb == "join" or not self.outbox.has(key)

    def _requests_due(self, now: float) -> list[Output]:
        if self.state != State.LIVE or not self.requests.items:
            return []
        out: list[Output] = []
        for r in self.requests.due(now, self.outbox.rtt.rto, self._ready):
            self.live.expect(now)
            frame = p.Join(self.sid, r.chan) if r.verb == "join" else p.Part(self.sid, r.chan)
            out.append(Transmit(p.encode_client(frame)))
        return out

    def _more_history(self, count: int, now: float) -> list[Output]:
        if self.state != State.LIVE:
            return [Notice("not_connected")]
        if self.current is None:
            return [Notice("no_room")]
        tl = self.convs.get(self.current)
        if tl is None:
            return [Notice("joining", {"room": self.current_chan or ""})]
        refusal = tl.more_history(count)
        return [refusal] if refusal is not None else self._live_timers(now)

    # ------------------------------------------------------------------ pending

    def _show_pending(self, now: float) -> list[Output]:
        """Our messages the user should see now as not delivered yet: every one
        while the connection is lost; otherwise one in flight for
        ``pending_after`` without an answer, and every one queued behind it.
        Each is shown once (its delivery, or its failure, is said later)."""
        if not self.outbox.items or self.state in (State.IDLE, State.LOGIN, State.DONE):
            return []
        show = self.live.lost
        after = self.config.pending_after
        out: list[Output] = []
        for o in self.outbox.items.values():  # in the order typed
            if o.pending_shown:
                show = True  # what follows a pending message is pending too
                continue
            if not show and o.first_sent is not None and now >= o.first_sent + after:
                show = True
            if show:
                o.pending_shown = True
                out.append(
                    ShowPending(self._me or self.name, o.text, o.chan, o.key != self.current)
                )
        return out

    def _pending_due(self) -> float | None:
        """When ``_show_pending`` will have a message to show (None: not by the
        clock; losing the connection shows them at that tick)."""
        if self.live.lost:
            return None
        after = self.config.pending_after
        times = [
            o.first_sent + after
            for o in self.outbox.items.values()
            if o.first_sent is not None and not o.pending_shown
        ]
        return min(times) if times else None

    def _note_delivered(self, key: str, event_id: int) -> None:
        if len(self._delivered_ids) >= _ANNOUNCED_MAX:
            self._delivered_ids.clear()  # events never shown (a room left): forget them
        self._delivered_ids.add((key, event_id))

    def _mark_delivered(self, outs: list[Output]) -> list[Output]:
        """Our stored messages that were shown as pending say they were delivered."""
        result: list[Output] = []
        for o in outs:
            if isinstance(o, ShowEvent) and o.own and not o.history:
                mark = (self._key(o.event.room), o.event.id)
                if mark in self._delivered_ids:
                    self._delivered_ids.discard(mark)
                    o = dataclasses.replace(o, delivered=True)
            result.append(o)
        return result

    # ------------------------------------------------------------------ timers

    def _followed(self) -> Iterable[Timeline]:
        """The conversations to pull and acknowledge: not those being joined
        again (after logging in again), which the server would refuse."""
        if not self.requests.items:
            return self.convs.values()
        return [tl for key, tl in self.convs.items() if not self.requests.joining(key)]

    def _pulls(self, tl: Timeline, now: float) -> list[Output]:
        rto = self.outbox.rtt.rto
        return [self._pull(r, tl.chan, now) for r in tl.pulls_due(now, rto)]

    def _live_timers(self, now: float, wall: float | None = None) -> list[Output]:
        out = self._pump(now)
        for tl in self._followed():
            out += self._pulls(tl, now)
        out += self._ack(now)
        out += self._requests_due(now)
        if wall is not None:
            self.live.align(now, wall)
        if now >= self.live.next_ping:
            out.append(self._ping(now, probe=False))
            self.live.schedule_ping(now, self.idle_timeout, self.rng, wall)
        if self.live.probe_due(now):
            out.append(self._ping(now, probe=True))
        return out + self._check_lost(now)

    def _closing_timers(self, now: float) -> list[Output]:
        out = self._pump(now)
        if self._close_phase == "flush":
            for tl in self._followed():
                out += self._pulls(tl, now)
            out += self._ack(now)
            out += self._flush_step(now)
        elif now >= self._close_deadline:
            out += self._finish()
        elif now >= self._bye_at:
            self._bye_at = now + self.config.bye_interval
            out.append(Transmit(p.encode_client(p.Bye(self.sid))))
        return out

    def _ack(self, now: float) -> list[Output]:
        if self.state not in (State.LIVE, State.CLOSING):
            return []
        out: list[Output] = []
        for tl in self._followed():
            upto = tl.ack_due(now)
            if upto is not None:
                out.append(Transmit(p.encode_client(p.Ack(self.sid, upto, tl.chan))))
        return out

    def _pull(self, req: PullRequest, chan: str, now: float) -> Transmit:
        self.live.expect(now)
        return Transmit(p.encode_client(p.Pull(self.sid, req.after, req.limit, chan)))

    def _ping(self, now: float, *, probe: bool) -> Transmit:
        self.live.ping_sent_at(now, probe=probe)
        lobby = self.convs.get(p.LOBBY)
        seen = lobby.stream.delivered if lobby is not None else 0
        return Transmit(p.encode_client(p.Ping(self.sid, seen)))

    def _heard(self, now: float) -> list[Output]:
        """Any valid frame from the server: the path works."""
        if not self.live.heard(ends_outage=self.state == State.LIVE):
            return []
        self.outbox.resend_now(now)
        self.requests.resend_now(now)
        out = self._pump(now)
        for tl in self.convs.values():
            tl.retry_now(now)
        return [Notice("reconnected"), *out]

    def _check_lost(self, now: float) -> list[Output]:
        """One server: say the connection is lost (once) and keep trying it.
        Several: move to the next, and on again while the new one is silent."""
        if not self.failover.several:
            return [Notice("connection_lost")] if self.live.became_lost(now) else []
        if self.live.became_lost(now) or self.failover.due(now):
            return self._fail_over(now)
        return []

    def _unflushed(self) -> tuple[int, int]:
        """(messages not yet stored, events not yet shown) that quitting waits for:
        ours and the history replays, not what others keep saying meanwhile."""
        events = sum(len(ids) for ids in self._own_pending.values())
        for tl in self.convs.values():
            stream = tl.stream
            wanted = min(max([tl.history_upto, *tl.own_ids]), stream.known_high)
            events += max(0, wanted - stream.delivered)
        return len(self.outbox), events

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


@dataclass(frozen=True, slots=True)
class _Claim:
    """``Timeline.event``'s ``claim``: our in-flight message of one conversation
    whose event came before (or without) its ACKED. One shown as pending has
    its delivery marked (``delivered``: the session's ``_delivered_ids``)."""

    outbox: SendQueue
    key: str
    delivered: set[tuple[str, int]]

    def __call__(self, ev: Event) -> bool:
        o = self.outbox.claim(ev.text, self.key)
        if o is not None and o.pending_shown:
            self.delivered.add((self.key, ev.id))
        return o is not None


def _live_announcement(out: Output) -> bool:
    return isinstance(out, ShowEvent) and out.event.kind == "announce" and not out.history
