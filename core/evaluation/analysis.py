"""Evaluating finished runs: their stored metrics, prediction files, error analysis and comparison.

Headline metrics are read from `Run.metrics` (computed once by the worker); curves, calibration
and thresholds come from the prediction files, and dataset versions close the error-to-data loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import ProtolabError
from core.evaluation.metrics import HEADLINE_KEYS
from core.settings import run_dir
from db.enums import RunStatus, TaskKind
from db.models import Dataset, MetricPoint, Run

SPLITS = ("validation", "test")
SPLIT_ALIASES = {"val": "validation", "valid": "validation", "validation": "validation", "test": "test"}
PREDICTION_COLUMNS = ("text", "label", "pred", "confidence", "proba")
RANKING_KEYS = ("ndcg", "precision", "recall", "map", "hit_rate", "coverage")
# Config keys shown in a leaderboard even when every run agrees on them.
KEY_HYPERPARAMETERS = ("model_id", "epochs", "batch_size", "learning_rate", "max_length", "k", "factors", "seed")
MAX_CURVE_POINTS = 400  # a curve of 20k thresholds looks the same with 400 points and draws 50x faster


class EvaluationError(ProtolabError):
    """A run cannot be evaluated as asked (not finished, wrong task, bad marks)."""


class ArtifactsMissing(EvaluationError):
    """A completed run whose artifact folder or prediction files are gone or unreadable."""


def normalise_split(split: str) -> str:
    """'val' and 'validation' both mean the validation split."""
    try:
        return SPLIT_ALIASES[split.lower()]
    except KeyError:
        raise EvaluationError(f"unknown split {split!r}; expected validation (val) or test") from None


def predictions_path(run_id: int, split: str) -> Path:
    return run_dir(run_id) / "predictions" / f"{normalise_split(split)}.parquet"


def predictions_mtime(run_id: int, split: str) -> float:
    """The file's modification time (a cache key: a rewritten file invalidates cached curves)."""
    try:
        return predictions_path(run_id, split).stat().st_mtime
    except OSError:
        return 0.0


def load_meta(run_id: int) -> dict[str, Any]:
    import json

    path = run_dir(run_id) / "meta.json"
    try:
        return json.loads(path.read_text())
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
    from core.data.spreadsheet import to_safe_csv

    frame = load_predictions(run_id, split).drop(columns=["proba"], errors="ignore")
    frame = frame.assign(correct=frame["label"] == frame["pred"])
    return to_safe_csv(frame)


# --- error analysis -----------------------------------------------------------------------

def misclassified(preds: pd.DataFrame, true: str | None = None, predicted: str | None = None) -> pd.DataFrame:
    """Wrong predictions, most confident first; optionally only one (true, predicted) cell."""
    wrong = preds[preds["label"] != preds["pred"]]
    if true is not None:
        wrong = wrong[wrong["label"] == str(true)]
    if predicted is not None:
        wrong = wrong[wrong["pred"] == str(predicted)]
    out = pd.DataFrame({"row": wrong.index.astype(int), "text": wrong["text"].astype(str),
                        "true": wrong["label"], "predicted": wrong["pred"], "confidence": wrong["confidence"]})
    return out.sort_values(["confidence", "row"], ascending=[False, True], kind="stable").reset_index(drop=True)


def proba_matrix(preds: pd.DataFrame, labels: Sequence[str]) -> np.ndarray | None:
    """(N, C) class probabilities in `labels` order, or None when the file has none."""
    if "proba" not in preds.columns or preds.empty:
        return None
    matrix = np.asarray(preds["proba"].tolist(), dtype=float)
    if matrix.ndim != 2 or matrix.shape[1] != len(labels):
        return None
    return matrix


@dataclass(frozen=True)
class Curve:
    x: list[float]
    y: list[float]
    area: float


@dataclass(frozen=True)
class Calibration:
    bin_edges: list[float]
    confidence: list[float | None]  # mean confidence per bin (None: empty bin)
    accuracy: list[float | None]
    count: list[int]
    ece: float


@dataclass(frozen=True)
class SplitAnalysis:
    """Everything the page draws from the prediction file of one split (cached per run + mtime)."""

    roc: dict[str, Curve] = field(default_factory=dict)
    pr: dict[str, Curve] = field(default_factory=dict)
    calibration: Calibration | None = None
    thresholds: pd.DataFrame | None = None
    positive_label: str | None = None


