"""The one logging set-up of every entry point (the app, the CLI, a worker, the fleet daemon, the API server).

Modules only say `log = logging.getLogger(__name__)`; the process that starts decides once where records go:
stderr, one line each with time, level and logger. A worker's stderr is its run's worker.log, so what a worker
logs is what a failed run shows.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Our own loggers, configured here; third-party libraries keep their own defaults.
PROJECT_LOGGERS = ("core", "db", "ui")
_HANDLER_NAME = "protolab"


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record comes (a test's capture, a redirected stream), not to the
    one that was current at set-up and may be closed since."""

    @property
    def stream(self) -> TextIO:  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure_logging(level: int | str = logging.WARNING, *, stream: TextIO | None = None) -> None:
    """Send the project's log records at `level` and above to `stream` (default: stderr). Idempotent: a second
    call (a Streamlit rerun of app.py) changes the level and the stream but never adds a second handler."""
    handler = logging.StreamHandler(stream) if stream is not None else _CurrentStderr()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(logging.Formatter(FORMAT))
    for name in PROJECT_LOGGERS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if h.get_name() == _HANDLER_NAME]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(level)
