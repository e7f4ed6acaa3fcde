"""The background worker: `python -m core.runs.worker RUN_ID` runs one run and reports to the database.

It waits its turn in the per-device queue, then hands a WorkerContext (the core.runs.context.RunContext of the
database) to the executor that the run's model kind names in core.runs.registry. Progress, metric points and a
heartbeat go to the database; the worker itself never touches the UI. Under torchrun only rank 0 writes.

A worker started by a fleet daemon (core.runs.fleet, PROTOLAB_CLAIM_ID set) skips the per-device queue (the
daemon already gave it its devices), dies with its daemon, stops if its claim is taken away, and on SIGTERM
finishes the current step, checkpoints and hands the run back to the queue.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import settings
from core.errors import ProtolabError
from core.logs import configure_logging
from core.runs import queue, registry, scheduling
from core.runs.device import describe_compute
from core.runs.files import RunFiles, check_room
from core.runs.jobs import EXIT_DISK_FULL, HEARTBEAT_INTERVAL_S, disk_error_text, reap_dead_runs
from core.settings import dataset_dir
from core.tasks import resolve
from db import runs as run_queries
from db import session_scope, with_retry
from db import workers as worker_queries
from db.enums import RunStatus, TaskKind
from db.models import Dataset, Run, utcnow

log = logging.getLogger(__name__)

QUEUE_POLL_S = 1.0
PROGRESS_EVERY_S = 0.5
# Every worker also looks after the others: each few beats it marks runs whose worker died as
# failed, so a killed run is noticed within seconds even when no page or CLI is looking.
REAP_EVERY_BEATS = 3
# Write failures that mean "the disk", not "a bug": the run fails with a one-line reason.
DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR}
# Where a run's progress is also sent: MLflow when a tracking URI is in effect (MLFLOW_TRACKING_URI, else the one
# saved on Home, read at each run's start; None otherwise). Named as a
# "module:function", like the executors, because core.tracking sits above core.runs (it draws the run's figures).
TRACKER = "core.tracking.mlflow_runs:start_live"
# Set by SIGTERM in a fleet-started worker: stop at the next step and give the run back to the queue.
_handback = threading.Event()


def claim_id() -> int | None:
    """The fleet claim this process works for (None when started by the app or the CLI directly)."""
    return settings.CLAIM_ID.get()


class RunCancelled(Exception):
    """Raised inside an executor (via RunContext.raise_if_cancelled) to stop a run early."""


@dataclass
class WorkerContext:
    """The RunContext of a worker process: reports go to the run's row (buffered, at most every PROGRESS_EVERY_S)."""

    run_id: int
    task: TaskKind
    model_kind: str
    config: dict[str, Any]
    dataset_id: int
    artifact_dir: Path  # the run's folder; its layout is `files`
    rank: int = 0
    world_size: int = 1
    cancelled: bool = False
    _pending: list[dict[str, Any]] = field(default_factory=list)
    _last_flush: float = 0.0
    _progress: tuple[float, str] | None = None
    tracker: Any = None  # the run's live MLflow logging (core.tracking.mlflow_runs.Tracker), when configured

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def files(self) -> RunFiles:
        return RunFiles(self.artifact_dir)

    def dataset(self) -> Dataset:
        with session_scope() as s:
            run = s.get(Run, self.run_id)
            assert run is not None
            dataset = run.dataset
            s.expunge(dataset)
            return dataset

    def set_device(self, device: str) -> None:
        if self.is_main:
            _update_run(self.run_id, device=device)

    def add_event(self, event: dict[str, Any]) -> None:
        if not self.is_main:
            return

        def write() -> None:
            with session_scope() as s:
                run = s.get(Run, self.run_id)
                if run is not None:
                    run.events = [*run.events, {**event, "at": utcnow().isoformat()}]
        with_retry(write)

    def log_metric(self, name: str, value: float, *, step: int = 0, epoch: float | None = None,
                   split: str = "train") -> None:
        """Buffer a metric point; points are written with the next progress flush."""
        if self.is_main:
            self._pending.append({"name": name, "value": float(value), "step": int(step),
                                  "epoch": epoch, "split": split})

    def progress(self, fraction: float, text: str, *, force: bool = False) -> None:
        """Report progress (0..1) and a one-line status; writes at most every PROGRESS_EVERY_S."""
        self._progress = (max(0.0, min(1.0, float(fraction))), text[:500])
        now = time.monotonic()
        if force or now - self._last_flush >= PROGRESS_EVERY_S:
            self.flush()

    def flush(self) -> None:
        if not self.is_main:
            return
        points, self._pending = self._pending, []
        progress = self._progress

        def write() -> None:
            with session_scope() as s:
                if points:
                    run_queries.add_metric_points(s, self.run_id, points)
                run = s.get(Run, self.run_id)
                if run is not None and progress is not None:
                    run.progress, run.status_text = progress
                    run.heartbeat_at = utcnow()
        with_retry(write)
        self._last_flush = time.monotonic()
        if self.tracker is not None:
            self.tracker.send(points)  # queued: the tracker's own thread sends them

    def should_stop(self) -> bool:
        """True once a cancel was requested. One indexed read per call (sub-millisecond on SQLite),
        so a training loop can ask every step and stop within one optimisation step."""
        if _handback.is_set():
            self.cancelled = True
        if not self.cancelled:
            with session_scope() as s:
                self.cancelled = run_queries.is_cancel_requested(s, self.run_id)
        return self.cancelled

    def raise_if_cancelled(self) -> None:
        if self.should_stop():
            raise RunCancelled()


