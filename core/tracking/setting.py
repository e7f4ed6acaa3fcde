"""Where MLflow's tracking URI and experiment come from: the environment wins (MLFLOW_TRACKING_URI,
PROTOLAB_MLFLOW_EXPERIMENT), else what a user saved on Home ("Experiment tracking"), else MLflow is off.

`current()` reads the saved setting from the database each time it is asked, never caching it: a worker asks when it
starts a run, a search's driver when it opens its parent run, export-mlflow when it starts, and a worker daemon that
runs for days must follow a change made in the app without a restart. A URI is checked for its form before it is
saved (no MLflow import: pages must not pay for it); mlflow_runs.check_connection reaches it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from core import settings
from core.errors import ProtolabError
from db import app_settings, read_scope, session_scope
from db.enums import AppSettingKey

ENVIRONMENT, SAVED, OFF, DEFAULT = "environment", "saved", "off", "default"  # where a value in effect comes from
NOT_CONFIGURED = ("MLflow is not configured: set MLFLOW_TRACKING_URI to its tracking server or store (e.g. "
                  "http://127.0.0.1:5000 or sqlite:///mlflow.db), or save one on Home under 'Experiment tracking'")
ACCEPTED = ("http(s)://host[:port], file:///folder, sqlite:///path/to/mlflow.db, postgresql://…, mysql://…, "
            "databricks, or a local folder")
_DATABASES = ("sqlite", "postgresql", "mysql", "mssql")  # MLflow's SQLAlchemy stores (a `+driver` suffix allowed)
_HOST_PORT = re.compile(r"^[\w.-]+:\d+(/.*)?$")  # "localhost:5000": a server without its scheme


class TrackingSettingError(ProtolabError):
    """A tracking URI or experiment name that MLflow would not take; nothing was saved."""


@dataclass(frozen=True)
class Tracking:
    """What is in effect now, where each part comes from, and what the app holds (shown even when overridden)."""

    uri: str  # "" when MLflow is off
    uri_from: str  # ENVIRONMENT | SAVED | OFF
    experiment: str
    experiment_from: str  # ENVIRONMENT | SAVED | DEFAULT
    saved_uri: str | None
    saved_experiment: str | None

    @property
    def enabled(self) -> bool:
        return bool(self.uri)


def current() -> Tracking:
    """The tracking URI and experiment in effect, read now (the environment, then the database)."""
    with read_scope() as s:
        saved = app_settings.saved_settings(s)
    saved_uri, saved_experiment = saved.get(AppSettingKey.MLFLOW_TRACKING_URI), saved.get(
        AppSettingKey.MLFLOW_EXPERIMENT)
    if settings.MLFLOW_TRACKING_URI.is_set():
        uri, uri_from = settings.MLFLOW_TRACKING_URI.get(), ENVIRONMENT
    else:
        uri, uri_from = (saved_uri, SAVED) if saved_uri else ("", OFF)
    if settings.MLFLOW_EXPERIMENT.is_set():
        experiment, experiment_from = settings.MLFLOW_EXPERIMENT.get(), ENVIRONMENT
    else:
        experiment, experiment_from = (saved_experiment, SAVED) if saved_experiment else (
            settings.MLFLOW_EXPERIMENT.default, DEFAULT)
    return Tracking(uri, uri_from, experiment, experiment_from, saved_uri, saved_experiment)


def check_uri(raw: str) -> str:
    """The URI as it is saved (a relative path or sqlite file made absolute: every process, started from any folder,
    must reach the same store), or TrackingSettingError saying what MLflow takes."""
    uri = (raw or "").strip()
    if not uri:
        raise TrackingSettingError("the tracking URI is empty: Clear switches MLflow off")
    if any(c.isspace() or not c.isprintable() for c in uri) or len(uri) > 2000:
        raise TrackingSettingError(f"{uri[:80]!r} is not a tracking URI: it holds spaces or control characters "
                                   f"(or is over 2,000 characters). MLflow takes {ACCEPTED}")
    if uri == "databricks" or uri.startswith("databricks://"):  # a Databricks profile: MLflow reads its own config
        return uri
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        if not parts.hostname:
            raise TrackingSettingError(f"{uri!r} names no host: e.g. http://127.0.0.1:5000")
        return uri
    if scheme == "file":
        if not parts.path or parts.path == "/" or parts.netloc not in ("", "localhost"):
            raise TrackingSettingError(f"{uri!r} names no local folder: e.g. file:///srv/mlruns")
        return Path(_folder_uri(parts.path)).as_uri()
    if scheme.split("+")[0] in _DATABASES:
        return _database_uri(uri, scheme)
    if _HOST_PORT.match(uri) and not Path(uri).expanduser().exists():
        raise TrackingSettingError(f"{uri!r} has no scheme: a tracking server is http://{uri}")
    if scheme and len(scheme) > 1:  # a one-letter "scheme" is a Windows drive: C:\\mlruns
        raise TrackingSettingError(f"MLflow has no store for {scheme}: URIs; it takes {ACCEPTED}")
    return _folder_uri(uri)


def _database_uri(uri: str, scheme: str) -> str:
    if scheme.startswith("sqlite"):
        path, query = (uri.split(":///", 1)[1] if ":///" in uri else "").partition("?")[::2]
        if not path or path.startswith(":memory:"):
            raise TrackingSettingError(f"{uri!r} names no file: e.g. sqlite:////srv/mlflow.db (an in-memory "
                                       "store would vanish with each process)")
        file = Path(path).expanduser()
        if file.is_dir():
            raise TrackingSettingError(f"{file} is a folder: a sqlite store is a file, e.g. {file / 'mlflow.db'}")
        # an absolute path after the three slashes makes the four of sqlite:////srv/mlflow.db
        return f"{scheme}:///{file.resolve()}" + (f"?{query}" if query else "")
    if not uri.partition("://")[2]:
        raise TrackingSettingError(f"{uri!r} names no database: e.g. postgresql://user@db:5432/mlflow")
    return uri


def _folder_uri(uri: str) -> str:
    folder = Path(uri).expanduser()
    if folder.exists() and not folder.is_dir():
        raise TrackingSettingError(f"{folder} is a file: a local store is a folder")
    return str(folder.resolve())


def shown_uri(uri: str) -> str:
    """The URI with any password in it hidden, for a page or a log (postgresql://user:***@db/mlflow)."""
    parts = urlsplit(uri)
    if not parts.password:
        return uri
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username}:***@{host}").geturl()


