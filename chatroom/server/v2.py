"""The v2 dialect: login with a cookie, sessions, and per-conversation delivery.

Every conversation (room or direct) has its own contiguous positions; a session
receives every event of every conversation it is in from its entry on (its own
join included; its own messages as ACKED), acknowledges per conversation, and
pulls holes per conversation. See docs/protocol.md for the grammar.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable
from typing import Final

from chatroom import protocol as p
from chatroom.events import DM_PREFIX, LOBBY, dm_key
from chatroom.registry import Address, User
from chatroom.server.conversation import Conversation, dm_peer
from chatroom.server.crowd import shown
from chatroom.server.effects import Effect, Send
from chatroom.server.membership import Membership
from chatroom.server.replies import Replies, text_problem
from chatroom.server.sessions import Session
from chatroom.server.storage_state import UNAVAILABLE
from chatroom.server.timers import IdleWheel, Retransmits

#: Most events answered to one PULL (the client pages for more).
MAX_PULL: Final = 32
#: Bytes of a server frame's fixed part, kept free when filling one with a list.
_LIST_ROOM: Final = 40

Frame = p.Say | p.Ack | p.Ping | p.Pull | p.Who | p.Bye | p.Join | p.Part | p.ListRooms


@functools.lru_cache(maxsize=4096)
def _room_key(chan: str) -> str | None:
    """``#Dev`` -> ``#dev``; None for an invalid room. Cached: every ACK and PULL
    names its conversation, and the check normalises Unicode (bounded, so a
    flood of names only evicts entries)."""
    room, why = p.check_room(chan)
    return None if why is not None else p.room_key(room)


@functools.lru_cache(maxsize=4096)
def _peer_key(chan: str) -> str:
    """``@Bob`` -> ``bob``: only normalised, not validated (a name that could
    not be registered is simply never online)."""
    return p.name_key(chan[len(p.PEER_PREFIX) :])


def _limit(key: str, user: User) -> int:
    """The longest text ``user`` may say in conversation ``key`` (as the
    receivers' EV frames will name it: the room, or ``@`` and the sender's key)."""
    where = p.PEER_PREFIX + user.key if key.startswith(DM_PREFIX) else key
    return p.text_limit(where, user.name)


def _send(frame: p.ServerFrame, addr: Address, reveals: int = 0) -> Send:
    return Send(p.encode(frame), (addr,), reveals)


class V2Dialect:
    def __init__(self, members: Membership, replies: Replies, token: Callable[[], str]) -> None:
        self.members = members
        self.replies = replies
        self._token = token
        #: Streams with a retransmission deadline, and sessions by when they
        #: were last heard: a tick costs what is due, not one look per session.
        self.retransmits = Retransmits()
        self.idle = IdleWheel()

    # ------------------------------------------------------------------ names

    def key_of(self, user: User, chan: str) -> str | None:
        """The conversation a frame of ``user`` names, or None if it cannot be
        one (an invalid room; a direct conversation with oneself)."""
        if chan.startswith(p.ROOM_PREFIX):
            return _room_key(chan)
        peer_key = _peer_key(chan)
        return None if peer_key == user.key else dm_key(user.key, peer_key)

    # ------------------------------------------------------------------ login

    def login(self, frame: p.Login, addr: Address, now: float, wall: float) -> list[Effect]:
        m = self.members
        current = m.directory.find_address(addr)
        if current is not None:
            sess = current.session
            if sess is not None and sess.nonce == frame.nonce and current.name == frame.name:
                sess.last_seen = now  # the WELCOME was lost: answer the retry the same way
                self.idle.heard(current, now)
                if frame.resume is not None:
                    # ...except for a client that was in the room already: it may
                    # have been sent newer events meanwhile, and a WELCOME older
                    # than what it has would read as a reset server (it would
                    # start over and show them twice). It pulls what it lacks.
                    sess.base_id = m.conversations.open(sess.home).last_seq
                return [_send(self._welcome(sess), addr)]
        if m.config.validate_addresses:
            key = p.name_key(frame.name)
            if frame.cookie is None or not m.guard.cookies.check(
                frame.cookie, addr, key, frame.nonce, now
            ):
                # Unvalidated: the only answer is a small cookie, and only to a
                # padded request (<= 3x amplification); nothing is kept.
                if frame.size < p.LOGIN_MIN:
                    m.stats["drop.short_login"] += 1
                    return []
                m.stats["cookies"] += 1
                cookie = m.guard.cookies.mint(addr, key, frame.nonce, now)
                return [_send(p.Cookie(frame.nonce, cookie), addr)]
        moved = self._migrate(frame, addr, current, now, wall)
        if moved is not None:
            return moved
        replacing = current is not None and current.session is not None
        refusal = m.guard.login_refusal(addr[0], replacing, now)
        if refusal is None and not m.storage.writable:
            refusal = "storage"  # a join must be stored before anyone sees it
        if refusal is not None:
            return self._refuse(frame, refusal, addr)
        effects: list[Effect] = []
        if current is not None:
            # A new login from an address in use: that client restarted; its old
            # session ends here rather than lingering until the idle timeout.
            effects += m.depart(current, "quit", now, wall, exclude=addr)
        name, why = m.directory.check_new_name(frame.name)
        home, bad_room = p.check_room(frame.room or LOBBY)
        why = why or bad_room
        if why is not None:
            return [*effects, *self._refuse(frame, why, addr)]
        return effects + self._open_session(frame, name, p.room_key(home), addr, now, wall)

    def _refuse(self, frame: p.Login, why: str, addr: Address) -> list[Effect]:
        self.members.stats[f"refused.{why}"] += 1
        text = p.classic_text(self.members.config.lang, why).decode()
        return [_send(p.Refused(frame.nonce, why, text), addr)]

    def _open_session(
        self, frame: p.Login, name: str, home: str, addr: Address, now: float, wall: float
    ) -> list[Effect]:
        m = self.members
        resumed = self._resumable(frame.resume, name)
        sid = resumed or self._token()
        why = m.directory.admit(name, sid)
        if why is not None:
            return self._refuse(frame, why, addr)
        conv = m.conversations.open(home)
        bucket = m.guard.session_bucket(now)
        session = Session(sid, frame.nonce, now, home, conv.last_seq, bucket)
        if resumed is not None:
            session.resumed = True
            for c in m.conversations.in_memory():
                for e in c.ring.messages_of(resumed):
                    assert e.seq is not None
                    session.remember(e.seq, c.key, e.room_seq)
        user = User(name, p.name_key(name), addr, session)
        session.alarm = functools.partial(self.retransmits.schedule, user)
        self.idle.heard(user, now)
        m.arrive(user)
        m.guard.session_opened(addr[0])
        # Back after a server restart, having never left: the others were not
        # told the user left, so they are not told the user joined either.
        notice = not (resumed is not None and conv.ring.present_at_end(name))
        if not notice:
            m.stats["resumed"] += 1
        base, effects = m.enter(user, conv, now, wall, notice=notice)
        session.base_id = session.joined_at[home] = base
        return [_send(self._welcome(session), addr), *effects]

    def _migrate(
        self, frame: p.Login, addr: Address, current: User | None, now: float, wall: float
    ) -> list[Effect] | None:
        """A validated LOGIN resuming a *live* session from a new address: the
        client's NAT rebinding (or network change). The session moves, with its
        streams, retransmissions and idempotency map; nobody sees a leave/join."""
        m = self.members
        if frame.resume is None:
            return None
        live = m.directory.sessions.get(frame.resume)
        if live is None or live.key != p.name_key(frame.name) or live is current:
            return None
        effects: list[Effect] = []
        if current is not None:  # whoever held the new address is gone from it
            effects += m.depart(current, "quit", now, wall, exclude=addr)
        m.guard.session_closed(live.address[0])
        rooms = [c.members for c in m.conversations_of(live)]
        m.directory.readdress(live, addr, rooms)
        for conv in m.conversations_of(live):
            m.crowds.readdressed(conv)
        m.guard.session_opened(addr[0])
        sess: Session = live.session
        sess.nonce = frame.nonce
        sess.last_seen = now
        self.idle.heard(live, now)
        sess.base_id = m.conversations.open(sess.home).last_seq
        m.stats["migrations"] += 1
        return [*effects, _send(self._welcome(sess), addr)]

    def _welcome(self, sess: Session) -> p.Welcome:
        config = self.members.config
        rate = str(config.rate) if config.rate is not None else "off"
        return p.Welcome(sess.nonce, sess.sid, config.idle_timeout, sess.base_id, rate, sess.home)

    def _resumable(self, sid: str | None, name: str) -> str | None:
        """An earlier session id may be taken back (after a server restart) when no
        live session holds it and it was this name's; it is a 128-bit secret only
        that client knew."""
        m = self.members
        if sid is None or sid in m.directory.sessions or not 16 <= len(sid) <= 64:
            return None
        for conv in m.conversations.in_memory():
            if (held_by := conv.ring.session_name(sid)) is not None:
                return sid if held_by == name else None
        return None

    # ------------------------------------------------------------------ session frames

    def handle(self, frame: Frame, addr: Address, now: float, wall: float) -> list[Effect]:
        m = self.members
        user = m.directory.find_address(addr)
        if (
            user is None
            or user.session is None
            or not hmac.compare_digest(user.session.sid.encode(), frame.sid.encode())
        ):
            m.stats["drop.nosession"] += 1
            err = p.Error("nosession", "not logged in; log in again")
            return self.replies.error(addr, now, p.encode(err))
        user.session.hear(now)
        self.idle.heard(user, now)
        match frame:
            case p.Say():
                return self._say(user, frame, addr, now, wall)
            case p.Ack(upto=upto, chan=chan):
                return self._acked(user, chan, upto, now)
            case p.Ping():
                return [_send(self._pong(user), addr)]
            case p.Pull(after=after, limit=limit, chan=chan):
                return self._pull(user, chan, after, limit, addr, now)
            case p.Who(room=room):
                return [_send(self._users(user, room), addr)]
            case p.Bye():
                return [_send(p.Goodbye(), addr), *m.depart(user, "quit", now, wall, exclude=addr)]
            case p.Join(chan=chan):
                return self._join(user, chan, addr, now, wall)
            case p.Part(room=room):
                return self._part(user, room, addr, now, wall)
            case p.ListRooms():
                return [_send(self._rooms(), addr)]
        return []  # pragma: no cover - exhaustive

    def _say(
        self, user: User, frame: p.Say, addr: Address, now: float, wall: float
    ) -> list[Effect]:
        m = self.members
        session: Session = user.session
        seq = frame.seq
        if seq in session.seqs:  # a retry: same answer, nothing stored twice
            m.stats["retries"] += 1
            return self._acked_again(user, seq, addr)
        if seq in session.pending:  # a retry while the cluster numbers it
            m.stats["retries"] += 1
            return []
        key = self.key_of(user, frame.chan)
        refused = self._text_refused(frame.text, key, user, addr)
        if refused is not None:
            return refused
        if key is None:
            why = "self" if frame.chan.startswith(p.PEER_PREFIX) else "badroom"
            return self._reject(seq, why, frame.chan, addr)
        to: str | None = None
        if key.startswith(DM_PREFIX):
            to = self._peer_name(key, user)
            if to is None:
                why = "classic" if self._classic_peer(key, user) else "offline"
                return self._reject(seq, why, frame.chan, addr)
        elif key not in session.subs:
            return self._reject(seq, "notmember", frame.chan, addr)
        if not self._may_store(user, addr, now):
            return self._slow_down(addr, now)
        conv = m.conversations.open(key)
        if to is not None:
            self._open_direct(user, conv, now)
        effects = m.publish(
            conv, "message", user.name, frame.text, now, wall,
            session=session.sid, seq=seq, sender=user, to=to,
        )  # fmt: skip
        if not m.log.numbering:
            session.pending.add(seq)  # acknowledged once numbered (replica.py)
            return effects
        session.remember(seq, key, conv.last_seq)
        acked = p.Acked(seq, conv.last_seq, wall, conv.label_for(user.key))
        effects.append(_send(acked, addr, m.log.last_id))
        return effects

    def _text_refused(
        self, text: str, key: str | None, user: User, addr: Address
    ) -> list[Effect] | None:
        """The error for a text that cannot be said where it is said, or None."""
        stats = self.members.stats
        problem = text_problem(text)
        if problem is not None:
            stats[f"drop.{problem}"] += 1
            detail = (
                "control characters are not allowed"
                if problem == "badtext"
                else f"the limit is {p.MAX_TEXT} bytes of UTF-8"
            )
            return [_send(p.Error(problem, detail), addr)]
        # A long room or name leaves less room in the EV (the encode only when it
        # could matter: len * 4 bounds the UTF-8 size).
        limit = p.MAX_TEXT if key is None else _limit(key, user)
        if len(text) * 4 > limit and len(text.encode()) > limit:
            stats["drop.toolong"] += 1
            err = p.Error("toolong", f"the limit here is {limit} bytes of UTF-8")
            return [_send(err, addr)]
        return None

    def _peer_name(self, key: str, user: User) -> str | None:
        """The other party of direct conversation ``key``, if online: on this
        node (a v2 session), or on another node of the cluster."""
        directory = self.members.directory
        peer_key = dm_peer(key, user.key)
        peer = directory.get(peer_key)
        if peer is not None:
            return peer.name if peer.session is not None else None
        return directory.remote.get(peer_key)

    def _classic_peer(self, key: str, user: User) -> bool:
        """The other party of direct conversation ``key`` is online here in
        the classic dialect, which has no direct messages (it is in /who, so
        "not online" would be wrong)."""
        peer = self.members.directory.get(dm_peer(key, user.key))
        return peer is not None and peer.session is None

    def _open_direct(self, user: User, conv: Conversation, now: float) -> None:
        """Both parties follow a direct conversation from its first message;
        a party on another node of a cluster subscribes there, when the message
        reaches its node (replica.py)."""
        peer = self.members.directory.get(dm_peer(conv.key, user.key))
        for party in (user, peer) if peer is not None else (user,):
            if conv.key not in party.session.subs:
                self.members.open_direct(party, conv, now)

    def _reject(self, seq: int, why: str, chan: str, addr: Address) -> list[Effect]:
        self.members.stats[f"rejected.{why}"] += 1
        text = {
            "offline": f"{chan[1:]} is not online",
            "classic": f"{chan[1:]} uses the classic dialect, which has no direct messages",
            "notmember": f"you are not in {chan}",
            "badroom": f"not a valid room: {chan}",
            "self": "that is you",
        }[why]
        return [_send(p.Rejected(seq, why, text), addr)]

    def _acked_again(self, user: User, seq: int, addr: Address) -> list[Effect]:
        session: Session = user.session
        key, pos = session.seqs[seq]
        conv = self.members.conversations.get(key)
        if conv is None:
            return [_send(p.Acked(seq, pos, None), addr)]
        event = conv.ring.get(pos)
        if event is None:  # older than the ring: long committed
            return [_send(p.Acked(seq, pos, None, conv.label_for(user.key)), addr)]
        acked = p.Acked(seq, pos, event.created_at, conv.label_for(user.key))
        answer: list[Effect] = [_send(acked, addr, event.id)]
        outbox = session.subs.get(key)
        frame = conv.frame(pos, user.key)
        # (In a large room the client pulls what it lacks: nothing is pushed twice.)
        if frame is not None and outbox is not None and pos > outbox.acked and not conv.crowd:
            answer.append(Send(frame, (addr,), event.id))
        return answer

    def _acked(self, user: User, chan: str, upto: int, now: float) -> list[Effect]:
        key = self.key_of(user, chan)
        session: Session = user.session
        outbox = session.subs.get(key) if key is not None else None
        conv = self.members.conversations.get(key) if key is not None else None
        if conv is not None and conv.crowd is not None:
            return []  # a large room keeps no per-member stream (crowd.py)
        if outbox is None or conv is None or not outbox.ack(min(upto, conv.last_seq), now):
            return []
        effects: list[Effect] = []
        addr = (user.address,)
        for pos in outbox.catch_up(conv.last_seq):  # a held session catches up
            event = conv.ring.get(pos)
            if event is None:
                break
            outbox.pushed(pos, now)
            if event.seq is not None and event.session == session.sid:
                continue  # its own message: its ACKED was its copy (see fanout.py)
            frame = conv.frame(pos, user.key)
            assert frame is not None  # the ring holds pos
            effects.append(Send(frame, addr, event.id))
        if effects:
            self.members.stats["catchups"] += len(effects)
        return effects

    def _pull(
        self, user: User, chan: str, after: int, limit: int, addr: Address, now: float
    ) -> list[Effect]:
        key = self.key_of(user, chan)
        conv = self.members.conversations.get(key) if key is not None else None
        if conv is None or key not in user.session.subs:
            err = p.Error("notmember", f"you are not in {chan}")
            return self.replies.error(addr, now, p.encode(err))
        label = conv.label_for(user.key)
        self.members.crowds.pulled(conv, addr, now)
        if after >= conv.last_seq:
            return []
        oldest = conv.ring.oldest
        if oldest is None or after + 1 < oldest:
            # Not in memory (any more): the client's history starts there.
            return [_send(p.Gone(oldest or conv.last_seq + 1, label), addr)]
        # While the database fails, only what is committed is answered: the rest
        # could not be sent (the loop would hold it) and the client pulls again.
        storage = self.members.storage
        committed = storage.committed if not storage.writable else None
        sends: list[Effect] = []
        for pos in range(after + 1, min(conv.last_seq, after + min(limit, MAX_PULL)) + 1):
            event = conv.ring.get(pos)
            frame = conv.frame(pos, user.key)
            if event is None or frame is None or (committed is not None and event.id > committed):
                break  # not stored yet (the database is failing): pulled again later
            sends.append(Send(frame, (addr,), event.id))
        return sends

    def _pong(self, user: User) -> p.Pong:
        conversations = self.members.conversations
        others: list[tuple[str, int]] = []
        size = _LIST_ROOM
        for key in user.session.subs:
            conv = conversations.get(key)
            if key == LOBBY or conv is None:
                continue
            label = conv.label_for(user.key)
            size += len(label.encode()) + 22
            if size >= p.MAX_DATAGRAM:
                break
            others.append((label, shown(conv)))
        return p.Pong(shown(conversations.lobby), tuple(others))

    def _users(self, user: User, room: str) -> p.Users:
        key = self.key_of(user, room)
        conv = self.members.conversations.get(key) if key is not None else None
        label = key if key is not None else room
        if conv is None:
            return p.Users(0, (), label)
        names: list[str] = []
        size = _LIST_ROOM + len(label.encode())
        for name in conv.names():
            size += len(name.encode()) + 1
            if size < p.MAX_DATAGRAM:
                names.append(name)
        return p.Users(conv.count(), tuple(names), label)

    def _rooms(self) -> p.RoomList:
        rooms = sorted((c.key, c.count()) for c in self.members.conversations.rooms())
        shown: list[tuple[str, int]] = []
        size = _LIST_ROOM
        for room, count in rooms:
            size += len(room.encode()) + 12
            if size >= p.MAX_DATAGRAM:
                break
            shown.append((room, count))
        return p.RoomList(len(rooms), tuple(shown))

    def _join(self, user: User, chan: str, addr: Address, now: float, wall: float) -> list[Effect]:
        m = self.members
        session: Session = user.session
        key = self.key_of(user, chan)
        if key is None:
            err = p.Error("badroom", f"not a valid room or name: {chan}")
            return self.replies.error(addr, now, p.encode(err))
        if key in session.subs:  # a retry, or already there
            conv = m.conversations.open(key)
            base = session.joined_at.get(key, session.subs[key].acked)
            return [_send(p.Joined(conv.label_for(user.key), base), addr)]
        if len(session.subs) >= m.config.max_conversations:
            err = p.Error("toomany", f"at most {m.config.max_conversations} rooms at once")
            return self.replies.error(addr, now, p.encode(err))
        if key[0] != DM_PREFIX and not self._may_store(user, addr, now):
            return self._slow_down(addr, now)
        conv = m.conversations.open(key)
        notice = not (session.resumed and conv.ring.present_at_end(user.name))
        base, effects = m.enter(user, conv, now, wall, notice=notice)
        session.joined_at[key] = base
        return [_send(p.Joined(conv.label_for(user.key), base), addr), *effects]

    def _part(self, user: User, room: str, addr: Address, now: float, wall: float) -> list[Effect]:
        m = self.members
        key = self.key_of(user, room)
        conv = m.conversations.get(key) if key is not None else None
        label = conv.label_for(user.key) if conv is not None else room
        done = _send(p.Parted(label), addr)
        if conv is None or key not in user.session.subs:
            return [done]
        if conv.is_room and not self._may_store(user, addr, now):
            return self._slow_down(addr, now)
        return [done, *m.leave(user, conv, "quit", now, wall, exclude=addr)]

    def _may_store(self, user: User, addr: Address, now: float) -> bool:
        """Whether the session may have one more event stored now: a message, or
        a join or leave of a room (each is stored and sent to the whole room, so
        they share the message rate; otherwise JOIN/PART in a loop would be a
        flood that no limit sees), and the database can be written."""
        if not self.members.storage.writable:
            self.members.stats["refused.storage"] += 1
            return False
        bucket = user.session.bucket
        if bucket is None or bucket.take(now):
            return True
        self.members.stats["drop.ratelimited"] += 1
        if self.members.guard.over_limit(addr, now):
            self.members.stats["mutes"] += 1
        return False

    def _slow_down(self, addr: Address, now: float) -> list[Effect]:
        """Not done and not acknowledged: the client retries later, nothing is lost."""
        if not self.members.storage.writable:
            err = p.Error("storage", UNAVAILABLE)
        else:
            err = p.Error("slowdown", f"rate limit {self.members.config.rate} messages/s")
        return self.replies.error(addr, now, p.encode(err))

    # ------------------------------------------------------------------ time

    def on_timer(self, now: float) -> list[Effect]:
        """Retransmit what is overdue: the streams whose deadline came, from the
        heap (timers.py). Not while the database cannot be written: what is not
        committed cannot be sent, and what is has been sent already (the
        timers back off)."""
        conversations = self.members.conversations
        effects: list[Effect] = []
        if not self.members.storage.writable:
            return effects
        for user, key, outbox in list(self.retransmits.due(now)):
            conv = conversations.get(key)
            for pos in outbox.expired(now):
                event = conv.ring.get(pos) if conv is not None else None
                frame = conv.frame(pos, user.key) if conv is not None else None
                if event is not None and frame is not None:
                    self.members.stats["retransmits"] += 1
                    effects.append(Send(frame, (user.address,), event.id))
            self.retransmits.schedule(user, key, outbox)
        return effects

    def stale(self, now: float) -> list[User]:
        """Sessions silent for the idle timeout (each once; from the wheel)."""
        limit = now - self.members.config.idle_timeout
        online = self.members.directory.sessions
        return [u for u in self.idle.silent(limit) if online.get(u.session.sid) is u]