def _thin(x: np.ndarray, y: np.ndarray, limit: int = MAX_CURVE_POINTS) -> tuple[list[float], list[float]]:
    if len(x) > limit:
        idx = np.unique(np.linspace(0, len(x) - 1, limit).round().astype(int))
        x, y = x[idx], y[idx]
    return x.astype(float).tolist(), y.astype(float).tolist()


def curves(preds: pd.DataFrame, labels: Sequence[str]) -> tuple[dict[str, Curve], dict[str, Curve]]:
    """One-vs-rest ROC and precision-recall curves per class (classes present in the split)."""
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

    proba = proba_matrix(preds, labels)
    roc: dict[str, Curve] = {}
    pr: dict[str, Curve] = {}
    if proba is None:
        return roc, pr
    y = preds["label"].to_numpy()
    for i, label in enumerate(labels):
        positives = y == str(label)
        if positives.all() or not positives.any():
            continue  # AUC is undefined with one class
        fpr, tpr, _ = roc_curve(positives, proba[:, i])
        roc[str(label)] = Curve(*_thin(fpr, tpr), area=float(auc(fpr, tpr)))
        precision, recall, _ = precision_recall_curve(positives, proba[:, i])
        pr[str(label)] = Curve(*_thin(recall, precision),
                               area=float(average_precision_score(positives, proba[:, i])))
    return roc, pr


