"""Stateless login cookies: how the server validates an address before trusting it.

A cookie is ``<ts>.<mac>``: the mint time (whole seconds of the room's monotonic
clock) and an HMAC-SHA256 over (key, address, name key, nonce, ts), truncated
to 128 bits. The server keeps nothing for a login attempt until the client
echoes a valid cookie, which proves it receives datagrams at that address
(QUIC's Retry token and DTLS's HelloVerifyRequest do the same). Keys rotate every
``ROTATE`` seconds; the previous key is still accepted so a cookie minted just
before a rotation stays usable for its whole ``LIFETIME``. Each cookie is accepted
once: the used ones are remembered only until they expire anyway.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Final

LIFETIME: Final = 10.0
ROTATE: Final = 30.0


class CookieJar:
    """Mints and checks cookies. ``secret`` supplies fresh random keys (bytes)."""

    def __init__(self, secret: Callable[[], bytes]) -> None:
        self._secret = secret
        self._key = secret()
        self._previous = self._key
        self._rotated_at: float | None = None
        self._used: dict[str, float] = {}

    def _rotate(self, now: float) -> None:
        if self._rotated_at is None:
            self._rotated_at = now
        elif now - self._rotated_at >= ROTATE:
            self._previous, self._key = self._key, self._secret()
            self._rotated_at = now
            self._used = {c: t for c, t in self._used.items() if now - t < LIFETIME}

    @staticmethod
    def _mac(key: bytes, addr: tuple[str, int], name_key: str, nonce: str, ts: int) -> str:
        msg = f"{addr[0]}|{addr[1]}|{name_key}|{nonce}|{ts}".encode()
        return hmac.new(key, msg, hashlib.sha256).hexdigest()[:32]

    def mint(self, addr: tuple[str, int], name_key: str, nonce: str, now: float) -> str:
        self._rotate(now)
        ts = int(now)
        return f"{ts}.{self._mac(self._key, addr, name_key, nonce, ts)}"

    def check(
        self, cookie: str, addr: tuple[str, int], name_key: str, nonce: str, now: float
    ) -> bool:
        """True once for a fresh, authentic cookie bound to these values."""
        self._rotate(now)
        ts_s, _, mac = cookie.partition(".")
        if not ts_s.isascii() or not ts_s.isdigit() or len(ts_s) > 12 or len(mac) != 32:
            return False
        ts = int(ts_s)
        if not 0 <= now - ts <= LIFETIME or cookie in self._used:
            return False
        for key in (self._key, self._previous):
            if hmac.compare_digest(mac, self._mac(key, addr, name_key, nonce, ts)):
                self._used[cookie] = now
                return True
        return False
