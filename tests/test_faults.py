"""Faults met with real processes: workers killed with SIGKILL, full or unwritable disks, a busy SQLite.

Workers here are real `core.runs.worker` processes running small executors from this module
(the slow ones the real trainers would be), so a kill -9 is a real kill -9.
"""

from __future__ import annotations

import errno
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core import settings
from core.runs import jobs, worker
from core.runs.context import RunContext
from core.runs.files import RunFiles
from core.settings import load_settings, run_dir
from db import runs as run_queries
from db import session_scope
from db.enums import RunStatus, TaskKind
from db.models import Dataset
from tests.helpers import queue_run, use_executor

ROOT = Path(__file__).resolve().parent.parent
# A real worker process (its command line names core.runs.worker, as jobs._worker_alive expects) whose
# executor is one of this module's, given as the second argument.
WORKER_SCRIPT = ("import sys, dataclasses, core.runs.worker as w, core.runs.registry as r; "
                 "r.register(dataclasses.replace(r.get_kind('tfidf'), execute=sys.argv[2])); "
                 "sys.exit(w.main(sys.argv[1:2]))")


# --- executors run inside the worker processes ---------------------------------------------

def slow_executor(ctx: RunContext) -> dict[str, Any]:
    """Sixty seconds of 'training' that reports progress and writes a checkpoint every step."""
    for step in range(1, 301):
        ctx.raise_if_cancelled()
        ctx.log_metric("train_loss", 1.0 / step, step=step)
        ctx.progress(step / 300, f"step {step}/300", force=True)
        (ctx.artifact_dir / "checkpoint.txt").write_text(str(step))
        time.sleep(0.2)
    return {"macro_f1": 0.5}


def watching_executor(ctx: RunContext) -> dict[str, Any]:
    """Keeps running (as a long run would) until every other run has stopped being active."""
    deadline = time.monotonic() + 45
    step = 0
    others_stopped = False
    while time.monotonic() < deadline:
        step += 1
        ctx.progress(min(step / 100, 0.99), f"step {step}", force=True)
        with session_scope() as s:
            others = [r.id for r in run_queries.active_runs(s) if r.id != ctx.run_id]
        if not others and step > 3:
            others_stopped = True
            break
        time.sleep(0.3)
    return {"macro_f1": 0.75, "steps": step, "others_stopped": others_stopped}


def medium_executor(ctx: RunContext) -> dict[str, Any]:
    """About fifteen seconds of steady progress (long enough to restart a server in the middle)."""
    for step in range(1, 61):
        ctx.raise_if_cancelled()
        ctx.log_metric("train_loss", 1.0 / step, step=step)
        ctx.progress(step / 60, f"step {step}/60", force=True)
        time.sleep(0.25)
    return {"macro_f1": 0.66}


def quick_executor(ctx: RunContext) -> dict[str, Any]:
    for step in range(1, 6):
        ctx.log_metric("train_loss", 1.0 / step, step=step)
        ctx.progress(step / 5, f"step {step}/5", force=True)
        time.sleep(0.1)
    return {"macro_f1": 0.8}


def disk_full_executor(ctx: RunContext) -> dict[str, Any]:
    ctx.progress(0.5, "saving a checkpoint", force=True)
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(ctx.artifact_dir / "checkpoint" / "model.safetensors"))


def library_disk_full_executor(ctx: RunContext) -> dict[str, Any]:
    """Disk full as the libraries that write checkpoints report it (not as an OSError)."""
    from safetensors import SafetensorError

    kind = ctx.config["raise"]
    if kind == "safetensors":
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28) at path "
                              f'"{ctx.artifact_dir}/checkpoint.tmp/model.safetensors"')
    if kind == "torch":
        raise RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed")
    try:
        raise OSError(28, "No space left on device")
    except OSError as exc:
        raise ValueError("could not save the tokenizer") from exc


# --- helpers --------------------------------------------------------------------------------

def _queued_run(dataset_id: int, **config: Any) -> int:
    with session_scope() as s:
        return run_queries.create_run(s, dataset_id=dataset_id, task=TaskKind.CLASSIFICATION, model_kind="tfidf",
                                      config={"device": "cpu", **config}).id


def _spawn(run_id: int, executor: str, **env: str) -> subprocess.Popen:
    """A worker started the way jobs.launch_worker starts one, minus the launcher's own watch."""
    files = RunFiles.of(run_id)
    files.root.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    log = open(files.worker_log, "ab")  # noqa: SIM115 - the child keeps it
    proc = subprocess.Popen([sys.executable, "-c", WORKER_SCRIPT, str(run_id), f"tests.test_faults:{executor}"],
                            stdout=log, stderr=subprocess.STDOUT, env=full_env, cwd=ROOT, start_new_session=True)
    log.close()
    return proc