def calibration(preds: pd.DataFrame, n_bins: int = 10) -> Calibration:
    """Top-label reliability: accuracy vs mean confidence in equal-width bins, and the ECE."""
    conf = preds["confidence"].to_numpy(dtype=float)
    correct = (preds["label"] == preds["pred"]).to_numpy(dtype=float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Bin i holds (edges[i], edges[i+1]]; confidence 0 falls in the first bin.
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    mean_conf: list[float | None] = []
    acc: list[float | None] = []
    count: list[int] = []
    ece = 0.0
    for b in range(n_bins):
        mask = which == b
        n = int(mask.sum())
        count.append(n)
        if n == 0:
            mean_conf.append(None)
            acc.append(None)
            continue
        c, a = float(conf[mask].mean()), float(correct[mask].mean())
        mean_conf.append(c)
        acc.append(a)
        ece += n / max(len(conf), 1) * abs(a - c)
    return Calibration(edges.tolist(), mean_conf, acc, count, float(ece))


def threshold_table(preds: pd.DataFrame, labels: Sequence[str], positive: str, steps: int = 101) -> pd.DataFrame:
    """Precision, recall and F1 of `positive` when predicting it above each probability threshold."""
    from sklearn.metrics import precision_recall_fscore_support

    proba = proba_matrix(preds, labels)
    if proba is None:
        raise EvaluationError("this run's prediction file has no class probabilities")
    score = proba[:, list(labels).index(positive)]
    truth = (preds["label"] == positive).to_numpy()
    rows = []
    for t in np.linspace(0.0, 1.0, steps):
        p, r, f, _ = precision_recall_fscore_support(truth, score >= t, average="binary", zero_division=0)
        rows.append({"threshold": float(t), "precision": float(p), "recall": float(r), "f1": float(f),
                     "predicted_positive": int((score >= t).sum())})
    return pd.DataFrame(rows)


def analyse_split(run_id: int, split: str, labels: Sequence[str] | None = None) -> SplitAnalysis:
    """Curves, calibration and (for two classes) the threshold table of one split's predictions."""
    preds = load_predictions(run_id, split)
    labels = [str(x) for x in (labels or load_meta(run_id).get("labels") or sorted(preds["label"].unique()))]
    roc, pr = curves(preds, labels)
    thresholds, positive = None, None
    if len(labels) == 2 and proba_matrix(preds, labels) is not None:
        positive = labels[1]
        thresholds = threshold_table(preds, labels, positive, steps=51)
    return SplitAnalysis(roc=roc, pr=pr, calibration=calibration(preds), thresholds=thresholds,
                         positive_label=positive)


# --- baselines and comparison ------------------------------------------------------------

def _score(run: Run, key: str = "macro_f1") -> float:
    value = (run.metrics or {}).get(key)
    return float(value) if isinstance(value, (int, float)) else float("-inf")


def baseline_run(s: Any, run: Any) -> Run | None:
    """The best completed TF-IDF run on the same dataset (the bar a bigger model must clear)."""
    from sqlalchemy import select

    score = Run.metrics["macro_f1"].as_float()
    # Only the winner's row is loaded: a dataset with hundreds of runs must not parse every report.
    best = s.scalar(select(Run.id).where(Run.dataset_id == run.dataset_id, Run.model_kind == "tfidf",
                                         Run.status == RunStatus.COMPLETED, Run.id != run.id, score.is_not(None))
                    .order_by(score.desc(), Run.id.desc()).limit(1))
    return s.get(Run, best) if best is not None else None


@dataclass(frozen=True)
class RunRecord:
    """A light view of a run for pickers and leaderboards: headline metrics only, no per-split reports."""

    id: int
    name: str | None
    model_kind: str
    task: TaskKind
    dataset_id: int
    config: dict[str, Any]
    metrics: dict[str, Any]
    device: str | None
    duration_s: float | None


RECORD_METRICS = (*HEADLINE_KEYS, "train_time_s", "device", "k", "coverage", "by_k",
                  *(f"{name}@10" for name in RANKING_KEYS if name != "coverage"))


def run_records(s: Any, *, dataset_ids: Iterable[int] | None = None,
                run_ids: Iterable[int] | None = None) -> list[RunRecord]:
    """Completed runs, newest first, with only the metric keys a leaderboard shows (extracted in SQL)."""
    from sqlalchemy import select

    columns = [Run.id, Run.name, Run.model_kind, Run.task, Run.dataset_id, Run.config, Run.device,
               Run.started_at, Run.finished_at, *(Run.metrics[k] for k in RECORD_METRICS)]
    q = select(*columns).where(Run.status == RunStatus.COMPLETED).order_by(Run.created_at.desc(), Run.id.desc())
    if dataset_ids is not None:
        q = q.where(Run.dataset_id.in_([int(i) for i in dataset_ids]))
    if run_ids is not None:
        q = q.where(Run.id.in_([int(i) for i in run_ids]))
    out = []
    for row in s.execute(q).all():
        metrics = {k: v for k, v in zip(RECORD_METRICS, row[9:], strict=True) if v is not None}
        out.append(RunRecord(id=row.id, name=row.name, model_kind=row.model_kind, task=row.task,
                             dataset_id=row.dataset_id, config=row.config or {}, metrics=metrics, device=row.device,
                             duration_s=_seconds(row.started_at, row.finished_at)))
    return out


def _seconds(start: Any, end: Any) -> float | None:
    if start is None or end is None:
        return None
    if (start.tzinfo is None) != (end.tzinfo is None):  # SQLite hands back naive datetimes
        start, end = start.replace(tzinfo=None), end.replace(tzinfo=None)
    return (end - start).total_seconds()


def baseline_report(baseline: Any, split: str) -> dict[str, Any] | None:
    """The baseline's figures on the same split as the run it is compared with (None if it has none)."""
    if baseline is None:
        return None
    try:
        return split_report(baseline, split)
    except EvaluationError:
        return None


def majority_scores(report: dict[str, Any]) -> dict[str, float]:
    """What always predicting the biggest class scores on each headline metric (zero_division=0).

    With p the majority rate and C classes: that class has precision p, recall 1, F1 2p/(1+p);
    every other class scores 0, so macro = those / C and weighted = p * those.
    """
    p, n_classes = float(report.get("majority_rate") or 0.0), len(report.get("labels") or []) or 1
    f1 = 2 * p / (1 + p) if p else 0.0
    return {"accuracy": p, "macro_precision": p / n_classes, "macro_recall": 1 / n_classes if p else 0.0,
            "macro_f1": f1 / n_classes, "weighted_precision": p * p, "weighted_recall": p, "weighted_f1": p * f1}


def headline_table(report: dict[str, Any], baseline: dict[str, Any] | None) -> pd.DataFrame:
    """Each headline metric beside the TF-IDF baseline's and what the majority class would score."""
    majority = majority_scores(report)
    rows = []
    for key in HEADLINE_KEYS:
        row: dict[str, Any] = {"metric": key.replace("_", " "), "this run": report.get(key)}
        row["TF-IDF baseline"] = baseline.get(key) if baseline else None
        row["majority class"] = majority[key]
        rows.append(row)
    return pd.DataFrame(rows)


def config_differences(runs: Sequence[Any]) -> list[str]:
    """Config keys whose values are not the same across `runs` (what to highlight)."""
    keys = sorted({k for r in runs for k in (r.config or {})})
    return [k for k in keys if len({repr((r.config or {}).get(k)) for r in runs}) > 1]


def run_label(run: Any) -> str:
    return f"#{run.id} {run.name or run.model_kind}"


def leaderboard(runs: Sequence[Any], sort_by: str | None = None) -> pd.DataFrame:
    """One row per run: model, headline metrics, key and differing hyperparameters, duration, device."""
    ranking = any(is_ranking(r) for r in runs)
    metric_keys = (["ndcg@10", "precision@10", "recall@10", "map@10", "hit_rate@10", "coverage"] if ranking
                   else ["macro_f1", "accuracy", "weighted_f1", "macro_precision", "macro_recall"])
    differing = config_differences(runs) if len(runs) > 1 else []
    params = [k for k in KEY_HYPERPARAMETERS if any(k in (r.config or {}) for r in runs)]
    params += [k for k in differing if k not in params]
    rows = []
    for r in runs:
        m = r.metrics or {}
        row: dict[str, Any] = {"run": r.id, "name": r.name or "", "model": r.model_kind, "dataset": r.dataset_id}
        values = ranking_metrics_at(r) if is_ranking(r) else m
        row.update({k: values.get(k) for k in metric_keys})
        row.update({k: _plain((r.config or {}).get(k)) for k in params})
        row["duration_s"] = m.get("train_time_s", r.duration_s)
        row["device"] = r.device or m.get("device")
        rows.append(row)
    frame = pd.DataFrame(rows)
    sort_by = sort_by or metric_keys[0]
    if not frame.empty and sort_by in frame.columns:
        frame = frame.sort_values(sort_by, ascending=False, na_position="last", kind="stable")
    return frame.reset_index(drop=True)


def _plain(value: Any) -> Any:
    # dataframes want scalars; lists/dicts are shown as text
    return value if value is None or isinstance(value, (int, float, str, bool)) else repr(value)


def metric_frame(s: Any, run_ids: Iterable[int]) -> pd.DataFrame:
    """The metric points of several runs in one long frame (run_id, name, split, step, epoch, value)."""
    from sqlalchemy import select

    ids = [int(i) for i in run_ids]
    if not ids:
        return pd.DataFrame(columns=["run_id", "name", "split", "step", "epoch", "value"])
    rows = s.execute(select(MetricPoint.run_id, MetricPoint.name, MetricPoint.split, MetricPoint.step,
                            MetricPoint.epoch, MetricPoint.value)
                     .where(MetricPoint.run_id.in_(ids)).order_by(MetricPoint.id)).all()
    return pd.DataFrame(rows, columns=["run_id", "name", "split", "step", "epoch", "value"])


def ranking_by_k(run: Run) -> dict[int, dict[str, float]]:
    """{K: {metric: value}} from a recommender run's stored metrics, K ascending."""
    by_k = (run.metrics or {}).get("by_k") or {}
    return {int(k): {m: float(v) for m, v in vals.items() if isinstance(v, (int, float))}
            for k, vals in sorted(by_k.items(), key=lambda kv: int(kv[0]))}


def ranking_metrics_at(run: Any, k: int = 10) -> dict[str, float | None]:
    """'<metric>@K' (and coverage) at one K, from by_k when the run's own K is another one."""
    m = run.metrics or {}
    at_k = (m.get("by_k") or {}).get(str(k)) or {}
    out: dict[str, float | None] = {f"{name}@{k}": at_k.get(name, m.get(f"{name}@{k}"))
                                    for name in RANKING_KEYS if name != "coverage"}
    out["coverage"] = at_k.get("coverage", m.get("coverage") if m.get("k", k) == k else None)
    return out


def ranking_headline(run: Run) -> dict[str, Any]:
    m = run.metrics or {}
    k = m.get("k", 10)
    keys = [f"{name}@{k}" for name in RANKING_KEYS if name != "coverage"] + ["coverage"]
    return {key: m.get(key) for key in keys if key in m}


def lineage_root(datasets: Sequence[Dataset], dataset_id: int) -> int:
    """The first ancestor of a dataset (versions made from errors compare with their parent's runs)."""
    parents = {d.id: d.parent_id for d in datasets}
    seen: set[int] = set()
    while parents.get(dataset_id) and dataset_id not in seen:
        seen.add(dataset_id)
        dataset_id = int(parents[dataset_id])  # type: ignore[arg-type]
    return dataset_id


# --- from errors back to data -------------------------------------------------------------

def marks_to_changes(marks: pd.DataFrame, split: str) -> list[dict[str, Any]]:
    """Rows of the error table marked `exclude` or given a `relabel_to` label, as dataset changes."""
    changes = []
    for row in marks.itertuples(index=False):
        target = row.relabel_to if isinstance(row.relabel_to, str) and row.relabel_to else None
        if bool(row.exclude):
            changes.append({"action": "exclude", "split": split, "text": row.text, "label": row.true})
        elif target is not None and target != row.true:
            changes.append({"action": "relabel", "split": split, "text": row.text, "label": row.true, "to": target})
    return changes


def create_dataset_version(parent_dataset_id: int, changes: Sequence[dict[str, Any]], *,
                           name: str | None = None, source_run_id: int | None = None) -> Dataset:
    """Store a new dataset made from its parent with rows relabelled or excluded.

    Each change is {"split", "text", "label" (current), "action": "relabel"|"exclude", "to" (relabel)};
    a change applies to every row of that split with that text and label. The new row links to
    its parent and lists the changes.
    """
    from core.data.storage import load_frame, write_dataset
    from db import datasets as dataset_queries
    from db import session_scope

    if not changes:
        raise EvaluationError("no rows are marked: mark rows to relabel or exclude first")
    with session_scope() as s:
        parent = dataset_queries.get_dataset(s, parent_dataset_id)
        if parent is None:
            raise EvaluationError(f"no dataset with id {parent_dataset_id}")
        if parent.task != TaskKind.CLASSIFICATION:
            raise EvaluationError("only classification datasets can be relabelled")
        frame = load_frame(parent)
        frame, applied = _apply_changes(frame, changes)
        if frame.empty or frame[frame["split"] == "train"].empty:
            raise EvaluationError("these exclusions would leave no training rows")
        version_name = name or _free_name(s, parent.name)
        stats = {**(parent.stats or {}), "classes": frame["label"].value_counts().to_dict()}
        counts = {a: sum(c["rows"] for c in applied if c["action"] == a) for a in ("relabel", "exclude")}
        record = {"source_run_id": source_run_id, "relabelled": counts["relabel"], "excluded": counts["exclude"],
                  "changes": applied}
        return write_dataset(s, name=version_name, task=parent.task, frame=frame, mapping=dict(parent.mapping or {}),
                             encoding=parent.encoding, source_filename=parent.source_filename, stats=stats,
                             warnings=list(parent.warnings or []), parent_id=parent.id, changes=record)


def _apply_changes(frame: pd.DataFrame, changes: Sequence[dict[str, Any]]) -> tuple[pd.DataFrame, list[dict]]:
    frame = frame.copy()
    known = set(frame["label"].astype(str))
    keep = pd.Series(True, index=frame.index)
    applied = []
    for change in changes:
        action = change.get("action")
        if action not in ("relabel", "exclude"):
            raise EvaluationError(f"unknown action {action!r}; expected relabel or exclude")
        split = normalise_split(str(change.get("split", "test")))
        mask = frame["text"].astype(str) == str(change["text"])
        if change.get("label") is not None:
            mask &= frame["label"].astype(str) == str(change["label"])
        # Training may cut a missing validation split from train (or test from validation), so a
        # prediction's split is a hint: fall back to the same text and label anywhere.
        if (mask & (frame["split"] == split)).any():
            mask &= frame["split"] == split
        entry = {"action": action, "split": split, "text": str(change["text"])[:500],
                 "label": change.get("label"), "rows": int(mask.sum())}
        if action == "relabel":
            target = str(change.get("to") or "")
            if target not in known:
                raise EvaluationError(f"cannot relabel to {target!r}: not a label of this dataset")
            frame.loc[mask, "label"] = target
            entry["to"] = target
        else:
            keep &= ~mask
        applied.append(entry)
    if not any(c["rows"] for c in applied):
        raise EvaluationError("none of the marked rows were found in the dataset")
    return frame[keep].reset_index(drop=True), applied


def _free_name(s: Any, base: str) -> str:
    from db import datasets as dataset_queries

    head, _, tail = base.rpartition(" v")
    stem = head if head and tail.isdigit() else base
    for n in range(2, 10_000):
        candidate = f"{stem} v{n}"[:200]
        if dataset_queries.get_dataset_by_name(s, candidate) is None:
            return candidate
    raise EvaluationError(f"too many versions of {base!r}")


def retrain(run_id: int, dataset_id: int) -> int:
    """Start a run with the same model and configuration on another dataset (version); its id."""
    from core.runs.jobs import start_run
    from db import runs as run_queries
    from db import session_scope

    with session_scope() as s:
        run = run_queries.get_run(s, run_id)
        if run is None:
            raise EvaluationError(f"no run with id {run_id}")
        task, model_kind = run.task, run.model_kind
        config = {k: v for k, v in (run.config or {}).items() if k != "resume"}
        name = f"{run.name or model_kind} (retrained)"[:200]
        gpus = int(config.get("gpus", 1) or 1)
    return start_run(dataset_id=dataset_id, task=task, model_kind=model_kind, config=config, name=name,
                     parent_run_id=run_id, gpus=gpus)