def _update_run(run_id: int, **values: Any) -> None:
    def write() -> None:
        with session_scope() as s:
            run = s.get(Run, run_id)
            if run is not None:
                for key, value in values.items():
                    setattr(run, key, value)
    with_retry(write)


def _heartbeat_loop(run_id: int, stop: threading.Event) -> None:
    beats = 0
    while not stop.wait(HEARTBEAT_INTERVAL_S):
        beats += 1
        try:
            with_retry(lambda: _touch(run_id))
            if beats % REAP_EVERY_BEATS == 0:
                with_retry(reap_dead_runs)
        except Exception as exc:  # a missed beat is not worth killing the run for, but the reaper may be told later
            log.warning("run %d: heartbeat %d failed, the run goes on: %s: %s", run_id, beats, type(exc).__name__, exc)


def _touch(run_id: int) -> None:
    claim = claim_id()
    with session_scope() as s:
        if claim is not None and not worker_queries.claim_exists(s, claim):
            # The run was taken from us (our daemon was presumed dead and it went back to the queue): stop at
            # once, so it never runs twice. Nothing of ours may be written any more.
            log.error("run %d: this worker's claim was withdrawn (the run went back to the queue); stopping", run_id)
            os._exit(75)
        run_queries.touch_heartbeat(s, run_id)


def device_queue_key(config: dict[str, Any]) -> str:
    """Which queue a run waits in: the kind of device it will use."""
    requested = str(config.get("device") or "auto").lower()
    if requested == "auto":
        return describe_compute().kind
    return requested.split(":")[0]


