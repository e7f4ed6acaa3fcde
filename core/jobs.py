"""Starting, cancelling and watching background runs.

A run is a database row plus a worker process (`python -m core.worker RUN_ID`,
or `torchrun ... -m core.worker RUN_ID` for several GPUs). Pages and the CLI
only talk to the database; a worker that dies is noticed here by its missing
process or its stale heartbeat and marked failed with the reason.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from core.errors import ProtolabError
from core.settings import load_settings, run_dir
from db import runs as run_queries
from db import session_scope
from db.models import Run, RunStatus, TaskKind, utcnow

HEARTBEAT_INTERVAL_S = 2.0
# A worker that has not written a heartbeat for this long is presumed dead.
STALE_AFTER_S = float(os.environ.get("PROTOLAB_STALE_AFTER_S", "20"))
WORKER_LOG = "worker.log"

# Popen handles of workers this process started: polling them reaps zombies, so a
# killed worker is seen as dead instead of lingering as <defunct>.
_children: dict[int, subprocess.Popen] = {}


class JobError(ProtolabError):
    """A run could not be started or changed (unknown id, wrong state)."""


def start_run(
    *, dataset_id: int, task: TaskKind, model_kind: str, config: dict[str, Any],
    name: str | None = None, parent_run_id: int | None = None, gpus: int = 1,
) -> int:
    """Create a queued run row and launch its worker; returns the run id."""
    with session_scope() as s:
        run = run_queries.create_run(s, dataset_id=dataset_id, task=task, model_kind=model_kind,
                                     config=config, name=name, parent_run_id=parent_run_id)
        run_id = run.id
    launch_worker(run_id, gpus=gpus)
    return run_id


def worker_command(run_id: int, gpus: int = 1) -> list[str]:
    if gpus > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc_per_node={int(gpus)}", "-m", "core.worker", str(int(run_id))]
    return [sys.executable, "-m", "core.worker", str(int(run_id))]


def launch_worker(run_id: int, gpus: int = 1) -> int:
    """Start the worker detached from this process (it outlives a Streamlit restart)."""
    folder = run_dir(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    settings = load_settings()
    env["PROTOLAB_HOME"] = str(settings.home)
    env["DATABASE_URL"] = settings.database_url
    # The worker imports core/ and db/ from the project root, wherever it is launched from.
    project_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (project_root, env.get("PYTHONPATH")) if p)
    with open(folder / WORKER_LOG, "ab") as log:
        proc = subprocess.Popen(worker_command(run_id, gpus), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, cwd=project_root, start_new_session=True)
    _children[proc.pid] = proc
    with session_scope() as s:
        run = run_queries.get_run(s, run_id)
        if run is not None and run.pid is None:
            run.pid, run.host = proc.pid, socket.gethostname()
            run.heartbeat_at = utcnow()  # the launch counts as a first sign of life
    return proc.pid


def cancel_run(run_id: int) -> RunStatus:
    with session_scope() as s:
        run = _require(s, run_id)
        if not run.status.is_active:
            raise JobError(f"run {run_id} is {run.status.value}; only queued or running runs can be cancelled")
        run_queries.request_cancel(s, run)
        return run.status


def resume_run(run_id: int) -> None:
    """Put a failed or cancelled run back in the queue; its worker picks up its last checkpoint."""
    with session_scope() as s:
        run = _require(s, run_id)
        if run.status not in (RunStatus.FAILED, RunStatus.CANCELLED):
            raise JobError(f"run {run_id} is {run.status.value}; only failed or cancelled runs can be resumed")
        if not (run_dir(run_id) / "checkpoint").exists():
            raise JobError(f"run {run_id} has no checkpoint to resume from (it stopped before its first one)")
        run.status, run.cancel_requested, run.error = RunStatus.QUEUED, False, None
        run.pid, run.finished_at, run.status_text = None, None, "queued to resume"
        run.events = [*run.events, {"event": "resume", "at": utcnow().isoformat()}]
        run.config = {**run.config, "resume": True}
        gpus = int(run.config.get("gpus", 1) or 1)
    launch_worker(run_id, gpus=gpus)


def reap_dead_runs() -> list[int]:
    """Mark active runs whose worker is gone or silent as failed; returns their ids."""
    for pid, proc in list(_children.items()):
        if proc.poll() is not None:
            _children.pop(pid, None)
    reaped = []
    host = socket.gethostname()
    with session_scope() as s:
        stale = {r.id for r in run_queries.runs_with_stale_heartbeat(s, STALE_AFTER_S)}
        for run in run_queries.active_runs(s):
            if run.pid is not None and run.host == host and not _worker_alive(run.pid):
                reason = f"the worker process (pid {run.pid}) ended without reporting: killed or crashed"
            elif run.id in stale:
                reason = f"the worker stopped sending heartbeats for over {STALE_AFTER_S:.0f} s"
            else:
                continue
            tail = log_tail(run.id)
            run.status, run.finished_at = RunStatus.FAILED, utcnow()
            run.error = reason + (f"\n\nLast lines of the worker log:\n{tail}" if tail else "")
            run.status_text = "failed: worker died"
            reaped.append(run.id)
    return reaped


def log_tail(run_id: int, lines: int = 20) -> str:
    path = run_dir(run_id) / WORKER_LOG
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def _worker_alive(pid: int) -> bool:
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        cmdline = " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    # A recycled pid that now belongs to some other program is not our worker.
    return "core.worker" in cmdline


def _require(s, run_id: int) -> Run:  # noqa: ANN001
    run = run_queries.get_run(s, run_id)
    if run is None:
        raise JobError(f"no run with id {run_id}")
    return run
