"""Every environment variable Protolab reads, and where it keeps its data and which database it talks to.

Each variable is one `Variable` below (name, type, default, one-line doc), read when it is asked for, never at
import time, so a test or a worker that changes the environment is followed. The README's table of variables is
generated from `VARIABLES` (`python -m core.settings --readme`; tests/test_settings.py keeps the two equal).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from core.errors import ProtolabError
from db.engine import set_url_source

T = TypeVar("T")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class SettingError(ProtolabError):
    """An environment variable holds a value Protolab cannot use."""


@dataclass(frozen=True)
class Variable(Generic[T]):
    """One environment variable: `get()` reads it now, parsed to its type; unset or empty gives the default."""

    name: str
    type: str  # what the README's table says it holds
    default: T
    doc: str
    parse: Callable[[str], T]
    default_text: str = ""  # the README's default (markdown), where the default is computed or None

    def get(self) -> T:
        raw = os.environ.get(self.name, "").strip()
        if not raw:
            return self.default
        try:
            return self.parse(raw)
        except ValueError as exc:
            raise SettingError(f"{self.name} {exc} (got {raw!r})") from None

    def is_set(self) -> bool:
        """Whether the environment holds a value (a setting saved in the app then gives way to it)."""
        return bool(os.environ.get(self.name, "").strip())

    @property
    def shown_default(self) -> str:
        if self.default_text:
            return self.default_text
        return "(unset)" if self.default in (None, "") else f"`{self.default}`"


def _text(raw: str) -> str:
    return raw


def _flag(raw: str) -> bool:
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ValueError("must be 1 or 0")


def _number(kind: type[int] | type[float], minimum: float) -> Callable[[str], int | float]:
    def parse(raw: str) -> int | float:
        try:
            value = kind(raw)
        except ValueError:
            raise ValueError(f"must be {'a whole number' if kind is int else 'a number'}") from None
        if value < minimum:
            raise ValueError(f"must be at least {minimum:g}")
        return value

    return parse


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw.lower() not in choices:
            raise ValueError("must be " + ", ".join(f"'{c}'" for c in choices[:-1]) + f" or '{choices[-1]}'")
        return raw.lower()

    return parse


def _path(raw: str) -> Path:
    return Path(raw).expanduser()


def _flag_var(name: str, default: bool, doc: str) -> Variable[bool]:
    return Variable(name, "1 or 0", default, doc, _flag, "`1`" if default else "`0`")


def _seconds(name: str, default: float, doc: str) -> Variable[float]:
    return Variable(name, "seconds", default, doc, _number(float, 0.0))


def _one_of(name: str, choices: tuple[str, ...], doc: str) -> Variable[str]:
    return Variable(name, " \\| ".join(choices), choices[0], doc, _choice(*choices))


# --- where the data is -------------------------------------------------------------------------------------
HOME = Variable[Path | None]("PROTOLAB_HOME", "folder", None, "the data folder: database file, datasets, runs",
                             _path, "`./data`")
DATABASE_URL = Variable("DATABASE_URL", "URL", "", "the database: a SQLite file or a PostgreSQL URL "
                        "(db/ alone, without the app, reads it too)", _text, "`sqlite:///$PROTOLAB_HOME/protolab.db`")
# --- who sees what --------------------------------------------------------------------------------------------
PASSWORD_HASH = Variable("PROTOLAB_PASSWORD_HASH", "text", "", "the app's password hash from `protolab passwd` "
                         "(else `[auth] password_hash` in secrets.toml; neither: no password)", _text)
PRESENTATION = _flag_var("PROTOLAB_PRESENTATION", False, "open the app in presentation mode: the demo pages only")
PUBLIC_PRESENTATION = _flag_var("PROTOLAB_PUBLIC_PRESENTATION", False,
                                "presentation mode asks no password (the rest of the app still does)")
API_URL = Variable("PROTOLAB_API_URL", "URL", "http://127.0.0.1:8000",
                   "where the demo pages' code snippets say `protolab serve` is reached", _text)
API_KEY = Variable("PROTOLAB_API_KEY", "text", "", "read by the snippets you paste, never by Protolab: your API key",
                   _text)
DEBUG = _flag_var("PROTOLAB_DEBUG", False, "the CLI shows the traceback of an unexpected error")
# --- model kinds and runs ----------------------------------------------------------------------------------------
MEASURE_AT_START = _flag_var("PROTOLAB_MEASURE_AT_START", True,
                             "when the app starts, time a worker's start-up and each model's cold load once for "
                             "this machine (kept in the data folder), so the first estimate launches no process")
MODEL_KINDS = Variable("PROTOLAB_MODEL_KINDS", "module, module", "",
                       "modules that register extra model kinds and tasks, imported in every process", _text)
DISPATCH = _one_of("PROTOLAB_DISPATCH", ("auto", "local", "queue"),
                   "queue: runs wait for a worker daemon; local: the app starts each worker; auto: queue when a "
                   "daemon is alive")
STALE_AFTER_S = _seconds("PROTOLAB_STALE_AFTER_S", 20.0, "a run whose worker sent no heartbeat for this long failed")
MAX_RUNS_PER_DEVICE = Variable("PROTOLAB_MAX_RUNS_PER_DEVICE", "whole number", 1,
                               "runs that share one device at once when no daemon schedules them",
                               _number(int, 1))
EXPRESS_SLOTS = Variable("PROTOLAB_EXPRESS_SLOTS", "whole number", 1,
                         "extra runs a CPU takes for runs estimated under a minute, so they never wait behind a long "
                         "one (0: first come, first served)", _number(int, 0))
ADAPT_THREADS = _flag_var("PROTOLAB_ADAPT_THREADS", True,
                          "0 keeps torch's thread count fixed while training on the CPU (the benchmarks' baseline)")
TRAIN_PRECISION = _one_of("PROTOLAB_TRAIN_PRECISION", ("auto", "fp32", "bf16"),
                          "forces the training precision on any device (auto: by device and model size)")
INFERENCE_PRECISION = _one_of("PROTOLAB_INFERENCE_PRECISION", ("auto", "fp32", "bf16"),
                              "forces the serving precision (auto: bf16 where the hardware does it natively)")
INFERENCE_THREADS = Variable[int | None]("PROTOLAB_INFERENCE_THREADS", "whole number", None,
                                         "threads per forward pass when serving", _number(int, 1),
                                         "`OMP_NUM_THREADS`, else a quarter of the cores")
LABEL_MODEL = Variable("PROTOLAB_LABEL_MODEL", "model id or folder", "",
                       "the sentence encoder the Label page's background SetFit models start from (a Hugging Face id "
                       "or a local folder, e.g. a multilingual one for texts not in English)", _text,
                       "the bundled MiniLM")
# --- several machines --------------------------------------------------------------------------------------------
WORKER_STALE_AFTER_S = _seconds("PROTOLAB_WORKER_STALE_AFTER_S", 15.0,
                                "a worker daemon silent for this long is presumed dead; its runs are requeued")
WORKER_POLL_S = _seconds("PROTOLAB_WORKER_POLL_S", 0.5, "how often a worker daemon looks for queued runs")
DRAIN_TIMEOUT_S = _seconds("PROTOLAB_DRAIN_TIMEOUT_S", 120.0,
                           "how long a stopping daemon waits for its runs to hand themselves back")
WORKER_ADDRESS = Variable("PROTOLAB_WORKER_ADDRESS", "host", "", "the address a worker daemon gives the others",
                          _text, "this host's address")
CLAIM_ID = Variable[int | None]("PROTOLAB_CLAIM_ID", "whole number", None,
                                "set by a worker daemon for each worker it starts: the claim it runs under",
                                _number(int, 0))
WORKER_NAME = Variable("PROTOLAB_WORKER_NAME", "text", "?",
                       "set by a worker daemon for each worker it starts: the daemon's name", _text)
# --- experiment tracking ------------------------------------------------------------------------------------
MLFLOW_TRACKING_URI = Variable("MLFLOW_TRACKING_URI", "URL", "", "MLflow's own variable: every run is logged to this "
                               "tracking server or store (`http://host:5000`, `sqlite:///mlflow.db`); unset: the one "
                               "saved on Home, else none", _text)
MLFLOW_EXPERIMENT = Variable("PROTOLAB_MLFLOW_EXPERIMENT", "text", "protolab",
                             "the MLflow experiment Protolab's runs are logged under (wins over the one saved on "
                             "Home)", _text)
MLFLOW_ARTIFACTS = Variable("PROTOLAB_MLFLOW_ARTIFACTS", "folder or URI", "",
                            "where the experiment Protolab creates keeps its artifacts (models, charts)", _text,
                            "the tracking server's own (a `sqlite:` store's: `./mlruns`)")
MLFLOW_TIMEOUT_S = Variable("PROTOLAB_MLFLOW_TIMEOUT_S", "whole number", 5,
                            "an MLflow request that takes longer fails (no retries) and the run goes on without it; "
                            "`protolab runs export-mlflow` sends it later", _number(int, 1))
# --- installing and benchmarks ---------------------------------------------------------------------------------
TORCH = Variable("PROTOLAB_TORCH", "pip requirement", "", "the torch that `make` installs (read by "
                 "scripts/install_torch.py itself: it runs before the project is installed)", _text,
                 "CUDA or CPU build, chosen")
TWEETS_CSV = Variable[Path | None]("PROTOLAB_TWEETS_CSV", "file", None, "the tweets corpus the benchmarks read",
                                   _path, "each benchmark's own")

# Every Variable defined above, in order: a new one is in the README's table without a second list to keep.
VARIABLES: tuple[Variable, ...] = tuple(v for v in list(globals().values()) if isinstance(v, Variable))


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
    """Where the data is and which database (re-read on every call, so tests can patch the environment)."""
    home = (HOME.get() or Path.cwd() / "data").expanduser().resolve()
    url = DATABASE_URL.get() or f"sqlite:///{home / 'protolab.db'}"
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


# --- the README's table -----------------------------------------------------------------------------------------
README_START, README_END = "<!-- settings:start -->", "<!-- settings:end -->"


def markdown_table() -> str:
    """The table of `VARIABLES` the README shows between its settings markers."""
    rows = ["| Variable | Holds | Default | What it does |", "|---|---|---|---|"]
    for v in VARIABLES:
        rows.append(f"| `{v.name}` | {v.type} | {v.shown_default} | {v.doc} |")
    return "\n".join(rows)


def readme_with_table(readme: str) -> str:
    """`readme` with the block between the settings markers replaced by `markdown_table()`."""
    pattern = re.compile(re.escape(README_START) + r".*?" + re.escape(README_END), re.S)
    if not pattern.search(readme):
        raise ValueError(f"the README has no {README_START} ... {README_END} block")
    return pattern.sub(lambda _: f"{README_START}\n{markdown_table()}\n{README_END}", readme)


# db/ takes its URL from the application: whenever a query names no database, it is the one configured here
# (read again on every call, so a test or a worker that changes DATABASE_URL is followed).
set_url_source(database_url)

if __name__ == "__main__":  # `python -m core.settings --readme` rewrites the README's table; else prints it
    if sys.argv[1:] == ["--readme"]:
        readme_path = Path(__file__).resolve().parents[1] / "README.md"
        readme_path.write_text(readme_with_table(readme_path.read_text(encoding="utf-8")), encoding="utf-8")
    else:
        sys.stdout.write(markdown_table() + "\n")
