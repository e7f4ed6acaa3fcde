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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from core.errors import ProtolabError
from db import api_keys as key_queries
from db import runs as run_queries
from db.models import MAX_ID, ApiKey

KEY_PREFIX = "pl"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
_KEY_PATTERN = re.compile(r"^pl_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})$")


class ApiKeyError(ProtolabError):
    """A key name that cannot be created or revoked as asked."""


@dataclass(frozen=True)
class KeyInfo:
    """A key as lists show it (never its secret), with its scope: the runs it may call (None: every run) and
    whether it may only list them."""

    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    run_ids: tuple[int, ...] | None = None
    read_only: bool = False

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def scope(self) -> str:
        """One line for lists: "every run, predict" or "runs 3, 5, list only"."""
        runs = "every run" if self.run_ids is None else \
            ("run " if len(self.run_ids) == 1 else "runs ") + ", ".join(map(str, self.run_ids))
        return f"{runs}, {'list only' if self.read_only else 'predict'}"

    def refusal(self, run_id: int | None) -> tuple[str, str] | None:
        """(code, message) when this key may not predict or recommend with run `run_id` (None: an id that is
        not plain digits, which a key limited to some runs is refused), else None."""
        if self.read_only:
            return "read_only_key", (f"key {self.name!r} may only list runs (GET /v1/runs); create a key that may "
                                     "predict with `protolab keys create --name NAME`")
        if self.run_ids is not None and run_id not in self.run_ids:
            allowed = ", ".join(map(str, self.run_ids))
            return "run_out_of_scope", (f"key {self.name!r} may call run{'s' if len(self.run_ids) > 1 else ''} "
                                        f"{allowed} only, not {'this run' if run_id is None else run_id}")
        return None


def hash_secret(secret: str, salt: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


def create_key(s: Session, name: str, *, run_ids: Sequence[int] | None = None,
               read_only: bool = False) -> tuple[KeyInfo, str]:
    """A new key named `name`: (its info, the full key to show once). `run_ids` limits it to those runs
    (each must exist); `read_only` lets it list runs but not predict or recommend."""
    name = (name or "").strip()
    if not NAME_PATTERN.match(name):
        raise ApiKeyError(f"key name {name!r} is not allowed: use 1-80 letters, digits, '.', '_' or '-', "
                        "starting with a letter or digit")
    if key_queries.active_key_named(s, name) is not None:
        raise ApiKeyError(f"a key named {name!r} already exists; revoke it first or pick another name")
    scoped = _checked_runs(s, run_ids)
    prefix, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(32), secrets.token_hex(16)
    row = key_queries.add_key(s, name=name, prefix=prefix, salt=salt, secret_hash=hash_secret(secret, salt),
                              run_ids=scoped, read_only=read_only)
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


def parse_run_ids(text: str) -> list[int]:
    """"3,5" or "3 5" as [3, 5], for the CLI's --runs; an ApiKeyError names what is not a run id."""
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    bad = [p for p in parts if not (p.isascii() and p.isdigit() and int(p) > 0)]
    if bad or not parts:
        raise ApiKeyError(f"--runs takes run ids separated by commas, e.g. --runs 3,5 (not {text!r})")
    return [int(p) for p in parts]


def _checked_runs(s: Session, run_ids: Sequence[int] | None) -> list[int] | None:
    if run_ids is None:
        return None
    ids = sorted({int(r) for r in run_ids})
    if not ids:
        raise ApiKeyError("a key limited to some runs needs at least one run id")
    missing = [r for r in ids if r > MAX_ID or run_queries.get_run(s, r) is None]
    if missing:
        raise ApiKeyError(f"no run {', '.join(map(str, missing))} (see `protolab runs list`)")
    return ids


def _info(row: ApiKey) -> KeyInfo:
    return KeyInfo(name=row.name, prefix=row.prefix, created_at=row.created_at, revoked_at=row.revoked_at,
                   run_ids=None if row.run_ids is None else tuple(int(r) for r in row.run_ids),
                   read_only=bool(row.read_only))
