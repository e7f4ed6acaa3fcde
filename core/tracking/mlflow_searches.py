"""A hyperparameter search in MLflow: one parent run for the search, its trials' runs as its children.

The search's driver opens the parent when it starts (`start_search_tracking`, named by core.search.driver as a
"module:attribute" reference: core.search sits below core.tracking) and records its id on the search row; each
trial's worker then logs its run as usual (core.tracking.mlflow_runs), tagged `mlflow.parentRunId` with that id,
which is how MLflow nests runs. The parent carries the search's settings as params, each trial's validation score
at its trial number (MLflow draws that as the optimisation history) and, at the end, the best score and run. A
resumed driver reopens the same parent. As for runs, best-effort: the first failure is logged in the driver's log
and the search goes on without MLflow.
"""

from __future__ import annotations

import logging
from typing import Any

from core import __version__
from core.search.space import Param
from core.tracking.mlflow_runs import connect, experiment_id, mlflow_name
from core.tracking.setting import Tracking, current
from db import read_scope, session_scope, with_retry
from db import searches as search_queries
from db.enums import SearchStatus, TrialState
from db.models import Dataset, Search, utcnow

log = logging.getLogger(__name__)

TAG_SEARCH = "protolab.search_id"
_END = {SearchStatus.COMPLETED: "FINISHED", SearchStatus.STOPPED: "KILLED", SearchStatus.FAILED: "FAILED"}


def _now_ms() -> int:
    return int(utcnow().timestamp() * 1000)


class SearchTracker:
    """The parent run of one search, driven from the search's driver process."""

    def __init__(self, search_id: int, tracking: Tracking) -> None:
        self.search_id = search_id
        self.tracking = tracking  # read when the driver starts: its trials' runs read theirs when they start
        self.client: Any = None
        self.mlflow_run_id: str | None = None
        self.failed = False

    def open(self) -> None:
        """Create the parent run, or reopen the one an earlier driver of this search created."""
        try:
            self.client = connect(uri=self.tracking.uri)
            with read_scope() as s:
                search = search_queries.get_search(s, self.search_id)
                dataset = s.get(Dataset, search.dataset_id)
                old, params, tags = search.mlflow_run_id, _params(search), _tags(search, dataset)
            self.mlflow_run_id = self._reopen(old) or self._create(params, tags)
            with_retry(self._record)
            log.info("search %d logs to MLflow as run %s", self.search_id, self.mlflow_run_id)
        except Exception as exc:
            self._fail(exc)

    def _reopen(self, old: str | None) -> str | None:
        if old is None:
            return None
        try:
            self.client.update_run(old, status="RUNNING")
            return old
        except Exception as exc:  # deleted by hand, or another store now: a new parent
            log.info("search %d: MLflow run %s not reopened (%s: %s)", self.search_id, old, type(exc).__name__, exc)
            return None

    def _create(self, params: dict[str, str], tags: dict[str, str]) -> str:
        from mlflow.entities import Param as MlflowParam  # heavy: only when logging

        created = self.client.create_run(experiment_id(self.client, self.tracking.experiment), start_time=_now_ms(),
                                         tags=tags, run_name=tags["mlflow.runName"])
        batch = [MlflowParam(mlflow_name(k), v[:6000]) for k, v in sorted(params.items())]
        for start in range(0, len(batch), 100):  # MLflow takes at most 100 params a batch
            self.client.log_batch(created.info.run_id, params=batch[start:start + 100])
        return created.info.run_id

    def _record(self) -> None:
        with session_scope() as s:
            s.get(Search, self.search_id).mlflow_run_id = self.mlflow_run_id

    def trial_finished(self, number: int, state: TrialState, value: float | None, metric: str) -> None:
        """One trial's score at its number: the parent's metric history is the search's optimisation history."""
        if self.failed or value is None or state not in (TrialState.COMPLETE, TrialState.PRUNED):
            return
        try:
            self.client.log_metric(self.mlflow_run_id, mlflow_name(f"trial_validation/{metric}"), float(value),
                                   _now_ms(), number)
        except Exception as exc:
            self._fail(exc)

    def finish(self, status: SearchStatus) -> None:
        """The best trial's score and run, the trials' counts, then the parent's end with the search's status."""
        if self.failed:
            return
        try:
            with read_scope() as s:
                search = search_queries.get_search(s, self.search_id)
                metric, best_run_id = search.metric, search.best_run_id
                trials = search_queries.trials_of(s, self.search_id)
                best = next((t.value for t in trials if best_run_id is not None and t.run_id == best_run_id), None)
                counts = {state.value: sum(t.state == state for t in trials) for state in TrialState}
            metrics = {f"trials_{k}": float(v) for k, v in counts.items()}
            if best is not None:
                metrics[mlflow_name(f"best_validation/{metric}")] = float(best)
            for name, value in metrics.items():
                self.client.log_metric(self.mlflow_run_id, name, value, _now_ms(), 0)
            if best_run_id is not None:
                self.client.set_tag(self.mlflow_run_id, "protolab.best_run_id", str(best_run_id))
            self.client.set_tag(self.mlflow_run_id, "protolab.status", status.value)
            self.client.set_terminated(self.mlflow_run_id, _END.get(status, "FINISHED"), end_time=_now_ms())
        except Exception as exc:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        self.failed = True
        reason = (str(exc).strip().splitlines() or [""])[0][:200]
        log.warning("search %d: MLflow logging failed (%s: %s); the search goes on without it", self.search_id,
                    type(exc).__name__, reason)


