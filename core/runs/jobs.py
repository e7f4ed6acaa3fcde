"""Starting, cancelling and watching background runs.

A run is a database row plus a worker process (`python -m core.runs.worker RUN_ID`,
or `torchrun ... -m core.runs.worker RUN_ID` for several GPUs). Pages and the CLI
only talk to the database; a worker that dies is noticed here by its missing
process or its stale heartbeat and marked failed with the reason. When a worker
fleet runs (core.runs.fleet), a run only waits in the queue for a daemon to claim
it, and a run whose daemon died goes back to the queue instead of failing.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from core import settings
from core.errors import ProtolabError
from core.names import check_name
from core.runs import queue, registry, scheduling
from core.runs.files import RunFiles, free_text
from core.settings import load_settings
from core.tasks import get_task
from db import after_commit, read_scope, session_scope
from db import runs as run_queries
from db import workers as worker_queries
from db.enums import JOB_KINDS, RunStatus
from db.models import Run, Worker, utcnow

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 2.0
# A worker that has not written a heartbeat for this long is presumed dead.

# Popen handles of workers this process started: polling them reaps zombies, so a
# killed worker is seen as dead instead of lingering as <defunct>.
_children: dict[int, subprocess.Popen] = {}
# How each worker this process launched ended (pid -> text such as "was killed by SIGKILL"), kept once the reaper
# polls it: whichever of the reaper and the child's watcher sees the death first, the run's reason says how.
_endings: dict[int, str] = {}
_watchdogs: dict[str, threading.Event] = {}
_watchdog_lock = threading.Lock()
WATCHDOG_INTERVAL_S = 5.0


class JobError(ProtolabError):
    """A run could not be started or changed (unknown id, wrong state)."""


def start_run(
    s: Session, *, dataset_id: int, model_kind: str, config: dict[str, Any], name: str | None = None,
    parent_run_id: int | None = None, estimate_s: float | None = None, task: str | None = None,
) -> int:
    """Queue a run in the caller's transaction; once that transaction commits its worker starts here, or a
    worker daemon of the fleet claims it (core.runs.queue.dispatch_mode). The run id.

    `estimate_s`, the pre-flight estimate when the caller has one, lets a short run start beside a long one
    (core.runs.scheduling). `task`: the dataset's, for a kind that trains several (default: the kind's own)."""
    kind = registry.get_kind(model_kind)
    name = check_name(name, "a run", error=JobError) if name and name.strip() else None
    nodes = int(config.get("nodes", 1) or 1)
    if nodes > 1 and queue.dispatch_mode() == "local":
        raise JobError(f"a run over {nodes} machines needs the worker fleet: start `protolab worker` on each of them "
                       "(or set PROTOLAB_DISPATCH=queue to queue it until they are up)")
    run = run_queries.create_run(s, dataset_id=dataset_id, task=task or kind.task, model_kind=model_kind, config=config,
                                 name=name, parent_run_id=parent_run_id)
    if estimate_s is not None:
        run.events = [{**scheduling.estimate_event(estimate_s), "at": utcnow().isoformat()}]
    run_id, gpus = run.id, int(config.get("gpus", 1) or 1)
    after_commit(s, lambda: dispatch(run_id, gpus=gpus))
    return run_id


def dispatch(run_id: int, gpus: int = 1) -> int | None:
    """Launch the worker of a committed, queued run here, unless the fleet takes it; the pid or None."""
    if queue.dispatch_mode() == "queue":
        return None
    return launch_worker(run_id, gpus=gpus)


def worker_command(run_id: int, gpus: int = 1) -> list[str]:
    if gpus > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc_per_node={int(gpus)}", "-m", "core.runs.worker", str(int(run_id))]
    return [sys.executable, "-m", "core.runs.worker", str(int(run_id))]


def launch_worker(run_id: int, gpus: int = 1) -> int:
    """Start the worker detached from this process (it outlives a Streamlit restart)."""
    settings = load_settings()
    files = RunFiles.of(run_id)
    folder = files.root
    env, project_root = worker_env(), PROJECT_ROOT
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(files.worker_log, "ab") as log_file:
            proc = subprocess.Popen(worker_command(run_id, gpus), stdout=log_file, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env, cwd=project_root, start_new_session=True)
    except OSError as exc:
        # Without this the row would wait in the queue forever: no worker, no heartbeat.
        message = f"could not start the worker: {disk_error_text(exc, folder)}"
        log.error("run %d: %s", run_id, message)
        with session_scope(settings.database_url) as s:
            run = run_queries.get_run(s, run_id)
            if run is not None and run.status.is_active:
                run.status, run.finished_at, run.error = RunStatus.FAILED, utcnow(), message
                run.status_text = "failed: worker not started"
        raise JobError(message) from exc
    _children[proc.pid] = proc
    _endings.pop(proc.pid, None)  # a recycled pid: how an earlier worker of ours ended says nothing of this one
    with session_scope(settings.database_url) as s:
        run = run_queries.get_run(s, run_id)
        if run is not None and run.pid is None:
            run.pid, run.host = proc.pid, socket.gethostname()
            run.heartbeat_at = utcnow()  # the launch counts as a first sign of life
    # Watch the child from here, so a killed worker is marked failed at once, whoever is looking.
    threading.Thread(target=_watch_worker, args=(proc, run_id, settings.database_url, files),
                     name=f"protolab-watch-{run_id}", daemon=True).start()
    return proc.pid


PROJECT_ROOT = str(Path(__file__).resolve().parents[2])


def worker_env() -> dict[str, str]:
    """The environment of a worker process: this one's, with the data folder, database and code made explicit."""
    here = load_settings()
    env = dict(os.environ)
    env[settings.HOME.name] = str(here.home)
    env[settings.DATABASE_URL.name] = here.database_url
    # The worker imports core/ and db/ from the project root, wherever it is launched from.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PROJECT_ROOT, env.get("PYTHONPATH")) if p)
    return env


