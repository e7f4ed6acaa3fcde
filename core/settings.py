"""Where Protolab keeps its data and which database it talks to.

Both come from the environment so the same code serves a laptop, a shared GPU
box and a cloud deployment: PROTOLAB_HOME (data folder) and DATABASE_URL.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from db.engine import set_url_source


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str

    @property
    def datasets_dir(self) -> Path:
        return self.home / "datasets"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"


def load_settings() -> Settings:
    """Read the settings from the environment (re-read on every call, so tests can patch it)."""
    home = Path(os.environ.get("PROTOLAB_HOME") or Path.cwd() / "data").expanduser().resolve()
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{home / 'protolab.db'}"
    return Settings(home=home, database_url=url)


def redact_url(url: str) -> str:
    """Hide the password of a database URL so it can be shown on a page or in a log."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is still not printed in full
        return url.split("://", 1)[0] + "://***"


def dataset_dir(dataset_id: int) -> Path:
    """The folder of one dataset; derived from its id only, never from a user's file name."""
    return load_settings().datasets_dir / str(int(dataset_id))


def run_dir(run_id: int) -> Path:
    """The artifact folder of one run; derived from its id only."""
    return load_settings().runs_dir / str(int(run_id))


def database_url() -> str:
    return load_settings().database_url


# db/ takes its URL from the application: whenever a query names no database, it is the one configured here
# (read again on every call, so a test or a worker that changes DATABASE_URL is followed).
set_url_source(database_url)
