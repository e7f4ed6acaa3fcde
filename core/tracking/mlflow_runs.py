"""Protolab runs in MLflow: config as params, metric points as they come, final metrics, figures, model and tags.

With a tracking URI in effect (MLFLOW_TRACKING_URI, else the one saved on Home: core.tracking.setting, read
afresh for each run), the worker logs each run live (`start_live`, then `Tracker.send` from its progress
flush and `Tracker.finish` once the run row is final); `export_runs` sends runs logged before, or whose logging
failed. Best-effort by design: MLflow's HTTP requests get a short timeout and no retries (PROTOLAB_MLFLOW_TIMEOUT_S),
points are sent from a thread of their own, a failure is logged and recorded on the run (mlflow_state "failed" and an
event its page shows) and the run goes on. mlflow is imported inside the functions: it takes about a second to
import, and no page nor `protolab --help` needs it.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import tempfile
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from core import __version__, settings
from core.runs import registry
from core.runs.files import RunFiles
from core.tasks import get_task, resolve
from core.tracking.figures import curves
from core.tracking.setting import NOT_CONFIGURED, Tracking, current
from db import read_scope, session_scope, with_retry
from db import runs as run_queries
from db import searches as search_queries
from db.enums import RunStatus
from db.models import Run, utcnow

log = logging.getLogger(__name__)

TAG_RUN = "protolab.run_id"
TAG_PARENT = "mlflow.parentRunId"  # MLflow's own tag of a nested run: the UI shows it under its parent
TAG_LOGGED = "protolab.logged"  # "1" once everything of the run is in MLflow: export-mlflow then leaves it alone
LIVE, LOGGED, FAILED = "live", "logged", "failed"  # Run.mlflow_state
MODEL_PATH = "model"  # the pyfunc model's folder among the MLflow run's artifacts: runs:/<id>/model
BATCH = 1000  # MLflow's own limit of metrics in one log_batch call
_STATUS = {RunStatus.COMPLETED: "FINISHED", RunStatus.FAILED: "FAILED", RunStatus.CANCELLED: "KILLED"}
_BAD_NAME = re.compile(r"[^\w./\- :]")  # what MLflow refuses in a metric or param name


class TrackingError(Exception):
    """MLflow could not be reached or refused what was sent."""


def enabled() -> bool:
    return current().enabled


def tracking_uri() -> str:
    return current().uri


_HTTP_SETTINGS = ("MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES")
_users_own: list[set[str]] = []  # the MLFLOW_HTTP_REQUEST_* a user set, seen before we first set ours


def connect(*, live: bool = True, uri: str | None = None) -> Any:
    """A client of `uri` (default: the tracking URI in effect now). MLflow's defaults wait 120 s a request and retry
    7 times with back-off (minutes for a server that is down): a live run gets PROTOLAB_MLFLOW_TIMEOUT_S and no
    retries; an export, which a person runs to catch up, waits longer and retries twice. A user's own
    MLFLOW_HTTP_REQUEST_* settings win."""
    if not _users_own:
        _users_own.append({name for name in _HTTP_SETTINGS if os.environ.get(name)})
    timeout = settings.MLFLOW_TIMEOUT_S.get()
    ours = {"MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout if live else max(60, timeout)),
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0" if live else "2"}
    for name, value in ours.items():
        if name not in _users_own[0]:
            os.environ[name] = value  # MLflow reads them on every request
    # MLflow prints "View run ... at: URL" to stdout when a run ends: that would break `export-mlflow --json`.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "1")
    from mlflow import MlflowClient  # heavy (about a second): only when logging

    return MlflowClient(tracking_uri=uri or tracking_uri())


def experiment_id(client: Any, name: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name, artifact_location=settings.MLFLOW_ARTIFACTS.get() or None)
    except Exception:  # another worker created it meanwhile
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


# --- what is sent, read from the database once ---------------------------------------------------------------
@dataclass
class RunRecord:
    """A run as MLflow gets it: plain values, read in one scope."""

    run_id: int
    name: str
    task: str
    model_kind: str
    status: RunStatus
    config: dict[str, Any]
    metrics: dict[str, Any]
    tags: dict[str, str]
    start_ms: int
    end_ms: int | None
    mlflow_run_id: str | None
    mlflow_state: str | None
    points: list[dict[str, Any]] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


def _ms(ts: datetime | None) -> int | None:
    return None if ts is None else int(run_queries.as_utc(ts).timestamp() * 1000)


def read_record(run_id: int, *, points: bool = True, figures: bool = False) -> RunRecord:
    with read_scope() as s:
        run = run_queries.get_run(s, run_id)
        if run is None:
            raise TrackingError(f"no run with id {run_id}")
        record = RunRecord(
            run_id=run.id, name=run.name or f"{run.model_kind} on {run.dataset.name} (#{run.id})", task=str(run.task),
            model_kind=run.model_kind, status=run.status, config=dict(run.config or {}),
            metrics=dict(run.metrics or {}), tags=_tags(run) | _parent_tag(s, run.id),
            start_ms=_ms(run.started_at or run.created_at) or 0, end_ms=_ms(run.finished_at),
            mlflow_run_id=run.mlflow_run_id, mlflow_state=run.mlflow_state)
        if points:
            record.points = [_point(p) for p in run_queries.metric_points(s, run_id)]
        if figures:
            record.figures = _figures(run, record.points)
    return record


def _point(p: Any) -> dict[str, Any]:
    return {"name": p.name, "value": p.value, "step": p.step, "epoch": p.epoch, "split": p.split,
            "at_ms": _ms(p.created_at)}


def _tags(run: Run) -> dict[str, str]:
    return {TAG_RUN: str(run.id), "protolab.dataset": run.dataset.name, "protolab.dataset_id": str(run.dataset_id),
            "protolab.dataset_digest": (run.dataset.content_hash or "")[:16], "protolab.task": str(run.task),
            "protolab.kind": run.model_kind, "protolab.version": __version__, "protolab.status": run.status.value,
            "mlflow.runName": run.name or f"{run.model_kind} on {run.dataset.name} (#{run.id})"}


def _parent_tag(s: Any, run_id: int) -> dict[str, str]:
    """A search's trial is a child of the search's MLflow run (MLflow's nested runs), when the search has one."""
    trial = search_queries.trial_of_run(s, run_id)
    parent = trial.search.mlflow_run_id if trial is not None else None
    return {TAG_PARENT: parent} if parent else {}


def _figures(run: Run, points: list[dict[str, Any]]) -> dict[str, Any]:
    """The curves and the task's figures; one that cannot be drawn (files gone) is left out, saying why."""
    figures = curves(points)
    reference = get_task(run.task).tracked_figures if run.status == RunStatus.COMPLETED else None
    if reference:
        try:
            figures.update(resolve(reference)(run))
        except Exception as exc:  # a missing prediction file costs the figure, not the logging
            log.warning("run %d: its %s figures are not logged to MLflow: %s: %s", run.id, run.task,
                        type(exc).__name__, exc)
    return figures


# --- sending -------------------------------------------------------------------------------------------------
def mlflow_name(text: str) -> str:
    return _BAD_NAME.sub("_", text.replace("@", "_at_"))[:250]


def _flat_numbers(values: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Every number in a run's metrics (nested reports included) under a dotted name."""
    out: dict[str, float] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat_numbers(value, name + "."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[mlflow_name(name)] = float(value)
    return out


def _log_points(client: Any, mlflow_run_id: str, points: Sequence[dict[str, Any]]) -> None:
    from mlflow.entities import Metric  # heavy: only when logging

    now = int(utcnow().timestamp() * 1000)
    metrics = [Metric(mlflow_name(f"{p['split']}/{p['name']}"), float(p["value"]), p.get("at_ms") or now,
                      int(p["step"])) for p in points]
    for start in range(0, len(metrics), BATCH):
        client.log_batch(mlflow_run_id, metrics=metrics[start:start + BATCH])


def _create(client: Any, experiment: str, record: RunRecord) -> str:
    from mlflow.entities import Param  # heavy: only when logging

    created = client.create_run(experiment_id(client, experiment), start_time=record.start_ms, tags=record.tags,
                                run_name=record.name)
    params = [Param(mlflow_name(k), str(v)[:6000]) for k, v in sorted(record.config.items())]
    for start in range(0, len(params), 100):  # MLflow takes at most 100 params a batch
        client.log_batch(created.info.run_id, params=params[start:start + 100])
    return created.info.run_id


def _finish(client: Any, mlflow_run_id: str, record: RunRecord) -> None:
    """Final metrics, figures, model and tags, then the MLflow run's end."""
    from mlflow.entities import Metric  # heavy: only when logging

    now = int(utcnow().timestamp() * 1000)
    final = [Metric(k, v, record.end_ms or now, 0) for k, v in _flat_numbers(record.metrics).items()]
    for start in range(0, len(final), BATCH):
        client.log_batch(mlflow_run_id, metrics=final[start:start + BATCH])
    for name, figure in record.figures.items():
        client.log_figure(mlflow_run_id, figure, f"charts/{name}.html")
    _log_model(client, mlflow_run_id, record)
    client.set_tag(mlflow_run_id, "protolab.status", record.status.value)
    client.set_tag(mlflow_run_id, TAG_LOGGED, "1")
    client.set_terminated(mlflow_run_id, _STATUS.get(record.status, "FINISHED"), end_time=record.end_ms or now)


def _log_model(client: Any, mlflow_run_id: str, record: RunRecord) -> None:
    kind = registry.find_kind(record.model_kind)
    files = RunFiles.of(record.run_id)
    if record.status != RunStatus.COMPLETED or kind is None or kind.load is None or not files.model.exists():
        return  # a job, a run that did not complete, or one whose files are gone: nothing to serve
    from core.tracking.pyfunc import save_run_model  # imports mlflow.pyfunc: only when logging a model

    with tempfile.TemporaryDirectory(prefix="protolab-mlflow-") as scratch:
        folder = Path(scratch) / MODEL_PATH
        save_run_model(files, record.model_kind, record.task, folder, Path(scratch) / "staging")
        client.log_artifacts(mlflow_run_id, str(folder), MODEL_PATH)


def _record(run_id: int, mlflow_run_id: str | None, state: str, note: str | None = None) -> None:
    def write() -> None:
        with session_scope() as s:
            run_queries.set_mlflow(s, run_id, mlflow_run_id=mlflow_run_id, state=state)
            run = s.get(Run, run_id)
            if note and run is not None:
                run.events = [*run.events, {"event": "mlflow", "message": note, "at": utcnow().isoformat()}]
    with_retry(write)


def _failed(run_id: int, mlflow_run_id: str | None, exc: BaseException) -> None:
    reason = (str(exc).strip().splitlines() or [""])[0][:200]
    log.warning("run %d: MLflow logging failed (%s: %s); the run goes on without it", run_id,
                type(exc).__name__, reason)
    _record(run_id, mlflow_run_id, FAILED,
            f"MLflow logging failed ({type(exc).__name__}: {reason}); `protolab runs export-mlflow --run {run_id}` "
            "sends this run once the tracking server is back")


# --- live, from the worker -----------------------------------------------------------------------------------
class Tracker:
    """One run's live logging. A thread of its own opens the MLflow run and sends the points queued by the worker's
    progress flush, so neither a slow nor a dead server holds a training step; the first failure stops it (recorded
    on the run) and the rest is left to export-mlflow."""

    def __init__(self, run_id: int, tracking: Tracking) -> None:
        self.run_id = run_id
        self.tracking = tracking  # read once, when the run starts: the whole run goes to one place
        self.client: Any = None
        self.mlflow_run_id: str | None = None
        self.failed = False
        self._queue: queue.Queue[list[dict[str, Any]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._send_loop, name=f"mlflow-{run_id}", daemon=True)
        self._thread.start()

    def send(self, points: list[dict[str, Any]]) -> None:
        if points and not self.failed:
            self._queue.put(points)

    def _open(self) -> None:
        record = read_record(self.run_id)  # a resumed run: its points so far go first, so the MLflow run is whole
        self.client = connect(uri=self.tracking.uri)
        self.mlflow_run_id = _create(self.client, self.tracking.experiment, record)
        _log_points(self.client, self.mlflow_run_id, record.points)
        _drop_partial(self.client, record.mlflow_run_id, record.mlflow_state)
        _record(self.run_id, self.mlflow_run_id, LIVE)

    def _send_loop(self) -> None:
        try:
            self._open()
        except Exception as exc:
            self._fail(exc)
        while (points := self._queue.get()) is not None:
            if self.failed:
                continue
            try:
                _log_points(self.client, self.mlflow_run_id, points)
            except Exception as exc:
                self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        self.failed = True
        _failed(self.run_id, self.mlflow_run_id, exc)

    def finish(self) -> None:
        """Once the run row is final: the points still queued, then final metrics, figures, model and tags."""
        self._queue.put(None)
        self._thread.join(timeout=settings.MLFLOW_TIMEOUT_S.get() * 4)
        if self._thread.is_alive():
            self._fail(TrackingError("the tracking server did not answer"))
        if self.failed:
            return
        try:
            record = read_record(self.run_id, points=False, figures=True)
            if record.status.is_active:  # handed back to the queue: its next worker logs it afresh
                return
            _finish(self.client, self.mlflow_run_id, record)
            _record(self.run_id, self.mlflow_run_id, LOGGED)
            log.info("run %d logged to MLflow as %s", self.run_id, self.mlflow_run_id)
        except Exception as exc:
            self._fail(exc)


def start_live(run_id: int) -> Tracker | None:
    """The run's live logging when MLflow is configured (None otherwise); it reaches the server in its own thread.
    The setting is read now, at each run's start, so a long-lived worker daemon follows a change made on Home."""
    try:
        tracking = current()
    except Exception as exc:  # the run must not fail for its tracking: export-mlflow can send it later
        log.warning("run %d: MLflow's setting could not be read (%s: %s); the run is not logged live", run_id,
                    type(exc).__name__, exc)
        return None
    return Tracker(run_id, tracking) if tracking.enabled else None


def _drop_partial(client: Any, old_id: str | None, old_state: str | None) -> None:
    """An earlier MLflow run of this run that never got everything (resumed, failed logging) is replaced: deleted
    (MLflow keeps it in its trash), so a search of the experiment finds one run per Protolab run."""
    if old_id and old_state != LOGGED:
        try:
            client.delete_run(old_id)
        except Exception as exc:  # already gone, or deleted by hand
            log.info("MLflow run %s was not deleted: %s: %s", old_id, type(exc).__name__, exc)


# --- catching up -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Exported:
    run_id: int
    mlflow_run_id: str | None
    outcome: str  # "exported" | "already there" | "failed: ..."


def export_run(run_id: int, client: Any | None = None, tracking: Tracking | None = None) -> Exported:
    """Send one finished run to MLflow in full, once: a run already logged (by its row, or found there by its tag
    when the row was never told) is left as it is."""
    tracking = tracking or current()
    client = client or connect(live=False, uri=tracking.uri)
    record = read_record(run_id, figures=True)
    if record.status.is_active:
        return Exported(run_id, None, "failed: the run has not finished")
    if record.mlflow_state == LOGGED:
        return Exported(run_id, record.mlflow_run_id, "already there")
    found = client.search_runs([experiment_id(client, tracking.experiment)],
                               f"tags.`{TAG_RUN}` = '{run_id}' and tags.`{TAG_LOGGED}` = '1'", max_results=1)
    if found:
        _record(run_id, found[0].info.run_id, LOGGED)
        return Exported(run_id, found[0].info.run_id, "already there")
    mlflow_run_id = _create(client, tracking.experiment, record)
    _log_points(client, mlflow_run_id, record.points)
    _finish(client, mlflow_run_id, record)
    _drop_partial(client, record.mlflow_run_id, record.mlflow_state)
    _record(run_id, mlflow_run_id, LOGGED, f"logged to MLflow by export-mlflow as {mlflow_run_id}")
    return Exported(run_id, mlflow_run_id, "exported")


def export_runs(run_ids: Iterable[int] | None = None) -> list[Exported]:
    """Every finished run not yet wholly in MLflow, oldest first (or the given ones); one failure does not stop the
    others."""
    tracking = current()
    if not tracking.enabled:
        raise TrackingError(f"{NOT_CONFIGURED} (see the README, 'MLflow')")
    if run_ids is not None:  # asked for by id: each is answered, "already there" included
        ids = list(run_ids)
    else:
        with read_scope() as s:
            ids = [r.id for r in run_queries.runs_not_in_mlflow(s)]
    client = connect(live=False, uri=tracking.uri)
    out = []
    for run_id in ids:
        try:
            out.append(export_run(run_id, client, tracking))
        except Exception as exc:
            log.warning("run %d: export to MLflow failed: %s: %s", run_id, type(exc).__name__, exc)
            out.append(Exported(run_id, None, f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"))
    return out


def check_connection(uri: str, experiment: str) -> str:
    """Reach `uri` as a live run would (PROTOLAB_MLFLOW_TIMEOUT_S, no retries) and say what is there; TrackingError
    with the reason otherwise. Waited for from a thread of its own, so no store (a Databricks login, say) holds the
    caller much longer than the timeout."""
    answer: list[str] = []
    failure: list[BaseException] = []

    def reach() -> None:
        try:
            client = connect(uri=uri)
            found = client.get_experiment_by_name(experiment)
            answer.append(f"reached; experiment '{experiment}' " + (
                "exists" if found is not None else "is created by the first run logged"))
        except Exception as exc:
            failure.append(exc)

    timeout = settings.MLFLOW_TIMEOUT_S.get()
    thread = threading.Thread(target=reach, name="mlflow-check", daemon=True)
    thread.start()
    thread.join(timeout + 5)  # the request's own timeout, and MLflow's import (about a second) on first use
    if thread.is_alive():
        raise TrackingError(f"no answer from {uri} within {timeout + 5} s")
    if failure:
        exc = failure[0]
        raise TrackingError(f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:300]}")
    return answer[0]
