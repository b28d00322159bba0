"""The chat server as a state machine: datagrams in, effects out.

No sockets, no clock reads, no randomness except through the injected token
source. The server (chatroom/server.py) feeds it datagrams with an explicit
monotonic ``now`` and wall-clock ``wall``, commits every ``Store`` effect of a
batch, and only then performs the ``Send`` effects, so anything a client is shown
is already durable.

Event ids are assigned here (the server is the single writer of its database), so
v2 frames can carry their id before the batch is committed. Every v2 session
receives every event (its own join and messages included) as one contiguous id
sequence, which is what lets our client detect gaps and pull them; classic
clients receive the course's plain lines, never their own.
"""

from __future__ import annotations

import hmac

from chatroom import protocol as p
from chatroom.delivery import Outbox
from chatroom.registry import Address, User
from chatroom.room_state import (
    DEFAULT_LOGIN_RATE,
    DEFAULT_RATE,
    MAX_PULL,
    SEQ_MEMORY,
    Effect,
    RoomConfig,
    RoomState,
    Send,
    Session,
    Store,
    is_loopback,
)

__all__ = [
    "DEFAULT_LOGIN_RATE",
    "DEFAULT_RATE",
    "Effect",
    "Room",
    "RoomConfig",
    "Send",
    "Session",
    "Store",
    "is_loopback",
]