def check_experiment(raw: str) -> str:
    name = (raw or "").strip()
    if not name or len(name) > 250 or not name.isprintable():
        raise TrackingSettingError("the experiment's name is one line of up to 250 characters")
    return name


def save(uri: str, experiment: str = "") -> Tracking:
    """Check, then save the URI (and the experiment, or forget a saved one when blank) in one transaction; nothing is
    saved when either is refused. What is then in effect (the environment may still win)."""
    checked_uri = check_uri(uri)
    checked_experiment = check_experiment(experiment) if (experiment or "").strip() else None
    with session_scope() as s:
        app_settings.set_setting(s, AppSettingKey.MLFLOW_TRACKING_URI, checked_uri)
        if checked_experiment is None:
            app_settings.clear_setting(s, AppSettingKey.MLFLOW_EXPERIMENT)
        else:
            app_settings.set_setting(s, AppSettingKey.MLFLOW_EXPERIMENT, checked_experiment)
    return current()


def clear() -> Tracking:
    """Forget the saved URI and experiment: MLflow is off unless the environment sets it."""
    with session_scope() as s:
        app_settings.clear_setting(s, AppSettingKey.MLFLOW_TRACKING_URI)
        app_settings.clear_setting(s, AppSettingKey.MLFLOW_EXPERIMENT)
    return current()
