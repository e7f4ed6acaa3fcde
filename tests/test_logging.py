"""Failures that a run survives, or that end it, leave a logged reason: a missed heartbeat, a reaped run, a worker
that stops; and each entry point configures logging once."""

from __future__ import annotations

import io
import logging
import shutil
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from core import settings
from core.logs import configure_logging
from core.runs import jobs, worker
from core.runs.files import RunFiles
from core.settings import dataset_dir
from db import runs as run_queries
from db import session_scope
from db.enums import RunStatus, TaskKind
from db.models import utcnow
from tests.helpers import wait_until_finished


def _queued_run(dataset_id: int) -> int:
    with session_scope() as s:
        return run_queries.create_run(s, dataset_id=dataset_id, task=TaskKind.CLASSIFICATION, model_kind="tfidf",
                                      config={"device": "cpu"}).id


def test_a_failing_heartbeat_logs_why_and_the_run_goes_on(classification_dataset: int, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    run_id = _queued_run(classification_dataset)
    # The database breaks under the worker: its file now holds something that is not a database.
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"not a database, " * 512)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{broken}")
    monkeypatch.setattr(worker, "HEARTBEAT_INTERVAL_S", 0.01)
    stop = threading.Event()
    beating = threading.Thread(target=worker._heartbeat_loop, args=(run_id, stop), daemon=True)
    with caplog.at_level(logging.WARNING, logger="core.runs.worker"):
        beating.start()
        deadline = time.monotonic() + 30
        while not any("heartbeat" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
            time.sleep(0.01)
        stop.set()
        beating.join(10)
    beats = [r for r in caplog.records if r.name == "core.runs.worker" and "heartbeat" in r.getMessage()]
    assert beats and beats[0].levelno == logging.WARNING
    assert f"run {run_id}: heartbeat 1 failed" in beats[0].getMessage()
    assert "file is not a database" in beats[0].getMessage()


def test_a_reaped_run_leaves_its_reason_in_the_log(classification_dataset: int,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    run_id = _queued_run(classification_dataset)
    with session_scope() as s:
        run = run_queries.get_run(s, run_id)
        run.status, run.host = RunStatus.RUNNING, "another-host"
        run.heartbeat_at = utcnow() - timedelta(seconds=settings.STALE_AFTER_S.get() + 5)
    with caplog.at_level(logging.INFO, logger="core.runs.jobs"):
        assert jobs.reap_dead_runs() == [run_id]
    [record] = [r for r in caplog.records if r.name == "core.runs.jobs"]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (f"run {run_id} marked failed: the worker stopped sending heartbeats for over "
                                   f"{settings.STALE_AFTER_S.get():.0f} s")


def test_a_real_worker_writes_why_its_run_failed_to_the_worker_log(classification_dataset: int) -> None:
    run_id = _queued_run(classification_dataset)
    shutil.rmtree(dataset_dir(classification_dataset))  # this machine cannot see the dataset: the run fails
    jobs.dispatch(run_id)
    assert wait_until_finished(run_id) is RunStatus.FAILED
    lines = RunFiles.of(run_id).worker_log.read_text().splitlines()
    assert any(f"INFO core.runs.worker: run {run_id} (tfidf) started on" in line for line in lines), lines
    assert any(f"ERROR core.runs.worker: run {run_id} failed: the files of dataset {classification_dataset} are "
               "not at" in line for line in lines), lines


def test_configure_logging_twice_keeps_one_handler_per_logger() -> None:
    stream = io.StringIO()
    try:
        configure_logging(logging.INFO, stream=io.StringIO())
        configure_logging(logging.INFO, stream=stream)  # a Streamlit rerun of app.py
        logging.getLogger("core.runs.jobs").info("hello %s", "there")
        logging.getLogger("core.runs.jobs").debug("below the level")
        assert len([h for h in logging.getLogger("core").handlers if h.get_name() == "protolab"]) == 1
        [line] = stream.getvalue().splitlines()
        assert line.endswith(" INFO core.runs.jobs: hello there")
    finally:
        configure_logging(logging.WARNING)