def _wait_for_turn(run_id: int, queue_key: str, ctx: WorkerContext) -> bool:
    """Block until core.runs.scheduling admits the run on its device; False if it was cancelled meanwhile."""
    polls = 0
    while True:
        if polls % REAP_EVERY_BEATS == 0:
            # A run ahead whose worker was killed would otherwise hold the queue until someone looks.
            try:
                with_retry(reap_dead_runs)
            except Exception as exc:  # the queue is looked at again next poll; waiting is not worth failing over
                log.warning("run %d: could not look for dead runs ahead in the queue: %s: %s", run_id,
                            type(exc).__name__, exc)
        polls += 1
        with session_scope() as s:
            run = s.get(Run, run_id)
            if run is None or run.status != RunStatus.QUEUED or run.cancel_requested:
                return False
            here = [r for r in run_queries.active_runs(s) if device_queue_key(r.config) == queue_key]
            running = [scheduling.is_short(r.events) for r in here if r.status == RunStatus.RUNNING]
            queued = [scheduling.Waiting(r.id, scheduling.is_short(r.events)) for r in here
                      if r.status == RunStatus.QUEUED and (r.id == run_id or not r.cancel_requested)]
            if run_id in scheduling.admitted(running, queued, settings.MAX_RUNS_PER_DEVICE.get(),
                                             scheduling.express_slots(queue_key)):
                return True
            run.status_text = scheduling.waiting_text(running, queue_key, scheduling.is_short(run.events))
            run.heartbeat_at = utcnow()
        time.sleep(QUEUE_POLL_S)


def _wait_for_main_rank(run_id: int, poll_s: float = 0.5) -> RunStatus:
    """Rank > 0: wait until rank 0 has taken the run out of the queue (or it ended without us)."""
    while True:
        with session_scope() as s:
            status = s.get(Run, run_id).status
        if status != RunStatus.QUEUED:
            return status
        time.sleep(poll_s)


# One function, a little over the usual size: the run state machine (queued → running → completed, cancelled or
# failed) reads top to bottom here, and every way out must reach the run row.
def execute(run_id: int) -> RunStatus:
    rank = int(os.environ.get("RANK", "0"))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    with session_scope() as s:
        run = s.get(Run, run_id)
        if run is None:
            log.error("no run with id %d", run_id)
            return RunStatus.FAILED
        # Under torchrun only rank 0 queues and flips the status; the other ranks follow it.
        if rank == 0 and run.status != RunStatus.QUEUED:
            log.warning("run %d is %s; nothing to do", run_id, run.status.value)
            return run.status
        ctx = WorkerContext(run_id=run.id, task=run.task, model_kind=run.model_kind, config=dict(run.config),
                         dataset_id=run.dataset_id, artifact_dir=RunFiles.of(run.id).root, rank=rank,
                         world_size=world_size)
        if ctx.is_main:
            run.pid, run.host, run.heartbeat_at = os.getpid(), socket.gethostname(), utcnow()
        if claim_id() is not None and str(ctx.config.get("device", "")).startswith("cuda:"):
            # The daemon made only its assigned GPUs visible (CUDA_VISIBLE_DEVICES): a machine's GPU index
            # means nothing across a fleet, so "cuda:N" becomes "the GPU given to this run".
            ctx.config["device"] = "cuda"

    stop_heartbeat = threading.Event()
    if ctx.is_main:
        threading.Thread(target=_heartbeat_loop, args=(run_id, stop_heartbeat), daemon=True).start()
    try:
        if ctx.is_main:
            if claim_id() is None and not _wait_for_turn(run_id, device_queue_key(ctx.config), ctx):
                return RunStatus.CANCELLED
            ctx.artifact_dir.mkdir(parents=True, exist_ok=True)
            _update_run(run_id, status=RunStatus.RUNNING, started_at=utcnow(), status_text="starting",
                        artifact_path=str(ctx.artifact_dir))
            log.info("run %d (%s) started on %s, pid %d", run_id, ctx.model_kind, socket.gethostname(), os.getpid())
            ctx.tracker = resolve(TRACKER)(run_id)
        else:
            status = _wait_for_main_rank(run_id)
            if status != RunStatus.RUNNING:
                return status
        _check_dataset_files(ctx)
        if ctx.is_main:
            kind = registry.get_kind(ctx.model_kind)
            check_room(ctx.artifact_dir, kind.disk_mb, f"a {kind.short_label} run")
        metrics = registry.get_kind(ctx.model_kind).for_task(ctx.task).executor()(ctx)
        if ctx.cancelled:
            raise RunCancelled()
        ctx.progress(1.0, "completed")
        ctx.flush()
        if ctx.is_main:
            ctx.files.clear_incomplete()  # left by an earlier stop, if resumed
            _update_run(run_id, status=RunStatus.COMPLETED, finished_at=utcnow(), progress=1.0,
                        status_text="completed", metrics=metrics or {})
            log.info("run %d completed", run_id)
        return RunStatus.COMPLETED
    except RunCancelled:
        if _handback.is_set():
            return _hand_back(ctx)
        _finish_stopped(ctx, RunStatus.CANCELLED, "cancelled by request", None)
        return RunStatus.CANCELLED
    except ProtolabError as exc:  # the message is the whole story
        _finish_stopped(ctx, RunStatus.FAILED, "failed", str(exc))
        return RunStatus.FAILED
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the run row
        if int(ctx.config.get("nodes", 1) or 1) > 1 and claim_id() is not None and _peer_lost(exc):
            return _requeue_lost_node(ctx, exc)
        disk = disk_errno(exc)
        if disk is not None and not isinstance(exc, KeyboardInterrupt):
            # Disk full or unwritable PROTOLAB_HOME (while saving a checkpoint, say): say so in one line.
            _finish_stopped(ctx, RunStatus.FAILED, "failed: could not write files",
                            disk_error_text(OSError(disk, os.strerror(disk)), _failed_folder(exc, ctx)))
            return RunStatus.FAILED
        tail = "".join(traceback.format_exception(exc)[-12:])
        _finish_stopped(ctx, RunStatus.FAILED, "failed", f"{type(exc).__name__}: {exc}\n\n{tail}")
        if isinstance(exc, KeyboardInterrupt):
            raise
        return RunStatus.FAILED
    finally:
        stop_heartbeat.set()
        if ctx.tracker is not None:
            ctx.tracker.finish()  # after the run row is final: a tracking server that is down never holds it


