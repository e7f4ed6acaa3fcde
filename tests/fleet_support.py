"""What the team-mode test files share (tests/test_fleet*.py): `protolab worker` daemons started as real processes,
a run's row read from the database, waiting on a run, and queueing the runs they train. The fixtures that use them
(`pg_fleet`, `daemons`) are in tests/conftest.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from core import settings
from core.settings import run_dir
from core.text.config import build_config
from db import runs as run_queries
from db import session_scope
from db import workers as worker_queries
from db.enums import TaskKind
from db.models import Run
from tests.conftest import sentiment_frame, with_splits
from tests.helpers import queue_run

ROOT = Path(__file__).resolve().parent.parent
STALE_S = 5.0  # how fast the daemons (and this process) give up on a silent daemon here


def store_dataset(n: int = 120, name: str = "tiny-sentiment") -> int:
    from core.data.storage import write_dataset

    frame = with_splits(sentiment_frame(n=n))
    with session_scope() as s:
        return write_dataset(s, name=name, task=TaskKind.CLASSIFICATION, frame=frame,
                             mapping={"text": "text", "label": "label"}, stats={}).id


class Daemons:
    """`protolab worker` processes started by one test, all stopped at its end."""

    def __init__(self, home: Path) -> None:
        self.home, self.procs = home, {}

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(PYTHONPATH=str(ROOT), PROTOLAB_WORKER_ADDRESS="127.0.0.1", OMP_NUM_THREADS="1",
                   PROTOLAB_WORKER_STALE_AFTER_S=str(STALE_S), PROTOLAB_WORKER_POLL_S="0.2",
                   PROTOLAB_MODEL_KINDS="tests.toy_kind", **extra)
        env.pop(settings.DISPATCH.name, None)
        return env

    def start(self, name: str, *args: str, **env: str) -> subprocess.Popen:
        log = open(self.home / f"daemon-{name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen([sys.executable, "-m", "core.cli", "worker", "--devices", "cpu", "--name", name,
                                 "--max-parallel", "1", *args], env=self.env(**env), cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT)
        self.procs[name] = proc
        return proc

    def start_live(self, *names: str) -> None:
        """Start a daemon of each name and wait until all of them are registered and beating."""
        for name in names:
            self.start(name)
        self.wait_live(*names)

    def wait_live(self, *names: str, timeout: float = 240) -> None:
        # Only when to give up: a daemon's start-up (torch, the CLI) took over 60 s at load 18 and failed a test.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with session_scope() as s:
                live = {w.name for w in worker_queries.live_workers(s, STALE_S)}
            if set(names) <= live:
                return
            time.sleep(0.2)
        raise AssertionError(f"daemons {names} did not register: {self.logs()}")

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}"
                         for p in sorted(self.home.glob("daemon-*.log")))

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def row(run_id: int) -> Run:
    with session_scope() as s:
        run = run_queries.get_run(s, run_id)
        s.expunge(run)
        return run


def wait_for(run_id: int, predicate, what: str, timeout: float = 120, daemons: Daemons | None = None) -> Run:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = row(run_id)
        if predicate(run):
            return run
        time.sleep(0.2)
    log = (run_dir(run_id) / "worker.log")
    raise AssertionError(f"run {run_id} not {what} in {timeout} s: {run.status} {run.status_text} {run.events}\n"
                         f"{log.read_text(errors='replace')[-2000:] if log.exists() else ''}\n"
                         f"{daemons.logs() if daemons else ''}")


def finished(run: Run) -> bool:
    return not run.status.is_active


def claimed_by(run: Run) -> list[str]:
    """Every worker that ever claimed the run, in order (the events keep them; claims are replaced on requeue)."""
    return [e["worker"] for e in run.events if e.get("event") == "claimed"]


def lstm(dataset_id: int, **options) -> int:  # noqa: ANN003
    config = build_config("lstm", {"max_length": 32, "batch_size": 8, "device": "cpu", "init_embeddings": False,
                                   "patience": 0, **options})
    return queue_run(dataset_id=dataset_id, model_kind="lstm", config=config)


def tfidf(dataset_id: int) -> int:
    return queue_run(dataset_id=dataset_id, model_kind="tfidf", config=build_config("tfidf", {}))


