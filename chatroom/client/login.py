"""One login attempt: nonce, cookie round trip, retries with backoff. Pure.

``LOGIN nonce name resume cookie [#room]`` is retried with the *same* nonce, so that a
retry after a lost WELCOME is answered with the same WELCOME rather than
starting a second session. The server first answers ``COOKIE`` (proof that we
receive datagrams at our address); the LOGIN is then sent again at once,
carrying it. A cookie is single-use and short-lived; an expired one just earns a
fresh COOKIE.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from chatroom import protocol as p


def new_nonce(rng: random.Random) -> str:
    return f"{rng.getrandbits(64):016x}"


@dataclass(slots=True)
class LoginAttempt:
    name: str
    nonce: str
    resume: str | None
    started: float
    retry_at: float
    rto: float
    rto_max: float
    cookie: str | None = None
    #: When the current LOGIN last went out, and how often (Karn: a round-trip
    #: sample only from one sent once).
    sent_at: float = 0.0
    sends: int = 1
    #: False once a second cookie came: answers can no longer be told apart.
    timeable: bool = True
    #: The room to start in (the server's default, #lobby, when it is that).
    room: str = p.LOBBY

    @classmethod
    def start(
        cls,
        name: str,
        rng: random.Random,
        now: float,
        *,
        resume: str | None,
        rto: float,
        rto_max: float,
        room: str = p.LOBBY,
    ) -> LoginAttempt:
        nonce = new_nonce(rng)
        return cls(name, nonce, resume, now, now + rto, rto, rto_max, sent_at=now, room=room)

    def rtt_sample(self, now: float) -> float | None:
        """The round trip of the LOGIN just answered, if it was sent once. The
        handshake is the first measure of the path the client gets (QUIC seeds its
        estimator the same way), so its first messages and pulls do not wait out
        the 1 s initial timeout."""
        return now - self.sent_at if self.sends == 1 and self.timeable else None

    def frame(self) -> bytes:
        login = p.Login(self.nonce, self.name, self.resume, self.cookie, self.room)
        return p.encode_client(login)

    def retry_due(self, now: float) -> bool:
        """True when the LOGIN should be sent again (the timer backs off)."""
        if now < self.retry_at:
            return False
        self.rto = min(self.rto * 2, self.rto_max)
        self.retry_at = now + self.rto
        self.sent_at = now
        self.sends += 1
        return True

    def take_cookie(self, cookie: p.Cookie, now: float, rto: float) -> bool:
        """A COOKIE for this attempt: True if the LOGIN should go out again now."""
        if cookie.nonce != self.nonce or cookie.cookie == self.cookie:
            return False
        if self.cookie is not None:
            # A second COOKIE answers an earlier LOGIN (retried before the first
            # came back): which send the next answer belongs to is unknowable.
            self.timeable = False
        self.cookie = cookie.cookie
        self.rto = rto
        self.retry_at = now + rto
        self.sent_at, self.sends = now, 1  # the LOGIN with the cookie goes out now
        return True

    def start_over(self, rng: random.Random, now: float) -> None:
        """Refused while logging in again: try afresh later (new nonce, no cookie)."""
        self.nonce = new_nonce(rng)
        self.cookie = None
        self.retry_at = now + self.rto_max