def _check_dataset_files(ctx: WorkerContext) -> None:
    """Fail in one line when this machine cannot see the dataset (a worker without the shared data folder)."""

    folder = dataset_dir(ctx.dataset_id)
    if not folder.is_dir() or not any(folder.iterdir()):
        raise ProtolabError(
            f"the files of dataset {ctx.dataset_id} are not at {folder} on {socket.gethostname()}: every worker must "
            "see the same PROTOLAB_HOME as the app (a shared folder such as NFS; see the README, 'Several machines')")


# How a lost peer of a multi-node run shows on the survivors: torch's distributed errors, or gloo's socket errors
# surfacing as a RuntimeError (torch 2.x words them this way).
_PEER_ERRORS = ("DistError", "DistBackendError", "DistNetworkError", "DistStoreError")
_PEER_TEXTS = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "Connection refused")


def _peer_lost(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) says another node of the run went away."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if any(c.__name__ in _PEER_ERRORS for c in type(exc).__mro__) or any(t in str(exc) for t in _PEER_TEXTS):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _requeue_lost_node(ctx: WorkerContext, exc: BaseException) -> RunStatus:
    """A node of a multi-node run was lost: like a single-node run whose machine died, the run goes back to the
    queue and resumes from its last checkpoint (queue.requeue_run; after MAX_LOSSES it fails, saying so)."""
    if not ctx.is_main:
        return RunStatus.QUEUED
    _last_flush(ctx)
    with contextlib.suppress(OSError):
        ctx.files.mark_incomplete("a node was lost")
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    reason = f"a node of this {ctx.config.get('nodes')}-node run was lost ({type(exc).__name__}: {first})"
    with session_scope() as s:
        run = s.get(Run, ctx.run_id, with_for_update=True)
        if run is None or not run.status.is_active:
            return run.status if run is not None else RunStatus.FAILED
        log.warning("run %d back to the queue: %s", ctx.run_id, reason)
        return queue.requeue_run(s, run, reason, lost=True)


