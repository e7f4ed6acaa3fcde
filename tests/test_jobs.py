"""Run lifecycle: the worker's state machine, cancellation, dead-worker detection and the queue."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest

from core import settings
from core.runs import jobs, worker
from core.settings import run_dir
from db import runs as run_queries
from db import session_scope
from db.enums import RunStatus, TaskKind
from db.models import utcnow
from tests.helpers import cancel, resume, use_executor


def _queued_run(dataset_id: int, **config) -> int:  # noqa: ANN003
    with session_scope() as s:
        return run_queries.create_run(s, dataset_id=dataset_id, task=TaskKind.CLASSIFICATION, model_kind="tfidf",
                                      config={"device": "cpu", **config}).id


def _executed(dataset_id: int, executor, name: str, status: RunStatus) -> int:  # noqa: ANN001
    """A queued run taken through worker.execute with the test executor `name`; it must end in `status`."""
    executor(name)
    run_id = _queued_run(dataset_id)
    assert worker.execute(run_id) is status
    return run_id


@pytest.fixture
def executor(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    def use(name: str) -> None:
        use_executor(monkeypatch, f"tests.worker_executors:{name}")
    return use


def test_completed_run_records_progress_metrics_and_points(classification_dataset: int, executor) -> None:  # noqa: ANN001
    run_id = _executed(classification_dataset, executor, "counting_executor", RunStatus.COMPLETED)
    with session_scope() as s:
        run = run_queries.get_run(s, run_id)
        assert run.status is RunStatus.COMPLETED and run.progress == 1.0
        assert run.metrics == {"macro_f1": 0.9, "steps": 10}
        assert run.started_at is not None and run.finished_at is not None and run.heartbeat_at is not None
        losses = [p.value for p in run.metric_points if p.name == "train_loss"]
        assert losses == [1.0 / step for step in range(1, 11)]
        assert run.artifact_path and (run_dir(run_id) / "model.txt").read_text() == "step 10"
    assert not (run_dir(run_id) / "INCOMPLETE").exists()


def test_cancel_during_a_run_marks_it_cancelled_and_artifacts_partial(classification_dataset: int, executor) -> None:  # noqa: ANN001
    run_id = _executed(classification_dataset, executor, "cancel_midway_executor", RunStatus.CANCELLED)
    with session_scope() as s:
        run = run_queries.get_run(s, run_id)
        assert run.status is RunStatus.CANCELLED and run.progress < 0.05
    assert (run_dir(run_id) / "INCOMPLETE").read_text().startswith("cancelled")


def test_user_error_is_stored_without_a_traceback(classification_dataset: int, executor) -> None:  # noqa: ANN001
    run_id = _executed(classification_dataset, executor, "user_error_executor", RunStatus.FAILED)
    with session_scope() as s:
        assert run_queries.get_run(s, run_id).error == "max_length must be positive (got -3)"


def test_crash_is_stored_with_its_traceback_tail(classification_dataset: int, executor) -> None:  # noqa: ANN001
    run_id = _executed(classification_dataset, executor, "crashing_executor", RunStatus.FAILED)
    with session_scope() as s:
        error = run_queries.get_run(s, run_id).error
    assert error.startswith("ZeroDivisionError: division by zero") and "Traceback" in error


def test_cancelling_a_queued_run_is_immediate_and_the_worker_then_does_nothing(classification_dataset: int) -> None:
    run_id = _queued_run(classification_dataset)
    assert cancel(run_id) is RunStatus.CANCELLED
    assert worker.execute(run_id) is RunStatus.CANCELLED
    with pytest.raises(jobs.JobError, match="only queued or running runs can be cancelled"):
        cancel(run_id)


def test_a_run_whose_worker_process_died_is_marked_failed(classification_dataset: int) -> None:
    run_id = _queued_run(classification_dataset)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with session_scope() as s:
        run = run_queries.get_run(s, run_id)
        run.status, run.pid, run.heartbeat_at = RunStatus.RUNNING, dead.pid, utcnow()
        run.host = jobs.socket.gethostname()
    assert jobs.reap_dead_runs() == [run_id]
    with session_scope() as s:
        run = run_queries.get_run(s, run_id)
        assert run.status is RunStatus.FAILED and "killed or crashed" in run.error


def test_a_run_with_a_stale_heartbeat_is_marked_failed(classification_dataset: int) -> None:
    run_id = _queued_run(classification_dataset)
    with session_scope() as s:
        run = run_queries.get_run(s, run_id)
        run.status, run.host = RunStatus.RUNNING, "another-host"  # its pid cannot be checked from here
        run.heartbeat_at = utcnow() - timedelta(seconds=settings.STALE_AFTER_S.get() + 5)
    assert jobs.reap_dead_runs() == [run_id]
    with session_scope() as s:
        assert "heartbeats" in run_queries.get_run(s, run_id).error


def test_a_live_run_is_left_alone(classification_dataset: int) -> None:
    run_id = _queued_run(classification_dataset)
    with session_scope() as s:
        run = run_queries.get_run(s, run_id)
        run.status, run.host, run.heartbeat_at = RunStatus.RUNNING, "another-host", utcnow()
    assert jobs.reap_dead_runs() == []


def test_second_run_on_a_busy_device_waits_its_turn(classification_dataset: int, monkeypatch) -> None:  # noqa: ANN001
    first, second = _queued_run(classification_dataset), _queued_run(classification_dataset)
    with session_scope() as s:
        run_queries.get_run(s, first).status = RunStatus.RUNNING
    ctx = worker.WorkerContext(run_id=second, task=TaskKind.CLASSIFICATION, model_kind="tfidf", config={},
                            dataset_id=classification_dataset, artifact_dir=run_dir(second))
    polls = []

    def fake_sleep(_s: float) -> None:  # the first run finishes while the second is waiting
        polls.append(1)
        with session_scope() as s:
            run_queries.get_run(s, first).status = RunStatus.COMPLETED

    monkeypatch.setattr(worker.time, "sleep", fake_sleep)
    assert worker._wait_for_turn(second, "cpu", ctx) is True
    assert len(polls) == 1
    with session_scope() as s:
        assert "waiting for 1 run" in run_queries.get_run(s, second).status_text


def test_resume_needs_a_checkpoint(classification_dataset: int) -> None:
    run_id = _queued_run(classification_dataset)
    with session_scope() as s:
        run_queries.get_run(s, run_id).status = RunStatus.FAILED
    with pytest.raises(jobs.JobError, match="no checkpoint"):
        resume(run_id)
