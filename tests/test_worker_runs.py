"""Classification runs through real worker processes: completion, cancel, a killed worker, resume, and DDP (gloo).

Each test starts `python -m core.runs.worker` (or torchrun) on tiny generated data and polls the database.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from core import settings
from core.runs.jobs import reap_dead_runs
from core.settings import run_dir
from core.text.config import build_config
from db import runs as run_queries
from db import session_scope
from db.enums import RunStatus
from tests.helpers import cancel, queue_run, resume

ROOT = Path(__file__).resolve().parent.parent


def run_row(run_id: int) -> dict:
    with session_scope() as s:
        run = run_queries.get_run(s, run_id)
        return {"status": run.status, "metrics": run.metrics, "error": run.error, "events": run.events,
                "pid": run.pid, "device": run.device, "status_text": run.status_text, "progress": run.progress}


def wait_until(run_id: int, predicate, timeout: float = 120.0, reap: bool = False) -> dict:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if reap:
            reap_dead_runs()
        row = run_row(run_id)
        if predicate(row):
            return row
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not get there in {timeout} s: {row} \n{worker_log(run_id)}")


def finished(row: dict) -> bool:
    return not row["status"].is_active


def worker_log(run_id: int) -> str:
    path = run_dir(run_id) / "worker.log"
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def start(dataset_id: int, kind: str, **options) -> int:  # noqa: ANN003
    return queue_run(dataset_id=dataset_id, model_kind=kind,
                     config=build_config(kind, options))


def points(run_id: int, name: str, split: str) -> list[tuple[int, float]]:
    with session_scope() as s:
        return [(p.step, p.value) for p in run_queries.metric_points(s, run_id, name) if p.split == split]


def test_tfidf_run_completes_through_the_worker(classification_dataset: int) -> None:
    run_id = start(classification_dataset, "tfidf")
    row = wait_until(run_id, finished, timeout=120)
    assert row["status"] == RunStatus.COMPLETED, row["error"]
    assert row["metrics"]["macro_f1"] > 0.8 and row["metrics"]["split"] == "test"
    folder = run_dir(run_id)
    assert (folder / "model" / "model.skops").exists() and (folder / "meta.json").exists()
    assert len(pd.read_parquet(folder / "predictions" / "test.parquet")) == 18


def test_lstm_run_completes_with_progress_and_metric_points(classification_dataset: int) -> None:
    run_id = start(classification_dataset, "lstm", epochs=3, batch_size=16, max_length=32, device="cpu")
    row = wait_until(run_id, finished, timeout=180)
    assert row["status"] == RunStatus.COMPLETED, row["error"]
    assert row["device"] == "cpu" and row["progress"] == 1.0
    metrics = row["metrics"]
    assert metrics["reports"]["validation"]["macro_f1"] > 0.8
    assert {"accuracy", "macro_f1", "weighted_f1", "best_epoch", "train_samples_per_s"} <= set(metrics)
    assert len(points(run_id, "macro_f1", "validation")) == 3
    assert points(run_id, "train_loss", "train")
    meta = json.loads((run_dir(run_id) / "meta.json").read_text())
    assert meta["kind"] == "lstm" and meta["labels"] == ["negative", "positive"]
    assert (run_dir(run_id) / "model" / "model.safetensors").exists()


def long_lstm_run(dataset_id: int) -> int:
    # Many epochs and no early stopping: it runs until the test stops it.
    return start(dataset_id, "lstm", epochs=500, patience=0, batch_size=8, max_length=32, device="cpu",
                 init_embeddings=False)


def test_cancel_stops_a_running_run_quickly(classification_dataset: int) -> None:
    run_id = long_lstm_run(classification_dataset)
    wait_until(run_id, lambda r: "step" in (r["status_text"] or ""), timeout=120)
    asked = time.monotonic()
    cancel(run_id)
    row = wait_until(run_id, finished, timeout=30)
    assert row["status"] == RunStatus.CANCELLED
    assert time.monotonic() - asked < 10
    assert (run_dir(run_id) / "INCOMPLETE").exists()
    assert not (run_dir(run_id) / "meta.json").exists()


def test_killed_worker_is_marked_failed(classification_dataset: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.STALE_AFTER_S.name, "5")
    run_id = long_lstm_run(classification_dataset)
    row = wait_until(run_id, lambda r: "step" in (r["status_text"] or ""), timeout=120)
    os.kill(row["pid"], signal.SIGKILL)
    row = wait_until(run_id, finished, timeout=30, reap=True)
    assert row["status"] == RunStatus.FAILED
    assert "killed" in row["error"] or "heartbeat" in row["error"]


def test_the_reaper_says_how_a_worker_it_launched_died(classification_dataset: int,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Whichever sees a dead child first, the reaper or the child's watcher, the reason says how it ended (CI once
    got only "ended without reporting" with an empty log, for a worker the reaper saw before its watcher)."""
    from core.runs import jobs

    monkeypatch.setattr(jobs, "_watch_worker", lambda *args: None)  # only the reaper looks
    monkeypatch.setattr(jobs, "worker_command", lambda run_id, gpus=1: [
        # the last argument keeps it recognisable as a worker until it dies (the reaper checks the command line)
        sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)", "core.runs.worker"])
    run_id = start(classification_dataset, "tfidf")
    row = wait_until(run_id, finished, timeout=60, reap=True)
    assert row["status"] == RunStatus.FAILED
    assert f"the worker process (pid {row['pid']}) was killed by SIGKILL without reporting" in row["error"]


def test_a_worker_this_process_launched_is_alive_while_it_runs_whatever_its_command_line_reads(
        classification_dataset: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Right after the launch its /proc command line can read empty (exec still setting up argv): CI reaped a
    starting worker as dead that way. The launcher asks its own child instead."""
    import os
    import signal

    from core.runs import jobs

    monkeypatch.setattr(jobs, "_watch_worker", lambda *args: None)  # only the reaper looks
    monkeypatch.setattr(jobs, "worker_command", lambda run_id, gpus=1: [
        sys.executable, "-c", "import time; time.sleep(60)"])  # no "core.runs.worker" anywhere on its command line
    run_id = start(classification_dataset, "tfidf")
    for _ in range(3):
        assert jobs.reap_dead_runs() == []
    row = wait_until(run_id, lambda r: True, timeout=5)
    assert row["status"].is_active
    os.kill(row["pid"], signal.SIGKILL)
    row = wait_until(run_id, finished, timeout=60, reap=True)
    assert f"the worker process (pid {row['pid']}) was killed by SIGKILL without reporting" in row["error"]


def test_resume_continues_from_the_checkpoint(classification_dataset: int) -> None:
    run_id = start(classification_dataset, "lstm", epochs=4, patience=0, batch_size=8, max_length=32,
                   device="cpu", init_embeddings=False)
    checkpoint = run_dir(run_id) / "checkpoint" / "trainer_state.pt"
    wait_until(run_id, lambda r: checkpoint.exists() or finished(r), timeout=120)
    cancel(run_id)
    row = wait_until(run_id, finished, timeout=30)
    assert row["status"] == RunStatus.CANCELLED
    steps_before = max(step for step, _ in points(run_id, "train_loss", "train"))

    resume(run_id)
    row = wait_until(run_id, finished, timeout=300)
    assert row["status"] == RunStatus.COMPLETED, row["error"]
    assert any(e.get("event") == "resumed" and e["epoch"] >= 1 for e in row["events"])
    steps = [step for step, _ in points(run_id, "train_loss", "train")]
    assert steps.count(1) == 1  # the step counter did not start again
    assert max(steps) == 4 * 11 and max(steps) > steps_before
    assert len(points(run_id, "macro_f1", "validation")) >= 4


def test_ddp_with_two_gloo_processes_matches_one_process(classification_dataset: int,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    options = dict(epochs=2, max_length=32, device="cpu", seed=7, learning_rate=5e-3)
    single = start(classification_dataset, "lstm", batch_size=16, **options)
    single_row = wait_until(single, finished, timeout=180)
    assert single_row["status"] == RunStatus.COMPLETED, single_row["error"]

    # The product's own path: core.runs.jobs launches `torchrun --nproc_per_node 2 -m core.runs.worker RUN_ID`.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    ddp = queue_run(dataset_id=classification_dataset, model_kind="lstm",
                    config=build_config("lstm", {**options, "batch_size": 8, "gpus": 2}))
    row = wait_until(ddp, finished, timeout=300)
    assert row["status"] == RunStatus.COMPLETED, (row["error"], worker_log(ddp))
    assert row["device"] == "cpu × 2 (DDP)"
    # Same effective batch (2 × 8 vs 16): the same steps and, up to dropout noise, the same losses.
    single_loss, ddp_loss = points(single, "train_loss", "train"), points(ddp, "train_loss", "train")
    assert [s for s, _ in single_loss] == [s for s, _ in ddp_loss]
    for (_, a), (_, b) in zip(single_loss, ddp_loss, strict=True):
        assert abs(a - b) < 0.05, (single_loss, ddp_loss)
    single_val, ddp_val = points(single, "loss", "validation"), points(ddp, "loss", "validation")
    assert len(single_val) == len(ddp_val) == 2
    for (_, a), (_, b) in zip(single_val, ddp_val, strict=True):
        assert abs(a - b) < 0.05, (single_val, ddp_val)
    assert abs(single_row["metrics"]["macro_f1"] - row["metrics"]["macro_f1"]) <= 0.2
    assert row["metrics"]["reports"]["validation"]["macro_f1"] > 0.7