def _hand_back(ctx: WorkerContext) -> RunStatus:
    """SIGTERM from the fleet daemon: the step is finished and the checkpoint written; requeue the run."""
    if not ctx.is_main:
        return RunStatus.QUEUED
    _last_flush(ctx)
    with contextlib.suppress(OSError):
        ctx.files.mark_incomplete("handed back to the queue")

    def write() -> RunStatus:
        with session_scope() as s:
            run = s.get(Run, ctx.run_id)
            return queue.requeue_run(s, run, f"handed back by worker {settings.WORKER_NAME.get()}"
                                             " (stopping)", lost=False)
    return with_retry(write)


_OS_ERROR = re.compile(r"\(os error (\d+)\)|\[Errno (\d+)\]")
_DISK_TEXTS = {"No space left on device": errno.ENOSPC, "Disk quota exceeded": errno.EDQUOT,
               "Read-only file system": errno.EROFS, "file write failed": errno.ENOSPC}


def disk_errno(exc: BaseException) -> int | None:
    """The errno of a failed write to disk anywhere in `exc`'s chain, or None.

    Libraries report it their own way: OSError (Python, pandas, skops), SafetensorError
    "... (os error 28)" (safetensors), RuntimeError "... file write failed" (torch.save).
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
            return exc.errno
        text = str(exc)
        for match in _OS_ERROR.finditer(text):
            code = int(match.group(1) or match.group(2))
            if code in DISK_ERRNOS:
                return code
        for phrase, code in _DISK_TEXTS.items():
            if phrase in text:
                return code
        exc = exc.__cause__ or exc.__context__
    return None


def _failed_folder(exc: BaseException, ctx: WorkerContext) -> Path:
    filename = getattr(exc, "filename", None)
    return Path(filename).parent if filename else ctx.artifact_dir


def _last_flush(ctx: WorkerContext) -> None:
    """Write what is buffered before the run stops; the stop itself must go on if the database refuses."""
    try:
        ctx.flush()
    except Exception as exc:
        log.warning("run %d: the last progress and metric points were not written: %s: %s", ctx.run_id,
                    type(exc).__name__, exc)


def _finish_stopped(ctx: WorkerContext, status: RunStatus, text: str, error: str | None) -> None:
    if status == RunStatus.FAILED:
        log.error("run %d failed: %s", ctx.run_id, (error or text).strip().split("\n", 1)[0])
    else:
        log.info("run %d %s: %s", ctx.run_id, status.value, text)
    if not ctx.is_main:
        return
    _last_flush(ctx)
    # Artifacts of a run that did not complete are kept for resume but marked as partial.
    with contextlib.suppress(OSError):
        ctx.files.mark_incomplete(f"{status.value}: {text}")
    _update_run(ctx.run_id, status=status, finished_at=utcnow(), status_text=text, error=error)


def main(argv: list[str] | None = None) -> int:
    configure_logging(logging.INFO)  # this process's stderr is the run's worker.log
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        log.error("usage: python -m core.runs.worker RUN_ID")
        return 2
    if claim_id() is not None:
        _die_with_parent()
        signal.signal(signal.SIGTERM, lambda _sig, _frame: _handback.set())
    try:
        status = execute(int(args[0]))
    except Exception as exc:
        if disk_errno(exc) is None:
            raise
        # Not even the failure could be written (the database shares the full disk): the exit code says why,
        # and the process that watches this one writes the reason once it can.
        log.error("run %s: the disk is full; the run's status could not be written: %s", args[0], exc)
        return EXIT_DISK_FULL
    return 0 if status in (RunStatus.COMPLETED, RunStatus.CANCELLED, RunStatus.QUEUED) else 1


def _die_with_parent() -> None:
    """Linux: be killed when the process that started us dies (a daemon killed with -9, a lost torchrun agent),
    so the run cannot go on unseen while the fleet requeues it elsewhere."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


if __name__ == "__main__":
    # Run the importable module, not this __main__ copy: executors import core.runs.worker, and its
    # RunCancelled must be the class that execute() catches.
    from core.runs.worker import main as worker_main

    sys.exit(worker_main())