class Room(RoomState):
    """One chat room. See the module docstring for the contract."""

    # ------------------------------------------------------------------ inputs

    def handle(self, data: bytes, addr: Address, now: float, wall: float) -> list[Effect]:
        """One datagram from ``addr``. Never raises on peer input."""
        self.stats["datagrams"] += 1
        if self._guard.muted(addr, now):  # a flooder: not even parsed
            self.stats["drop.muted"] += 1
            return []
        self._now, self._wall = now, wall
        frame = p.parse(data)
        match frame:
            case p.BadFrame():
                return self._bad(frame, addr, now)
            case p.ClassicLogin() | p.ClassicChat() | p.ClassicQuit():
                if not self._classic_allowed(addr):
                    self.stats["drop.classic_policy"] += 1
                    return []
                return self._classic(frame, addr, now, data.endswith(b"\n"))
            case p.Login():
                return self._login(frame, addr, now)
            case _:
                return self._v2(frame, addr, now)

    @staticmethod
    def announcement_problem(text: str) -> str | None:
        """Why ``announce(text)`` would refuse it, for the operator; None if fine."""
        text = " ".join(text.split())
        if not text:
            return "the announcement is empty"
        if p.bad_text_char(text) is not None:
            return "control characters are not allowed"
        if p.text_too_long(text):
            return f"too long: the limit is {p.MAX_TEXT} bytes of UTF-8"
        return None

    def announce(self, text: str, now: float, wall: float) -> list[Effect]:
        """An operator announcement (console or control socket), to everyone.
        Refused (no effects) when ``announcement_problem`` names a problem."""
        self._now, self._wall = now, wall
        if self.announcement_problem(text) is not None:
            return []
        return self._publish("announce", "", " ".join(text.split()), exclude=None)

    def on_timer(self, now: float, wall: float) -> list[Effect]:
        """Retransmit what is overdue; once a second, evict silent v2 sessions."""
        self._now, self._wall = now, wall
        effects: list[Effect] = []
        for user in self._sessions.values():
            outbox: Outbox = user.session.outbox
            if outbox.deadline is not None and now >= outbox.deadline:
                for event_id in outbox.expired(now):
                    frame = self._ring.frame(event_id)
                    if frame is not None:
                        self.stats["retransmits"] += 1
                        effects.append(Send(frame, (user.address,)))
        if now < self._next_idle_check:
            return effects
        self._next_idle_check = now + 1.0
        limit = now - self.config.idle_timeout
        stale = [u for u in self._sessions.values() if u.session.last_seen < limit]
        for user in stale:
            self._drop_user(user)
            self.stats["timeouts"] += 1
            effects += self._publish("timeout", user.name, "", exclude=None)
        self._guard.prune(now)
        return effects

    def shutdown(self, now: float, wall: float) -> list[Effect]:
        """Tell everyone the server is going away (stored as an announcement)."""
        self._now, self._wall = now, wall
        if len(self.registry) == 0:
            return []
        return self._publish("announce", "", "server shutting down", exclude=None)

    # ------------------------------------------------------------------ classic dialect

    def _classic(
        self,
        frame: p.ClassicLogin | p.ClassicChat | p.ClassicQuit,
        addr: Address,
        now: float,
        newline: bool,
    ) -> list[Effect]:
        lang = self.config.lang
        user = self.registry.find_address(addr)

        def line(payload: bytes) -> bytes:
            return payload + b"\n" if newline else payload

        match frame:
            case p.ClassicLogin(name=raw):
                if user is not None:
                    if user.name == raw and user.session is None:
                        return [Send(line(p.OK), (addr,))]  # a retried L: its OK was lost
                    self.stats["refused.address_in_use"] += 1
                    already = p.classic_text(lang, "already", user.name)
                    return self._reply_error(addr, now, line(already))
                name, why = self._check_new_name(raw)
                if why is not None:
                    self.stats[f"refused.{why}"] += 1
                    return [Send(line(p.classic_text(lang, why)), (addr,))]
                self._add(User(name, p.name_key(name), addr, newline=newline))
                ok = Send(line(p.OK), (addr,))
                return [ok, *self._publish("join", name, "", exclude=addr)]
            case p.ClassicChat(name=name, text=text):
                pass
            case p.ClassicQuit(name=name):
                text = ""
        if user is None or user.session is not None or user.name != name:
            self.stats["drop.not_you"] += 1
            key = "unknown" if user is None else "notyou"
            return self._reply_error(addr, now, line(p.classic_text(lang, key, name)))
        if isinstance(frame, p.ClassicQuit):
            self._drop_user(user)
            exit_ = Send(line(p.EXIT), (addr,))
            return [exit_, *self._publish("quit", name, "", exclude=addr)]
        if p.bad_text_char(text) is not None:
            self.stats["drop.badtext"] += 1
            return self._reply_error(addr, now, line(p.classic_text(lang, "badtext")))
        if p.text_too_long(text):
            self.stats["drop.toolong"] += 1
            return self._reply_error(addr, now, line(p.classic_text(lang, "toolong")))
        if not self._guard.classic_message_allowed(addr, now):
            self.stats["drop.ratelimited"] += 1
            if self._guard.over_limit(addr, now):
                self.stats["mutes"] += 1
            return self._reply_error(addr, now, line(p.classic_text(lang, "slowdown")))
        return self._publish("message", name, text, exclude=addr)

    # ------------------------------------------------------------------ v2 dialect

    def _login(self, frame: p.Login, addr: Address, now: float) -> list[Effect]:
        effects: list[Effect] = []
        current = self.registry.find_address(addr)
        if current is not None:
            sess = current.session
            if sess is not None and sess.nonce == frame.nonce and current.name == frame.name:
                sess.last_seen = now  # the WELCOME was lost: answer the retry the same way
                if frame.resume is not None:
                    # ...except for a client that was in the room already: it may
                    # have been sent newer events meanwhile, and a WELCOME older
                    # than what it has would read as a reset server (it would
                    # start over and show them twice). It pulls what it lacks.
                    sess.base_id = self._last_id
                return [Send(p.encode(self._welcome(current, frame.nonce)), (addr,))]
        if self.config.validate_addresses:
            key = p.name_key(frame.name)
            if frame.cookie is None or not self._guard.cookies.check(
                frame.cookie, addr, key, frame.nonce, now
            ):
                # Unvalidated: the only answer is a small cookie, and only to a
                # padded request (<= 3x amplification); nothing is kept.
                if frame.size < p.LOGIN_MIN:
                    self.stats["drop.short_login"] += 1
                    return []
                self.stats["cookies"] += 1
                cookie = self._guard.cookies.mint(addr, key, frame.nonce, now)
                return [Send(p.encode(p.Cookie(frame.nonce, cookie)), (addr,))]
        moved = self._migrate(frame, addr, current, now)
        if moved is not None:
            return moved
        replacing = current is not None and current.session is not None
        refusal = self._guard.login_refusal(addr[0], replacing, now)
        if refusal is not None:
            self.stats[f"refused.{refusal}"] += 1
            text = p.classic_text(self.config.lang, refusal).decode()
            return [Send(p.encode(p.Refused(frame.nonce, refusal, text)), (addr,))]
        if current is not None:
            # A new login from an address in use: that client restarted; its old
            # session ends here rather than lingering until the idle timeout.
            self._drop_user(current)
            effects += self._publish("quit", current.name, "", exclude=addr)
        name, why = self._check_new_name(frame.name)
        if why is not None:
            self.stats[f"refused.{why}"] += 1
            text = p.classic_text(self.config.lang, why).decode()
            return [*effects, Send(p.encode(p.Refused(frame.nonce, why, text)), (addr,))]
        resumed = self._resumable(frame.resume, name)
        sid = resumed or self._token()
        seqs = self._ring.seqs_of(sid) if resumed else {}
        base = self._last_id
        bucket = self._guard.session_bucket(now)
        session = Session(sid, frame.nonce, now, base, Outbox(base, base), bucket, seqs)
        user = User(name, p.name_key(name), addr, session)
        welcome = self._welcome(user, frame.nonce)
        self._add(user)
        self._sessions[sid] = user
        self._guard.session_opened(addr[0])
        effects.append(Send(p.encode(welcome), (addr,)))
        if resumed is not None and self._ring.present_at_end(name):
            # Back after a server restart, having never left: the others were not
            # told the user left, so they are not told the user joined either.
            self.stats["resumed"] += 1
            return effects
        return effects + self._publish("join", name, "", exclude=None, session=sid)

    def _migrate(
        self, frame: p.Login, addr: Address, current: User | None, now: float
    ) -> list[Effect] | None:
        """A validated LOGIN resuming a *live* session from a new address: the
        client's NAT rebinding (or network change). The session moves, with its
        window, retransmissions and idempotency map; nobody sees a leave/join."""
        if frame.resume is None:
            return None
        live = self._sessions.get(frame.resume)
        if live is None or live.key != p.name_key(frame.name) or live is current:
            return None
        effects: list[Effect] = []
        if current is not None:  # whoever held the new address is gone from it
            self._drop_user(current)
            effects += self._publish("quit", current.name, "", exclude=addr)
        self._guard.session_closed(live.address[0])
        self.registry.readdress(live, addr)
        self._guard.session_opened(addr[0])
        live.session.nonce = frame.nonce
        live.session.last_seen = now
        live.session.base_id = self._last_id
        self.stats["migrations"] += 1
        return [*effects, Send(p.encode(self._welcome(live, frame.nonce)), (addr,))]

    def _welcome(self, user: User, nonce: str) -> p.Welcome:
        sess: Session = user.session
        rate = str(self.config.rate) if self.config.rate is not None else "off"
        return p.Welcome(nonce, sess.sid, self.config.idle_timeout, sess.base_id, rate)

    def _resumable(self, sid: str | None, name: str) -> str | None:
        """An earlier session id may be taken back (after a server restart) when no
        live session holds it and it was this name's; it is a 128-bit secret only
        that client knew."""
        if sid is None or sid in self._sessions or not 16 <= len(sid) <= 64:
            return None
        return sid if self._ring.session_name(sid) == name else None

    def _v2(self, frame: p.ClientFrame, addr: Address, now: float) -> list[Effect]:
        sid = getattr(frame, "sid", "")
        user = self.registry.find_address(addr)
        if (
            user is None
            or user.session is None
            or not hmac.compare_digest(user.session.sid.encode(), str(sid).encode())
        ):
            self.stats["drop.nosession"] += 1
            err = p.Error("nosession", "not logged in; log in again")
            return self._reply_error(addr, now, p.encode(err))
        session: Session = user.session
        session.last_seen = now
        if session.outbox.heard_at is None:
            session.outbox.heard_at = now
        match frame:
            case p.Say(seq=seq, text=text):
                return self._say(user, seq, text, addr)
            case p.Ack(upto=upto):
                return self._acked(user, min(upto, self._last_id))
            case p.Ping():
                return [Send(p.encode(p.Pong(self._last_id)), (addr,))]
            case p.Pull(after=after, limit=limit):
                return self._pull(after, limit, addr)
            case p.Who():
                return [Send(self._users_frame(), (addr,))]
            case p.Bye():
                self._drop_user(user)
                return [
                    Send(p.encode(p.Goodbye()), (addr,)),
                    *self._publish("quit", user.name, "", exclude=addr),
                ]
        return []

    def _say(self, user: User, seq: int, text: str, addr: Address) -> list[Effect]:
        seqs = user.session.seqs
        if seq in seqs:  # a retry: same answer, nothing stored twice
            self.stats["retries"] += 1
            event = self._ring.get(seqs[seq])
            ts = event.created_at if event is not None else None
            answer: list[Effect] = [Send(p.encode(p.Acked(seq, seqs[seq], ts)), (addr,))]
            frame = self._ring.frame(seqs[seq])
            if frame is not None and seqs[seq] > user.session.outbox.acked:
                answer.append(Send(frame, (addr,)))
            return answer
        if p.bad_text_char(text) is not None:
            self.stats["drop.badtext"] += 1
            return [
                Send(p.encode(p.Error("badtext", "control characters are not allowed")), (addr,))
            ]
        if p.text_too_long(text):
            self.stats["drop.toolong"] += 1
            err = p.Error("toolong", f"the limit is {p.MAX_TEXT} bytes of UTF-8")
            return [Send(p.encode(err), (addr,))]
        bucket = user.session.bucket
        if bucket is not None and not bucket.take(self._now):
            # Not acknowledged: the client retries later and nothing is lost.
            self.stats["drop.ratelimited"] += 1
            if self._guard.over_limit(addr, self._now):
                self.stats["mutes"] += 1
            err = p.Error("slowdown", f"rate limit {self.config.rate} messages/s")
            return self._reply_error(addr, self._now, p.encode(err))
        effects = self._publish(
            "message", user.name, text, exclude=None, session=user.session.sid, seq=seq, sender=user
        )
        seqs[seq] = self._last_id
        if len(seqs) > SEQ_MEMORY:
            del seqs[next(iter(seqs))]
        effects.append(Send(p.encode(p.Acked(seq, self._last_id, self._wall)), (addr,)))
        return effects

    def _acked(self, user: User, upto: int) -> list[Effect]:
        outbox: Outbox = user.session.outbox
        if not outbox.ack(upto, self._now):
            return []
        effects: list[Effect] = []
        addr = (user.address,)
        sid = user.session.sid
        ring = self._ring
        for event_id in outbox.catch_up(self._last_id):  # a held session catches up
            event = ring.get(event_id)
            if event is None:
                break
            outbox.pushed(event_id, self._now)
            if event.seq is not None and event.session == sid:
                continue  # its own message: its ACKED was its copy (see _publish)
            frame = ring.frame(event_id)
            assert frame is not None  # the ring holds event_id
            effects.append(Send(frame, addr))
        if effects:
            self.stats["catchups"] += len(effects)
        return effects

    def _pull(self, after: int, limit: int, addr: Address) -> list[Effect]:
        oldest = self._ring.oldest
        if oldest is None or after >= self._last_id:
            return []
        if after + 1 < oldest:
            return [Send(p.encode(p.Gone(oldest)), (addr,))]
        frames = self._ring.frames(after, min(limit, MAX_PULL))
        return [Send(frame, (addr,)) for frame in frames]

    def _bad(self, frame: p.BadFrame, addr: Address, now: float) -> list[Effect]:
        self.stats[f"drop.{frame.reason}"] += 1
        if frame.reason in ("empty", "oversize"):
            return []  # nothing worth answering, and an answer would help a flood
        user = self.registry.find_address(addr)
        if user is None:
            return []  # an unknown peer's garbage gets no answer
        if frame.dialect == "v2":
            return self._reply_error(addr, now, p.encode(p.Error(frame.reason, frame.detail)))
        if not self._classic_allowed(addr):
            return []
        nl = b"\n" if user.newline else b""
        return self._reply_error(addr, now, f"ERR {frame.detail}".encode() + nl)
