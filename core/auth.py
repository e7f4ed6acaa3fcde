"""Optional password protection for shared deployments: salted scrypt hashes, constant-time checks.

Set PROTOLAB_PASSWORD_HASH (from `protolab passwd`) or `[auth] password_hash` in
.streamlit/secrets.toml and every page asks for the password. Wrong passwords make the next attempt wait,
longer each time, per browser session and per client address (LoginThrottle).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

_N, _R, _P = 2**14, 8, 1


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return "$".join(["scrypt", str(_N), str(_R), str(_P),
                     base64.b64encode(salt).decode(), base64.b64encode(digest).decode()])


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches `stored` (a hash_password string); malformed hashes never match."""
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.strip().split("$")
        if scheme != "scrypt":
            return False
        salt, expected = base64.b64decode(salt_b64), base64.b64decode(digest_b64)
        actual = hashlib.scrypt(password.encode(), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


class LoginThrottle:
    """A growing wait after wrong passwords, per key (a browser session, a client address): the first
    `free_attempts` wrong ones cost nothing, then each doubles the wait, up to `max_delay_s`. An attempt
    inside the wait is refused without checking the password. Process-wide, thread-safe, bounded in memory."""

    def __init__(self, *, free_attempts: int = 3, base_delay_s: float = 1.0, max_delay_s: float = 300.0,
                 max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.free_attempts, self.base_delay_s, self.max_delay_s = free_attempts, base_delay_s, max_delay_s
        self.max_keys, self.clock = max_keys, clock
        self._failures: dict[str, tuple[int, float]] = {}  # key -> (wrong passwords in a row, when the last was)
        self._lock = threading.Lock()

    def delay(self, failures: int) -> float:
        """The wait after `failures` wrong passwords in a row: 0, 0, 0, 1, 2, 4 ... seconds by default."""
        if failures < self.free_attempts:
            return 0.0
        return min(self.max_delay_s, self.base_delay_s * 2 ** (failures - self.free_attempts))

    def wait_left(self, *keys: str) -> float:
        """Seconds until any of `keys` may try again (0: now)."""
        now = self.clock()
        with self._lock:
            waits = [last + self.delay(n) - now for n, last in (self._failures.get(k, (0, now)) for k in keys)]
        return max([0.0, *waits])

    def failed(self, *keys: str) -> float:
        """Record a wrong password for each key; the wait that now applies."""
        now = self.clock()
        with self._lock:
            if len(self._failures) + len(keys) > self.max_keys:  # a flood of addresses: forget the oldest half
                for key in sorted(self._failures, key=lambda k: self._failures[k][1])[: self.max_keys // 2]:
                    del self._failures[key]
            counts = []
            for key in keys:
                n = self._failures.get(key, (0, now))[0] + 1
                self._failures[key] = (n, now)
                counts.append(n)
        wait = self.delay(max(counts, default=0))
        log.warning("wrong password (%s): %d in a row, next attempt allowed in %g s", ", ".join(keys),
                    max(counts, default=0), wait)
        return wait

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)


LOGIN_THROTTLE = LoginThrottle()  # the app's, shared by every browser session of this server process
