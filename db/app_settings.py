"""Query functions for the settings saved from the app (db.models.AppSetting): typed by their key, text values.
They take the session first and never commit."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from db.enums import AppSettingKey
from db.models import AppSetting, utcnow

_INSERT = {"postgresql": postgresql_insert, "sqlite": sqlite_insert}


def get_setting(s: Session, key: AppSettingKey) -> str | None:
    """The saved value, or None when it was never saved (or cleared)."""
    return s.scalar(select(AppSetting.value).where(AppSetting.key == AppSettingKey(key).value))


def set_setting(s: Session, key: AppSettingKey, value: str) -> None:
    """Save `value` under `key`, replacing what was there. One upsert statement: two people saving at once on
    PostgreSQL must not both try to insert the row (SQLite's writers take turns anyway)."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"a setting's value is non-empty text (clear_setting removes one); got {value!r}")
    now = utcnow()
    statement = _INSERT[s.get_bind().dialect.name](AppSetting).values(key=AppSettingKey(key).value, value=value,
                                                                      updated_at=now)
    s.execute(statement.on_conflict_do_update(index_elements=[AppSetting.key],
                                              set_={"value": value, "updated_at": now}))


def clear_setting(s: Session, key: AppSettingKey) -> bool:
    """Forget the saved value; whether there was one."""
    return s.execute(delete(AppSetting).where(AppSetting.key == AppSettingKey(key).value)).rowcount > 0


def saved_settings(s: Session) -> dict[AppSettingKey, str]:
    """Every saved setting this version knows (a key a newer version saved is left out)."""
    known = {k.value for k in AppSettingKey}
    return {AppSettingKey(row.key): row.value for row in s.scalars(select(AppSetting)) if row.key in known}
