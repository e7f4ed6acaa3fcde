"""Error analysis of one split's predictions: mistakes, ROC/PR curves, calibration and thresholds.

Pure functions of a predictions frame, plus `analyse_split`, which reads the file and bundles them for the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.data.storage import ROW_ID
from core.evaluation.predictions import EvaluationError, load_meta, load_predictions

MAX_CURVE_POINTS = 400  # a curve of 20k thresholds looks the same with 400 points and draws 50x faster


def misclassified(preds: pd.DataFrame, true: str | None = None, predicted: str | None = None) -> pd.DataFrame:
    """Wrong predictions, most confident first; optionally only one (true, predicted) cell."""
    wrong = preds[preds["label"] != preds["pred"]]
    if true is not None:
        wrong = wrong[wrong["label"] == str(true)]
    if predicted is not None:
        wrong = wrong[wrong["pred"] == str(predicted)]
    out = pd.DataFrame({"row": wrong.index.astype(int), "text": wrong["text"].astype(str),
                        "true": wrong["label"], "predicted": wrong["pred"], "confidence": wrong["confidence"]})
    if ROW_ID in wrong.columns:  # the stored row's stable id: a mark then changes that row, not its copies
        out[ROW_ID] = wrong[ROW_ID].astype("int64")
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
