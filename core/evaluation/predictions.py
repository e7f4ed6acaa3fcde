"""A finished run's stored artifacts: its prediction files, meta.json and stored per-split reports.

Everything else in core.evaluation reads runs through here; errors say which file is missing and where.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from core.data.splits import canonical_prediction_split
from core.data.spreadsheet import to_safe_csv
from core.errors import ProtolabError
from core.runs.files import RunFiles
from db.enums import RunStatus, TaskKind
from db.models import Run

SPLITS = ("validation", "test")
PREDICTION_COLUMNS = ("text", "label", "pred", "confidence", "proba")


class EvaluationError(ProtolabError):
    """A run cannot be evaluated as asked (not finished, wrong task, bad marks)."""


class ArtifactsMissing(EvaluationError):
    """A completed run whose artifact folder or prediction files are gone or unreadable."""


def normalise_split(split: str) -> str:
    """'val' and 'validation' both mean the validation split."""
    canonical = canonical_prediction_split(split)
    if canonical is None:
        raise EvaluationError(f"unknown split {split!r}; expected validation (val) or test")
    return canonical


def predictions_path(run_id: int, split: str) -> Path:
    return RunFiles.of(run_id).predictions(normalise_split(split))


def predictions_mtime(run_id: int, split: str) -> float:
    """The file's modification time (a cache key: a rewritten file invalidates cached curves)."""
    try:
        return predictions_path(run_id, split).stat().st_mtime
    except OSError:
        return 0.0


def load_meta(run_id: int) -> dict[str, Any]:
    files = RunFiles.of(run_id)
    path = files.meta
    try:
        return files.read_meta()
    except (OSError, ValueError) as exc:
        raise ArtifactsMissing(f"run {run_id}: its meta.json is missing or unreadable ({path})") from exc


def load_predictions(run_id: int, split: str) -> pd.DataFrame:
    """The prediction file of one split (text, label, pred, confidence, proba), labels as str."""
    path = predictions_path(run_id, split)
    if not path.exists():
        raise ArtifactsMissing(f"run {run_id}: no {normalise_split(split)} predictions at {path} "
                               "(the artifact folder was moved or deleted)")
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a truncated or foreign file
        raise ArtifactsMissing(f"run {run_id}: the prediction file {path} is corrupted ({exc})") from exc
    missing = [c for c in ("text", "label", "pred", "confidence") if c not in frame.columns]
    if missing:
        raise ArtifactsMissing(f"run {run_id}: the prediction file {path} lacks columns {missing}")
    frame["label"] = frame["label"].astype(str)
    frame["pred"] = frame["pred"].astype(str)
    frame["confidence"] = frame["confidence"].astype(float)
    return frame


def split_report(run: Run, split: str) -> dict[str, Any]:
    """The stored classification report of one split (no recomputation)."""
    split = normalise_split(split)
    metrics = run.metrics or {}
    report = (metrics.get("reports") or {}).get(split)
    if report is None and split == metrics.get("split", "test") and "accuracy" in metrics:
        report = metrics  # older runs stored only the headline split
    if report is None:
        raise EvaluationError(f"run {run.id} has no stored metrics for the {split} split")
    return report


def require_completed(run: Run | None, run_id: int) -> Run:
    if run is None:
        raise EvaluationError(f"no run with id {run_id}")
    if run.status != RunStatus.COMPLETED:
        raise EvaluationError(f"run {run_id} is {run.status.value}; only completed runs can be evaluated")
    return run


def is_ranking(run: Any) -> bool:
    return run.task == TaskKind.INTERACTIONS


def predictions_csv(run_id: int, split: str) -> bytes:
    """The split's predictions as a spreadsheet-safe CSV (no cell can start a formula)."""

    frame = load_predictions(run_id, split).drop(columns=["proba"], errors="ignore")
    frame = frame.assign(correct=frame["label"] == frame["pred"])
    return to_safe_csv(frame)

