"""Query functions for API keys. They take the session first and never commit; hashing lives in core.api.keys."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import ApiKey, utcnow


def add_key(s: Session, *, name: str, prefix: str, salt: str, secret_hash: str,
            run_ids: list[int] | None = None, read_only: bool = False) -> ApiKey:
    key = ApiKey(name=name, prefix=prefix, salt=salt, secret_hash=secret_hash, created_at=utcnow(),
                 run_ids=run_ids, read_only=read_only)
    s.add(key)
    s.flush()
    return key


def active_key_named(s: Session, name: str) -> ApiKey | None:
    return s.scalars(select(ApiKey).where(ApiKey.name == name, ApiKey.revoked_at.is_(None))).first()


def key_by_prefix(s: Session, prefix: str) -> ApiKey | None:
    return s.scalars(select(ApiKey).where(ApiKey.prefix == prefix)).first()


def list_keys(s: Session, *, include_revoked: bool = True) -> Sequence[ApiKey]:
    q = select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id.desc())
    if not include_revoked:
        q = q.where(ApiKey.revoked_at.is_(None))
    return s.scalars(q).all()


def revoke(s: Session, key: ApiKey) -> None:
    key.revoked_at = utcnow()
