"""API keys for `protolab serve`: made here, shown once, stored only as a salted SHA-256 of their secret.

A key reads `pl_<prefix>_<secret>`: the prefix finds the row, the secret (32 random bytes) is checked in
constant time. Random secrets of that length need no slow password hash (scrypt would cost every request
tens of milliseconds); the salt keeps two stores from sharing a hash.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from core.errors import ProtolabError
from db import api_keys as key_queries
from db.models import ApiKey

KEY_PREFIX = "pl"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
_KEY_PATTERN = re.compile(r"^pl_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})$")


class ApiKeyError(ProtolabError):
    """A key name that cannot be created or revoked as asked."""


@dataclass(frozen=True)
class KeyInfo:
    """A key as lists show it: never its secret."""

    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def hash_secret(secret: str, salt: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


def create_key(s: Session, name: str) -> tuple[KeyInfo, str]:
    """A new key named `name`: (its info, the full key to show once)."""
    name = (name or "").strip()
    if not NAME_PATTERN.match(name):
        raise ApiKeyError(f"key name {name!r} is not allowed: use 1-80 letters, digits, '.', '_' or '-', "
                        "starting with a letter or digit")
    if key_queries.active_key_named(s, name) is not None:
        raise ApiKeyError(f"a key named {name!r} already exists; revoke it first or pick another name")
    prefix, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(32), secrets.token_hex(16)
    row = key_queries.add_key(s, name=name, prefix=prefix, salt=salt, secret_hash=hash_secret(secret, salt))
    return _info(row), f"{KEY_PREFIX}_{prefix}_{secret}"


def revoke_key(s: Session, name: str) -> KeyInfo:
    """Revoke the active key named `name` (kept, marked revoked, so lists show when it stopped working)."""
    row = key_queries.active_key_named(s, name)
    if row is None:
        known = [k.name for k in key_queries.list_keys(s, include_revoked=False)]
        raise ApiKeyError(f"no active key named {name!r}" + (f" (active keys: {', '.join(known)})" if known
                                                          else " (there are no active keys)"))
    key_queries.revoke(s, row)
    return _info(row)


def list_keys(s: Session, include_revoked: bool = True) -> list[KeyInfo]:
    return [_info(k) for k in key_queries.list_keys(s, include_revoked=include_revoked)]


def verify_key(s: Session, token: str) -> KeyInfo | None:
    """The active key `token` is, or None (malformed, unknown, revoked or wrong secret)."""
    match = _KEY_PATTERN.match((token or "").strip())
    if not match:
        return None
    row = key_queries.key_by_prefix(s, match.group(1))
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(hash_secret(match.group(2), row.salt), row.secret_hash):
        return None
    return _info(row)


def _info(row: ApiKey) -> KeyInfo:
    return KeyInfo(name=row.name, prefix=row.prefix, created_at=row.created_at, revoked_at=row.revoked_at)
