"""The label curve as a background job (Run.model_kind "label_curve", not a model): queue it for a dataset, the
worker's entry point, and reading its scores back, partial while it runs (the run folder's label_curve.json)
and complete afterwards (the run's metrics).
"""

from __future__ import annotations

import json
import os
from dataclasses import fields
from typing import Any

from sqlalchemy.orm import Session

from core.data.storage import load_frame, load_split
from core.labelling.label_curve import (
    LabelCurveCancelled,
    LabelCurveConfig,
    LabelCurveError,
    LabelCurveResult,
    config_dict,
    config_from_dict,
    curve_device,
    measure_label_curve,
)
from core.labelling.pool import is_unlabelled
from core.runs.context import RunContext
from core.runs.files import RunFiles
from core.runs.jobs import start_run
from core.runs.worker import RunCancelled
from db import datasets as dataset_queries
from db import runs as run_queries
from db.enums import LABEL_CURVE_KIND, RunStatus, TaskKind
from db.models import Dataset, Run


def build_config(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """The stored config of a label-curve run (the registry's build_config for the label_curve kind)."""
    known = {f.name for f in fields(LabelCurveConfig)}
    values = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(values) - known)
    if unknown:
        raise LabelCurveError(f"option(s) {', '.join(unknown)} do not apply to a label curve")
    return config_dict(LabelCurveConfig(**values))


def start_label_curve(s: Session, dataset_id: int, options: dict[str, Any] | None = None) -> int:
    """Queue the label curve of a dataset in the caller's transaction (its worker starts after commit); the run
    id. A dataset whose smallest class cannot fill the smallest size is refused now, not minutes later."""

    dataset = _labelled_dataset(s, dataset_id)
    config = build_config(LABEL_CURVE_KIND, dict(options or {}))
    counts = train_counts(dataset)
    if counts and min(counts.values()) < min(config["sizes"]):
        label = min(counts, key=counts.get)
        raise LabelCurveError(f"no size fits: the smallest class, '{label}', has only {counts[label]} labelled "
                              f"examples in the training split of '{dataset.name}' (smallest size asked: "
                              f"{min(config['sizes'])} a class)")
    return start_run(s, dataset_id=dataset.id, model_kind=LABEL_CURVE_KIND, config=config,
                     name=f"label curve of {dataset.name}"[:200])


def execute_label_curve(ctx: RunContext) -> dict[str, Any]:
    """The worker's entry point: score every (model, size, seed), writing the scores so far after each one."""

    cfg = config_from_dict(ctx.config)
    ctx.progress(0.0, "loading data", force=True)
    frame = load_frame(ctx.dataset())
    ctx.set_device(curve_device(cfg))
    try:
        result = measure_label_curve(frame, cfg, on_progress=ctx.progress,
                                     on_point=lambda r: write_curve(ctx.files, r), should_stop=ctx.should_stop)
    except LabelCurveCancelled as exc:
        raise RunCancelled() from exc
    write_curve(ctx.files, result)
    return result.to_dict()


def write_curve(files: RunFiles, result: LabelCurveResult) -> None:
    """Replace the run folder's label_curve.json in one step, so a page never reads half a file."""
    files.root.mkdir(parents=True, exist_ok=True)
    partial = files.label_curve.with_suffix(".json.tmp")
    partial.write_text(json.dumps(result.to_dict()))
    os.replace(partial, files.label_curve)


def read_curve_of(run: Run) -> dict[str, Any] | None:
    """A label-curve run's scores: its metrics once completed, else what its worker has written so far."""
    if run.status == RunStatus.COMPLETED and (run.metrics or {}).get("points") is not None:
        return dict(run.metrics)
    try:
        return json.loads(RunFiles.of(run.id).label_curve.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # not written yet, or another machine's worker writes it
        return None


def latest_curve_run(s: Session, dataset_id: int) -> Run | None:
    return run_queries.latest_run_of_kind(s, dataset_id, LABEL_CURVE_KIND)


def train_counts(dataset: Dataset) -> dict[str, int]:
    """Labelled examples of each class in a dataset's training split (read from its files: a version's stored
    stats may describe its parent's splits)."""

    labels = load_split(dataset, "train")["label"]
    return {str(k): int(v) for k, v in labels[labels.notna()].astype(str).value_counts().items()}


def _labelled_dataset(s: Session, dataset_id: int) -> Dataset:
    dataset = dataset_queries.require_dataset(s, dataset_id, LabelCurveError)
    if dataset.task != TaskKind.CLASSIFICATION:
        raise LabelCurveError(f"dataset '{dataset.name}' holds {dataset.task}: a label curve needs a "
                              "classification dataset")
    if is_unlabelled(dataset):
        raise LabelCurveError(f"dataset '{dataset.name}' is still being labelled: save its labels as a version on "
                              "the Label page, then draw the curve of that version")
    return dataset