EXIT_DISK_FULL = 28  # a worker's exit code (ENOSPC's number) when the disk was too full to record its failure


def disk_error_text(exc: OSError, folder: Path) -> str:
    """A one-line explanation of a failed write, naming the folder (never a database URL)."""
    reasons = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exhausted",
               errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
               errno.EPERM: "permission denied", errno.ENOTDIR: "a part of the path is a file, not a folder"}
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        reason = f"{reasons[exc.errno]}: {free_text(folder)}"  # "the disk is full: 416 KB free on /data"
    else:
        reason = reasons.get(exc.errno or -1, exc.strerror or str(exc))
    return f"cannot write to {folder}: {reason} (check PROTOLAB_HOME and free disk space)"


def exit_text(code: int) -> str:
    """How a process ended, from its return code: "was killed by SIGKILL", "exited with code 1"."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _ending_of(pid: int) -> str | None:
    """How a worker this process launched ended, or None while it runs (or when it is not ours)."""
    proc = _children.get(pid)
    if proc is not None and proc.poll() is not None:
        _endings[pid] = exit_text(proc.returncode)
        _children.pop(pid, None)
    return _endings.get(pid)


def _watch_worker(proc: subprocess.Popen, run_id: int, database_url: str, files: RunFiles) -> None:
    """Wait for one worker to exit; if its run is still active then, it died without reporting."""
    code = proc.wait()
    _children.pop(proc.pid, None)
    how = _endings[proc.pid] = exit_text(code)
    try:
        if code == EXIT_DISK_FULL:
            reason = disk_error_text(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), files.root)
            with session_scope(database_url) as s:
                run = run_queries.get_run(s, run_id)
                if run is not None and run.status.is_active:
                    run.status, run.finished_at, run.error = RunStatus.FAILED, utcnow(), reason
                    run.status_text = "failed: could not write files"
                    log.warning("run %d marked failed: %s", run_id, reason)
            return
        with session_scope(database_url) as s:
            run = run_queries.get_run(s, run_id)
            # Under torchrun run.pid is rank 0's pid, not the launcher's; check that one too.
            if (run is None or not run.status.is_active or run.pid is None
                    or (run.pid != proc.pid and _worker_alive(run.pid))):
                return
            tail = _tail(files.worker_log)
            reason = f"the worker process (pid {proc.pid}) {how} without reporting: killed or crashed"
            run.status, run.finished_at = RunStatus.FAILED, utcnow()
            run.error = reason + (f"\n\nLast lines of the worker log:\n{tail}" if tail else "")
            run.status_text = "failed: worker died"
            log.warning("run %d marked failed: %s", run_id, reason)
    except Exception as exc:  # the database may be gone (a test's temporary folder); reap_dead_runs still covers it
        log.warning("run %d: the worker (pid %d) %s, but its run could not be marked failed here (%s: %s); the "
                    "next reaper will", run_id, proc.pid, how, type(exc).__name__, exc)


def cancel_run(s: Session, run_id: int) -> RunStatus:
    """Ask a run to stop (in the caller's transaction): a queued run is cancelled at once, a running one at its
    next step."""
    run = _require(s, run_id)
    if not run.status.is_active:
        raise JobError(f"run {run_id} is {run.status.value}; only queued or running runs can be cancelled")
    run_queries.request_cancel(s, run)
    return run.status


def resume_run(s: Session, run_id: int) -> None:
    """Put a failed or cancelled run back in the queue; after the commit its worker picks up the last checkpoint."""
    run = _require(s, run_id)
    if run.status not in (RunStatus.FAILED, RunStatus.CANCELLED):
        raise JobError(f"run {run_id} is {run.status.value}; only failed or cancelled runs can be resumed")
    if not RunFiles.of(run_id).has_checkpoint():
        raise JobError(f"run {run_id} has no checkpoint to resume from (it stopped before its first one)")
    run.status, run.cancel_requested, run.error = RunStatus.QUEUED, False, None
    run.pid, run.finished_at, run.status_text = None, None, "queued to resume"
    run.events = [*run.events, {"event": "resume", "at": utcnow().isoformat()}]
    run.config = {**run.config, "resume": True}
    worker_queries.delete_claims(s, run_id)  # where it ran before; the fleet may claim it afresh
    gpus = int(run.config.get("gpus", 1) or 1)
    after_commit(s, lambda: dispatch(run_id, gpus=gpus))


def set_demo_pin(s: Session, run_id: int, pinned: bool) -> None:
    """Pin a completed model run for demos (or unpin it), in the caller's transaction."""
    run = _require(s, run_id)
    if pinned and (run.status != RunStatus.COMPLETED or run.model_kind in JOB_KINDS):
        raise JobError(f"run {run_id} is {run.status.value if run.status != RunStatus.COMPLETED else 'a job'}; "
                       "only a completed model run can be pinned for demos")
    run_queries.set_pinned(s, run, pinned)


def retrain(s: Session, run_id: int, dataset_id: int) -> int:
    """Queue a run with the same model and configuration on another dataset (version), in the caller's
    transaction; its id."""
    run = _require(s, run_id)
    config = {k: v for k, v in (run.config or {}).items() if k != "resume"}
    name = f"{run.name or run.model_kind} (retrained)"[:200]
    # The run's task, not the kind's own: a kind trains several (a multi-label TF-IDF run stays multi-label).
    return start_run(s, dataset_id=dataset_id, model_kind=run.model_kind, config=config, name=name,
                     parent_run_id=run_id, task=run.task)


def reap_dead_runs(database_url: str | None = None) -> list[int]:
    """Mark active runs whose worker is gone or silent as failed (or, for runs a fleet daemon claimed, put them
    back in the queue), and retire silent daemons; returns the ids of the runs handled.

    Called by pages and the CLI when they list runs, by every worker's heartbeat and
    queue loops, by the fleet's daemons, and (for its own child) by the process that launched a worker.
    """
    for pid in list(_children):
        _ending_of(pid)
    # Look first without the write lock: almost always nothing is dead, and this runs on every
    # page listing and every few heartbeats of every worker.
    with read_scope(database_url) as s:
        dead_ids = [run.id for run, _ in _dead_runs(s)]
        silent = [w.id for w in worker_queries.silent_workers(s, settings.WORKER_STALE_AFTER_S.get())]
    if not dead_ids and not silent:
        return []
    reaped = []
    with session_scope(database_url) as s:
        for worker_id in silent:
            reaped += _retire_silent_worker(s, worker_id)
        host, claimed = socket.gethostname(), worker_queries.claims_of_runs(s, dead_ids)
        for run_id in dead_ids:
            # Again, under the lock (a row lock on PostgreSQL): a worker may have finished meanwhile, or another
            # process reaped it already.
            run = s.get(Run, run_id, with_for_update=True, populate_existing=True)
            reason = _death_reason(run, host, utcnow()) if run is not None else None
            if reason is None:
                continue
            if claimed.get(run_id):
                log.warning("run %d back to the queue: %s", run_id, reason)
                queue.requeue_run(s, run, reason, lost=True)
            else:
                log.warning("run %d marked failed: %s", run_id, reason)
                tail = log_tail(run.id)
                run.status, run.finished_at = RunStatus.FAILED, utcnow()
                run.error = reason + (f"\n\nLast lines of the worker log:\n{tail}" if tail else "")
                run.status_text = "failed: worker died"
            reaped.append(run.id)
    return reaped


def _retire_silent_worker(s: Session, worker_id: int) -> list[int]:
    """A daemon that stopped beating is lost: its active runs go back to the queue. The ids of those runs."""
    from datetime import timedelta

    worker = s.get(Worker, worker_id, with_for_update=True, populate_existing=True)
    cutoff = utcnow() - timedelta(seconds=settings.WORKER_STALE_AFTER_S.get())
    if (worker is None or worker.state not in ("online", "draining")
            or run_queries.as_utc(worker.heartbeat_at) >= cutoff):
        return []
    worker.state = "lost"
    log.warning("worker %s on %s is lost: no heartbeat for over %.0f s", worker.name, worker.host,
                settings.WORKER_STALE_AFTER_S.get())
    requeued = []
    for claim in worker_queries.claims_of_worker(s, worker_id):
        run = s.get(Run, claim.run_id, with_for_update=True, populate_existing=True)
        if run is not None and run.status.is_active:
            queue.requeue_run(s, run, f"worker {worker.name} on {worker.host} stopped sending heartbeats for "
                                      f"over {settings.WORKER_STALE_AFTER_S.get():.0f} s", lost=True)
            requeued.append(run.id)
    return requeued


def _dead_runs(s) -> list[tuple[Run, str]]:  # noqa: ANN001
    """Active runs whose worker is gone (same host, pid not alive) or silent, each with the reason."""
    host, now = socket.gethostname(), utcnow()
    dead = []
    for run in run_queries.active_runs(s):
        reason = _death_reason(run, host, now)
        if reason is not None:
            dead.append((run, reason))
    return dead


def _death_reason(run: Run, host: str, now) -> str | None:  # noqa: ANN001
    """Why an active run's worker is presumed dead, or None while it looks alive."""
    if not run.status.is_active:
        return None
    if run.pid == os.getpid() and run.host == host:
        return None  # this very process runs it (a worker reaping, or a run executed in-process)
    if run.pid is not None and run.host == host and not _worker_alive(run.pid):
        how = _ending_of(run.pid) or "ended"  # known when this process launched it
        return f"the worker process (pid {run.pid}) {how} without reporting: killed or crashed"
    stale_after_s = settings.STALE_AFTER_S.get()
    if run.heartbeat_at is not None and (now - run_queries.as_utc(run.heartbeat_at)).total_seconds() > stale_after_s:
        return f"the worker stopped sending heartbeats for over {stale_after_s:.0f} s"
    return None


def start_watchdog(interval_s: float = WATCHDOG_INTERVAL_S, database_url: str | None = None) -> threading.Event:
    """Reap dead runs every `interval_s` from a daemon thread of this process, once per database.

    For long-lived processes that show runs (the Streamlit server): a worker killed after the
    server restarted is then marked failed within seconds, even when no page is open.
    Returns the event that stops it.
    """
    url = database_url or load_settings().database_url
    with _watchdog_lock:
        stop = _watchdogs.get(url)
        if stop is not None and not stop.is_set():
            return stop
        stop = _watchdogs[url] = threading.Event()
    threading.Thread(target=_watchdog_loop, args=(url, interval_s, stop), name="protolab-watchdog",
                     daemon=True).start()
    return stop


def stop_watchdogs() -> None:
    """Stop every watchdog thread of this process (tests switch databases between cases)."""
    with _watchdog_lock:
        for stop in _watchdogs.values():
            stop.set()
        _watchdogs.clear()


def _watchdog_loop(database_url: str, interval_s: float, stop: threading.Event) -> None:
    while not stop.wait(interval_s):
        try:
            reap_dead_runs(database_url)
        except Exception as exc:  # a database that is briefly away is tried again next time
            log.warning("the watchdog could not look for dead runs (tried again in %.0f s): %s: %s", interval_s,
                        type(exc).__name__, exc)


def log_tail(run_id: int, lines: int = 20) -> str:
    return _tail(RunFiles.of(run_id).worker_log, lines)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def _worker_alive(pid: int) -> bool:
    import psutil

    child = _children.get(pid)
    if child is not None:
        # A worker this process launched: poll() knows, and its pid cannot be recycled before it is waited for.
        # Its /proc cmdline cannot be trusted right after the launch: Popen returns once exec has begun, and the
        # kernel sets the new argv a moment later, so a reaper reading it then found no "core.runs.worker" and
        # failed a starting run (CI: the worker's first log line came 0.56 s after it was reaped).
        return child.poll() is None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        cmdline = " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    if not cmdline:  # a process still in exec (launched by another process here): not dead; heartbeats decide later
        return True
    # A recycled pid that now belongs to some other program is not our worker.
    return "core.runs.worker" in cmdline


def completed_run(s, run_id: int, task: str, use: str) -> Run:  # noqa: ANN001
    """The completed run `run_id` of `task`, or a JobError saying why it cannot `use` (e.g. "predict")."""
    run = run_queries.get_run(s, run_id)
    if run is None:
        raise JobError(f"no run with id {run_id} (see `protolab runs list`)")
    if run.task != task:
        raise JobError(f"run {run_id} is a {run.task} run; {use} needs {get_task(task).run_noun}")
    if run.status != RunStatus.COMPLETED:
        raise JobError(f"run {run_id} is {run.status.value}; only completed runs can {use}")
    return run


def _require(s, run_id: int) -> Run:  # noqa: ANN001
    run = run_queries.get_run(s, run_id)
    if run is None:
        raise JobError(f"no run with id {run_id}")
    return run
