"""The runs a server serves: each model loaded once and kept warm, with its micro-batcher.

Given run ids are checked and loaded at start; with none, every completed run is served and a run that
completes later is loaded on its first request. A run whose files are gone stays listed, with the reason,
so a caller hears "files gone" (410) rather than "unknown run" (404).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from core.api.batching import BatchConfig, MicroBatcher, serving_workers
from core.errors import ProtolabError
from core.export.exporting import load_run_onnx
from core.export.onnx import inference_threads
from core.metric_keys import CLASSIFICATION_METRICS
from core.recs.serving import load_recommender
from core.runs import registry
from core.runs.files import RunFiles
from core.tasks import get_task, resolve
from core.text.serving import load_classifier
from db import read_scope
from db import runs as run_queries
from db.enums import RunStatus, TaskKind

RUNTIMES = ("torch", "onnx")


class ApiError(ProtolabError):
    """A request the API refuses: an HTTP status, a short machine-readable code and a one-line message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class ServedRun:
    run_id: int
    task: str  # a task entry's name (core.tasks)
    model_kind: str
    name: str
    dataset_name: str
    metrics: dict[str, float]
    runtime: str = "torch"  # torch | onnx | sklearn | numpy: what actually computes the answers
    model: Any = None  # a TextClassifier or a Recommender; None when it could not be loaded
    error: str | None = None  # why it cannot be served (its files are gone or damaged)
    batcher: MicroBatcher | None = field(default=None, repr=False)

    @property
    def ready(self) -> bool:
        return self.model is not None

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.run_id, "task": str(self.task), "model": self.model_kind, "name": self.name,
            "dataset": self.dataset_name, "metrics": self.metrics, "runtime": self.runtime,
            "status": "ready" if self.ready else "unavailable", "endpoint": get_task(self.task).endpoint(self.run_id)}
        if self.task is TaskKind.CLASSIFICATION and self.ready:
            out["labels"] = list(self.model.labels)
        if self.error:
            out["error"] = self.error
        if self.batcher is not None:
            out["batching"] = self.batcher.stats.as_dict()
        return out


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: round(float(v), 6) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "k"}


class ServedModels:
    """Loads runs once and hands them to the app; thread-safe (loading happens off the event loop)."""

    def __init__(self, run_ids: Sequence[int] | None = None, runtime: str = "torch",
                 batch: BatchConfig | None = None) -> None:
        if runtime not in RUNTIMES:
            raise ProtolabError(f"unknown runtime {runtime!r}: use one of {', '.join(RUNTIMES)}")
        self.only = list(dict.fromkeys(int(r) for r in run_ids)) if run_ids else None
        if batch is None:
            batch = BatchConfig(workers=serving_workers(inference_threads()))
        self.runtime, self.batch = runtime, batch
        self.runs: dict[int, ServedRun] = {}
        self._lock = threading.Lock()

    def load(self) -> list[ServedRun]:
        """Load the runs to serve now: the given ones (each must be a completed run) or every completed one."""

        with read_scope() as s:
            if self.only is not None:
                rows = [self._completed(s, run_id) for run_id in self.only]
            else:
                rows = list(run_queries.list_runs(s, statuses=[RunStatus.COMPLETED], models_only=True))
            entries = [self._entry(r) for r in rows]
        for entry in entries:
            self._load_model(entry)
            self.runs[entry.run_id] = entry
        return sorted(self.runs.values(), key=lambda r: r.run_id)

    def get(self, run_id: int) -> ServedRun | None:
        """The run if it is already known (no database, no loading): the fast path on the event loop."""
        return self.runs.get(run_id)

    def find(self, run_id: int) -> ServedRun:
        """The run, loading one that completed since start (when serving all runs), or an ApiError 404/409."""
        with self._lock:
            if run_id in self.runs:
                return self.runs[run_id]
            if self.only is not None:
                served = ", ".join(map(str, self.only))
                raise ApiError(404, "unknown_run", f"run {run_id} is not served here (this server serves runs "
                                                   f"{served}); see GET /v1/runs")

            with read_scope() as s:
                entry = self._entry(self._completed(s, run_id, status=404))
            self._load_model(entry)
            self.runs[run_id] = entry
            return entry

    def close(self) -> None:
        for run in self.runs.values():
            if run.batcher is not None:
                run.batcher.close()

    def _completed(self, s: Any, run_id: int, status: int | None = None) -> Any:
        run = run_queries.get_run(s, run_id)
        if run is None:
            if status is None:
                raise ProtolabError(f"no run with id {run_id} (see `protolab runs list`)")
            raise ApiError(status, "unknown_run", f"there is no run {run_id}; see GET /v1/runs for the served runs")
        if run.status != RunStatus.COMPLETED:
            if status is None:
                raise ProtolabError(f"run {run_id} is {run.status.value}; only completed runs can be served")
            raise ApiError(409, "run_not_completed", f"run {run_id} is {run.status.value}; only completed runs "
                                                     "are served")
        return run

    def _entry(self, run: Any) -> ServedRun:
        metrics = dict(run.metrics or {})
        test = metrics.get("test") if isinstance(metrics.get("test"), dict) else {}
        numbers = _numbers({**test, **metrics})
        if run.task is TaskKind.INTERACTIONS:  # the ranking figures at the run's K, not every K measured
            numbers = {k: v for k, v in numbers.items() if "@" in k or k == "coverage"}
        elif run.task is TaskKind.CLASSIFICATION:  # the test figures, not timings or epoch counts
            numbers = {k: v for k, v in numbers.items() if k in CLASSIFICATION_METRICS}
        else:  # a plugin's task: the figures its entry lists
            numbers = {k: v for k, v in numbers.items() if k in get_task(run.task).metrics}
        headline, _ = registry.headline_of(run.model_kind, run.task, metrics)
        numbers = dict(sorted(numbers.items(), key=lambda kv: kv[0] != headline.key))  # headline first
        return ServedRun(run_id=run.id, task=run.task, model_kind=run.model_kind,
                         name=run.name or f"{run.model_kind} on {run.dataset.name}", dataset_name=run.dataset.name,
                         metrics=numbers)

    def _load_model(self, entry: ServedRun) -> None:
        try:
            if get_task(entry.task).serve is not None:  # answered by its task's serve function: the kind's loader
                kind = registry.get_kind(entry.model_kind).for_task(entry.task)
                if self.runtime == "onnx" and kind.load_onnx is not None:  # its ONNX graph, with the same answers
                    entry.model, entry.runtime = resolve(kind.load_onnx)(entry.run_id), "onnx"
                else:
                    entry.model, entry.runtime = kind.loader()(RunFiles.of(entry.run_id)), "python"
            elif entry.task is TaskKind.CLASSIFICATION:
                entry.model, entry.runtime = self._load_classifier(entry)
                entry.batcher = MicroBatcher(entry.model.score, self.batch)
            else:
                entry.model, entry.runtime = load_recommender(entry.run_id), "numpy"
        except ProtolabError as exc:
            entry.model, entry.error = None, str(exc)

    def _load_classifier(self, entry: ServedRun) -> tuple[Any, str]:
        kind = registry.find_kind(entry.model_kind)
        if self.runtime == "onnx" and kind is not None and "onnx" in kind.exports:
            return load_run_onnx(entry.run_id), "onnx"
        model = load_classifier(entry.run_id)  # kinds without an ONNX export serve as they trained (TF-IDF: sklearn)
        return model, model.runtime