def _params(search: Search) -> dict[str, str]:
    """The search's settings and the options its trials share; what each trial varies is its own run's params."""
    params = {"search.model": search.model_kind, "search.metric": f"validation {search.metric}",
              "search.n_trials": str(search.n_trials), "search.minutes": str(search.minutes),
              "search.parallel": str(search.parallel),
              "search.space": "; ".join(Param.of(p).describe() for p in search.space)}
    params |= {f"search.{k}": str(v) for k, v in (search.settings or {}).items()}
    return params | {k: str(v) for k, v in (search.config or {}).items()}


def _tags(search: Search, dataset: Dataset) -> dict[str, str]:
    name = search.name or f"search {search.id}: {search.model_kind} on {dataset.name}"
    return {TAG_SEARCH: str(search.id), "protolab.dataset": dataset.name,
            "protolab.dataset_id": str(search.dataset_id), "protolab.task": str(dataset.task),
            "protolab.kind": search.model_kind, "protolab.version": __version__, "mlflow.runName": name[:250]}


def start_search_tracking(search_id: int) -> SearchTracker | None:
    """The search's parent run in MLflow when MLflow is configured (None otherwise), opened. The setting is read now,
    from the environment or the database, at each driver's start."""
    try:
        tracking = current()
    except Exception as exc:  # the search must not fail for its tracking
        log.warning("search %d: MLflow's setting could not be read (%s: %s); the search is not logged", search_id,
                    type(exc).__name__, exc)
        return None
    if not tracking.enabled:
        return None
    tracker = SearchTracker(search_id, tracking)
    tracker.open()
    return tracker


def end_lost_searches(search_ids: list[int]) -> None:
    """End as FAILED the MLflow parent runs of searches whose driver died (SIGKILL, a lost machine): it never ended
    them. Best-effort and never raising: the reaper that calls it runs on a page or in the CLI. A resumed driver
    reopens the same parent (SearchTracker._reopen)."""
    try:
        with read_scope() as s:
            parents = {i: found.mlflow_run_id for i in search_ids
                       if (found := search_queries.get_search(s, i)) is not None and found.mlflow_run_id}
        if not parents:
            return
        tracking = current()
        if not tracking.enabled:  # switched off since: nothing to reach
            return
        client = connect(uri=tracking.uri)
    except Exception as exc:
        log.warning("the MLflow runs of lost searches %s were not ended: %s: %s", search_ids, type(exc).__name__, exc)
        return
    for search_id, mlflow_run_id in parents.items():
        try:
            client.set_tag(mlflow_run_id, "protolab.status", SearchStatus.FAILED.value)
            client.set_terminated(mlflow_run_id, _END[SearchStatus.FAILED], end_time=_now_ms())
            log.info("search %d: its MLflow run %s ended as failed (driver lost)", search_id, mlflow_run_id)
        except Exception as exc:  # the server is down, or the run was deleted by hand
            log.warning("search %d: its MLflow run %s was not ended: %s: %s", search_id, mlflow_run_id,
                        type(exc).__name__, exc)