def _status(run_id: int) -> tuple[RunStatus, float, str | None, int | None]:
    with session_scope() as s:
        run = run_queries.get_run(s, run_id)
        return run.status, run.progress, run.error, run.pid


def _wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def _running_with_progress(run_id: int) -> Callable[[], bool]:
    def check() -> bool:
        status, progress, _, _ = _status(run_id)
        return status is RunStatus.RUNNING and progress > 0
    return check


def _database_is_consistent() -> None:
    path = load_settings().database_url.split("///", 1)[1]
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        # Every stopped run says when it stopped; every failed one says why.
        bad = conn.execute("SELECT id FROM runs WHERE status IN ('FAILED','COMPLETED','CANCELLED',"
                           "'failed','completed','cancelled') AND finished_at IS NULL").fetchall()
        assert bad == []
        assert conn.execute("SELECT id FROM runs WHERE status IN ('FAILED','failed') AND "
                            "(error IS NULL OR error = '')").fetchall() == []
    finally:
        conn.close()


def _kill(proc_or_pid: subprocess.Popen | int) -> None:
    pid = proc_or_pid if isinstance(proc_or_pid, int) else proc_or_pid.pid
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# --- kill -9 of a worker ------------------------------------------------------------------------

@pytest.mark.slow
def test_killed_worker_is_marked_failed_by_its_launcher_without_anyone_looking(
        classification_dataset: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The process that launched a worker (the Streamlit server, the CLI) notices its death at once."""
    # No heartbeat goes stale within the test, so the launcher's watch is the only thing that can fail the run
    # (and only it knows the signal: the "SIGKILL" below).
    monkeypatch.setenv(settings.STALE_AFTER_S.name, "600")
    monkeypatch.setattr(jobs, "worker_command", lambda run_id, gpus=1: [
        sys.executable, "-c", WORKER_SCRIPT, str(run_id), "tests.test_faults:slow_executor"])
    run_id = queue_run(dataset_id=classification_dataset, model_kind="tfidf",
                            config={"device": "cpu"})
    try:
        _wait_until(_running_with_progress(run_id), 60, "the worker to start")
        pid = _status(run_id)[3]
        os.kill(pid, signal.SIGKILL)
        # Nobody calls reap_dead_runs here: the launcher's watch must do it.
        _wait_until(lambda: _status(run_id)[0] is RunStatus.FAILED, 60, "the killed run to be failed")
    finally:
        _kill(_status(run_id)[3] or 0)
    status, progress, error, _ = _status(run_id)
    assert "SIGKILL" in error and "killed or crashed" in error, error
    assert 0 < progress < 1
    _database_is_consistent()


@pytest.mark.slow
def test_killed_worker_is_noticed_by_another_worker_which_keeps_running(classification_dataset: int) -> None:
    """Two runs at once; one worker is killed. The survivor marks it failed and completes its own run."""
    victim_id, survivor_id = _queued_run(classification_dataset), _queued_run(classification_dataset)
    env = {"PROTOLAB_MAX_RUNS_PER_DEVICE": "2"}
    victim = _spawn(victim_id, "slow_executor", **env)
    survivor = _spawn(survivor_id, "watching_executor", **env)
    try:
        _wait_until(lambda: _running_with_progress(victim_id)() and _running_with_progress(survivor_id)(), 60,
                    "both runs to be running")
        victim.kill()  # SIGKILL; this test process is its parent, so it lingers as a zombie: still dead
        # Nothing but the survivor reaps here (this process never does), so the victim fails only if it noticed;
        # and it noticed while still running its own run: that run's executor ends only once it has seen the victim
        # stop being active (others_stopped), not at its own deadline.
        _wait_until(lambda: _status(victim_id)[0] is RunStatus.FAILED, 40, "the survivor to reap the victim")
        assert survivor.wait(60) == 0
    finally:
        _kill(victim)
        _kill(survivor)
    assert "killed or crashed" in _status(victim_id)[2]
    with session_scope() as s:
        survivor_run = run_queries.get_run(s, survivor_id)
        assert survivor_run.status is RunStatus.COMPLETED and survivor_run.metrics["macro_f1"] == 0.75
        assert survivor_run.metrics["others_stopped"] is True
    _database_is_consistent()


@pytest.mark.slow
def test_a_queued_run_does_not_wait_forever_behind_a_killed_one(classification_dataset: int) -> None:
    """One run per device: the run waiting its turn notices that the one ahead was killed, then runs."""
    first_id, second_id = _queued_run(classification_dataset), _queued_run(classification_dataset)
    env = {"PROTOLAB_MAX_RUNS_PER_DEVICE": "1"}
    first = _spawn(first_id, "slow_executor", **env)
    try:
        _wait_until(_running_with_progress(first_id), 60, "the first run to start")
        second = _spawn(second_id, "quick_executor", **env)
        _wait_until(lambda: "waiting" in (_status_text(second_id) or ""), 30, "the second run to queue")
        first.kill()
        assert second.wait(60) == 0
    finally:
        _kill(first)
    assert _status(first_id)[0] is RunStatus.FAILED
    assert _status(second_id)[0] is RunStatus.COMPLETED
    _database_is_consistent()


def _status_text(run_id: int) -> str | None:
    with session_scope() as s:
        return run_queries.get_run(s, run_id).status_text


# --- disk full or unwritable PROTOLAB_HOME --------------------------------------------------

def test_disk_full_while_writing_a_dataset_keeps_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd

    from core.data.storage import StorageError, write_dataset
    from tests.conftest import sentiment_frame, with_splits

    def full(*_a: Any, **_k: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full)
    with pytest.raises(StorageError, match="No space left on device"), session_scope() as s:
        write_dataset(s, name="full", task=TaskKind.CLASSIFICATION, frame=with_splits(sentiment_frame(20)),
                      mapping={"text": "text", "label": "label"})
    with session_scope() as s:
        assert s.query(Dataset).count() == 0
    datasets_dir = load_settings().datasets_dir
    assert not datasets_dir.exists() or list(datasets_dir.iterdir()) == []  # no staging folder left


def _home_under_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PROTOLAB_HOME below a regular file: mkdir fails with ENOTDIR, which even root cannot get round."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("PROTOLAB_HOME", str(blocker / "home"))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    return blocker / "home"


def test_unwritable_home_at_dataset_import_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.data.storage import StorageError, write_dataset
    from tests.conftest import sentiment_frame, with_splits

    _home_under_a_file(tmp_path, monkeypatch)
    with pytest.raises(StorageError, match="could not write the dataset") as info, session_scope() as s:
        write_dataset(s, name="nowhere", task=TaskKind.CLASSIFICATION, frame=with_splits(sentiment_frame(20)),
                      mapping={"text": "text", "label": "label"})
    assert "sqlite" not in str(info.value)
    with session_scope() as s:
        assert s.query(Dataset).count() == 0


def test_unwritable_home_when_starting_a_run_fails_the_run_instead_of_queueing_it_forever(
        classification_dataset: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The dataset exists (written before the disk went away); now PROTOLAB_HOME cannot be written.
    url = os.environ["DATABASE_URL"]
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    monkeypatch.setenv("PROTOLAB_HOME", str(blocker / "home"))
    monkeypatch.setenv("DATABASE_URL", url)
    with pytest.raises(jobs.JobError, match="a part of the path is a file") as info:
        queue_run(dataset_id=classification_dataset, model_kind="tfidf",
                       config={"device": "cpu"})
    assert "\n" not in str(info.value)
    with session_scope() as s:
        (run,) = run_queries.list_runs(s)
        assert run.status is RunStatus.FAILED and "cannot write to" in run.error
        assert run.finished_at is not None


def test_disk_full_at_checkpoint_time_fails_the_run_with_a_one_line_reason(
        classification_dataset: int, monkeypatch: pytest.MonkeyPatch) -> None:
    use_executor(monkeypatch, "tests.test_faults:disk_full_executor")
    run_id = _queued_run(classification_dataset)
    assert worker.execute(run_id) is RunStatus.FAILED
    status, _, error, _ = _status(run_id)
    assert status is RunStatus.FAILED
    assert error.startswith("cannot write to") and "the disk is full" in error and "Traceback" not in error
    assert (run_dir(run_id) / "INCOMPLETE").exists()


@pytest.mark.parametrize("kind", ["safetensors", "torch", "chained"])
def test_disk_full_reported_by_a_library_is_still_a_one_line_reason(classification_dataset: int, kind: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    use_executor(monkeypatch, "tests.test_faults:library_disk_full_executor")
    run_id = _queued_run(classification_dataset, **{"raise": kind})
    assert worker.execute(run_id) is RunStatus.FAILED
    error = _status(run_id)[2]
    assert error.startswith("cannot write to") and "the disk is full" in error and "\n" not in error, error


def test_an_unrelated_crash_is_not_mistaken_for_a_full_disk(classification_dataset: int,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    use_executor(monkeypatch, "tests.worker_executors:crashing_executor")
    run_id = _queued_run(classification_dataset)
    assert worker.execute(run_id) is RunStatus.FAILED
    assert _status(run_id)[2].startswith("ZeroDivisionError")


@pytest.mark.slow
def test_disk_full_while_a_real_lstm_saves_its_checkpoint_fails_the_run(
        classification_dataset: int, monkeypatch: pytest.MonkeyPatch) -> None:
    import safetensors.torch
    from safetensors import SafetensorError

    from core.text.config import build_config

    def full(_tensors: Any, filename: str, *_a: Any, **_k: Any) -> None:
        raise SafetensorError(f'Error while serializing: I/O error: No space left on device (os error 28) at '
                              f'path "{filename}"')

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    config = build_config("lstm", {"epochs": 1, "max_length": 16, "init_embeddings": False, "device": "cpu"})
    with session_scope() as s:
        run_id = run_queries.create_run(s, dataset_id=classification_dataset, task=TaskKind.CLASSIFICATION,
                                        model_kind="lstm", config=config).id
    assert worker.execute(run_id) is RunStatus.FAILED
    status, progress, error, _ = _status(run_id)
    assert "the disk is full" in error and "\n" not in error, error
    with session_scope() as s:
        assert run_queries.get_run(s, run_id).metrics in ({}, None)
    assert not (run_dir(run_id) / "meta.json").exists()  # nothing that looks like a finished model


def test_disk_full_while_a_real_tfidf_run_saves_its_model_never_completes_it(
        classification_dataset: int, monkeypatch: pytest.MonkeyPatch) -> None:
    import skops.io

    def full(*_a: Any, **_k: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "model.skops")

    monkeypatch.setattr(skops.io, "dump", full)
    run_id = _queued_run(classification_dataset)
    assert worker.execute(run_id) is RunStatus.FAILED
    status, _, error, _ = _status(run_id)
    assert status is RunStatus.FAILED and "disk is full" in error
    with session_scope() as s:
        assert run_queries.get_run(s, run_id).metrics in ({}, None)


# --- a busy SQLite: readers never queue behind writers ---------------------------------------------

def _hold_write_lock() -> sqlite3.Connection:
    """Another process's writer in the middle of a transaction (a worker flushing progress)."""
    conn = sqlite3.connect(load_settings().database_url.split("///", 1)[1], isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("UPDATE runs SET status_text = 'writing' WHERE id > 0")
    return conn


def test_reads_do_not_wait_for_a_writer(classification_dataset: int) -> None:
    import threading

    from db.engine import read_scope

    run_id = _queued_run(classification_dataset)
    writer = _hold_write_lock()
    try:
        start = time.monotonic()
        with read_scope() as s:  # what pages and listings use
            runs = run_queries.list_runs(s)
        assert time.monotonic() - start < 1.0
        assert [r.id for r in runs] == [run_id] and runs[0].status_text == "queued"  # the committed snapshot
        # A read-write session does queue behind the writer (BEGIN IMMEDIATE), which is why reads must not use it.
        done = threading.Event()
        threading.Thread(target=lambda: (_status(run_id), done.set()), daemon=True).start()
        assert not done.wait(1.0)
    finally:
        writer.execute("COMMIT")
        writer.close()
    assert done.wait(30)


def test_read_scope_refuses_writes(classification_dataset: int) -> None:
    from db.engine import read_scope

    run_id = _queued_run(classification_dataset)
    with pytest.raises(RuntimeError, match="read-only"), read_scope() as s:
        run_queries.get_run(s, run_id).status_text = "sneaky"
    assert _status_text(run_id) == "queued"


def test_reaping_takes_no_write_lock_when_nothing_is_dead(classification_dataset: int) -> None:
    run_id = _queued_run(classification_dataset)
    with session_scope() as s:
        run_queries.get_run(s, run_id).heartbeat_at = None
    writer = _hold_write_lock()
    try:
        start = time.monotonic()
        assert jobs.reap_dead_runs() == []
        assert time.monotonic() - start < 1.0
    finally:
        writer.execute("ROLLBACK")
        writer.close()


@pytest.mark.postgres
def test_read_scope_works_on_postgres(fresh_postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from db.engine import read_scope

    monkeypatch.setenv("DATABASE_URL", fresh_postgres_url)
    with read_scope() as s:
        assert run_queries.count_runs(s) == {}
    assert jobs.reap_dead_runs() == []


# --- a completed run whose artifact folder is missing or damaged -------------------------------------

def _page(name: str):  # noqa: ANN202
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(ROOT / "pages" / name), default_timeout=120)


def _messages(at) -> str:  # noqa: ANN001
    return " ".join(str(e.value) for e in (*at.error, *at.warning, *at.info))


def _damage(folder: Path, how: str) -> None:
    import shutil

    if how == "missing":
        shutil.rmtree(folder)
        return
    for path in folder.rglob("*"):
        if path.is_file():
            path.write_bytes(b"\x00garbage\xff" * 3)


@pytest.mark.parametrize("how", ["missing", "corrupted"])
def test_evaluate_page_says_when_a_runs_files_are_gone(completed_classification_run: int, how: str) -> None:
    _damage(run_dir(completed_classification_run), how)
    at = _page("evaluate.py").run()
    assert not at.exception, at.exception
    assert "cannot be read" in _messages(at) or "missing" in _messages(at).lower(), _messages(at)


@pytest.mark.parametrize("how", ["missing", "corrupted"])
def test_sentiment_page_says_when_a_runs_model_is_gone(make_served_run, how: str) -> None:  # noqa: ANN001
    run_id = make_served_run("tfidf")
    _damage(run_dir(run_id), how)
    at = _page("sentiment.py").run()
    assert not at.exception, at.exception
    assert _messages(at), "the page says nothing about the unusable model"
    assert not at.text_area  # no demo offered on a model that cannot be loaded


@pytest.fixture
def completed_recommender_run(interactions_dataset: int) -> int:
    from core.recs.config import build_config

    with session_scope() as s:
        run_id = run_queries.create_run(s, dataset_id=interactions_dataset, task=TaskKind.INTERACTIONS,
                                        model_kind="popularity", config=build_config("popularity", {})).id
    assert worker.execute(run_id) is RunStatus.COMPLETED
    return run_id


REC_FILES = ["index.json", "arrays.safetensors", "history.parquet", "items.parquet"]


def test_recommendations_page_says_when_a_runs_folder_is_missing(completed_recommender_run: int) -> None:
    healthy = _page("recommendations.py").run()
    assert not healthy.exception and not healthy.error  # the run is served before the damage
    _damage(run_dir(completed_recommender_run), "missing")
    at = _page("recommendations.py").run()
    assert not at.exception, at.exception
    assert _messages(at), "the page says nothing about the unusable model"


@pytest.mark.parametrize("name", REC_FILES)
def test_recommendations_page_says_when_a_model_file_is_damaged(completed_recommender_run: int, name: str) -> None:
    import streamlit as st

    (run_dir(completed_recommender_run) / "model" / name).write_bytes(b"\x00garbage\xff" * 3)
    st.cache_resource.clear()  # a server that loaded it before the damage serves it from memory; a fresh one cannot
    at = _page("recommendations.py").run()
    assert not at.exception, at.exception
    assert "cannot be served" in _messages(at)


@pytest.mark.parametrize("name", REC_FILES)
def test_loading_a_damaged_recommender_is_a_user_error(completed_recommender_run: int, name: str) -> None:
    from core.errors import ProtolabError
    from core.recs.serving import load_recommender

    (run_dir(completed_recommender_run) / "model" / name).write_bytes(b"not json {")
    with pytest.raises(ProtolabError):
        model = load_recommender(completed_recommender_run)
        model.recommend(model.users[0], 5)


@pytest.mark.slow
def test_the_watchdog_reaps_a_killed_worker_that_nobody_launched_or_watches(classification_dataset: int) -> None:
    """After a server restart nobody holds the worker's handle: the server's watchdog thread still notices."""
    run_id = _queued_run(classification_dataset)
    victim = _spawn(run_id, "slow_executor")
    stop = jobs.start_watchdog(interval_s=0.5)
    try:
        assert jobs.start_watchdog(interval_s=0.5) is stop  # one per process and database
        _wait_until(_running_with_progress(run_id), 60, "the worker to start")
        victim.kill()
        # Nothing else in this test reaps: without the watchdog the run would stay "running" and the wait time out.
        _wait_until(lambda: _status(run_id)[0] is RunStatus.FAILED, 60, "the watchdog to reap the run")
    finally:
        stop.set()
        _kill(victim)
    assert "killed or crashed" in _status(run_id)[2]
