"""Disk full, on a real small file system (a 8 MB tmpfs mounted as the runs folder): a run that cannot fit its
model and checkpoint is refused before it starts, a write that finds the disk full becomes the run's stated
reason with what is free and where, and a worker that could not even record that is explained by its watcher."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import settings
from core.runs import jobs, registry
from db import runs as run_queries
from db import session_scope
from db.enums import RunStatus, TaskKind
from tests.helpers import wait_until_finished


@pytest.fixture
def small_runs_disk(tmp_path: Path) -> Iterator[Path]:
    """PROTOLAB_HOME/runs on its own 8 MB tmpfs (the database and datasets stay on the big disk)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs (a real full disk) needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    runs = settings.load_settings().runs_dir
    runs.parent.mkdir(parents=True, exist_ok=True)
    runs.symlink_to(mount, target_is_directory=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(mount: Path, leave_bytes: int) -> None:
    import shutil

    free = shutil.disk_usage(mount).free
    (mount / "someone-elses-file").write_bytes(bytes(max(0, free - leave_bytes)))


def _run_row(run_id: int) -> tuple[RunStatus, str]:
    with session_scope() as s:
        run = run_queries.get_run(s, run_id)
        return run.status, run.error or ""


def test_a_run_that_cannot_fit_is_refused_before_it_starts(small_runs_disk: Path, classification_dataset: int) -> None:
    _fill(small_runs_disk, 2 * 1024**2)
    with session_scope() as s:
        run_id = jobs.start_run(s, dataset_id=classification_dataset, model_kind="tfidf",
                                config=registry.get_kind("tfidf").make_config({}))
    assert wait_until_finished(run_id) is RunStatus.FAILED
    status, error = _run_row(run_id)
    assert error.startswith("the disk is full: ") and " free on " in error, error
    assert "a TF-IDF" in error and "needs at least about 20 MB" in error and "\n" not in error


@pytest.fixture
def disk_kind(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(settings.MODEL_KINDS.name, "tests.disk_kind")
    monkeypatch.setattr(registry._registry, "kinds", dict(registry._registry.kinds))
    import tests.disk_kind

    importlib.reload(tests.disk_kind)
    return tests.disk_kind.NAME


def test_a_write_that_fills_the_disk_is_the_runs_reason(small_runs_disk: Path, classification_dataset: int,
                                                        disk_kind: str) -> None:
    with session_scope() as s:
        run_id = jobs.start_run(s, dataset_id=classification_dataset, model_kind=disk_kind, config={})
    assert wait_until_finished(run_id) is RunStatus.FAILED
    status, error = _run_row(run_id)
    assert error.startswith("cannot write to ") and "the disk is full: " in error and " KB free on " in error, error
    assert "/home/runs/" in error and "\n" not in error


def test_a_worker_that_could_not_record_a_full_disk_is_explained_by_its_watcher(classification_dataset: int) -> None:
    with session_scope() as s:
        run = run_queries.create_run(s, dataset_id=classification_dataset, task=TaskKind.CLASSIFICATION,
                                     model_kind="tfidf", config={})
        run_id = run.id
        run.status, run.pid = RunStatus.RUNNING, 1
    # A real process that ends as a worker does when the database shares the full disk.
    proc = subprocess.Popen([sys.executable, "-c", f"import sys; sys.exit({jobs.EXIT_DISK_FULL})"])
    jobs._watch_worker(proc, run_id, settings.load_settings().database_url, jobs.RunFiles.of(run_id))
    status, error = _run_row(run_id)
    assert status is RunStatus.FAILED and "the disk is full: " in error and " free on " in error
    assert "without reporting" not in error
