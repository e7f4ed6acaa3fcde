"""Classification metrics, computed once when a run completes and stored on the run.

Everything comes from scikit-learn; a class that is never predicted gets
precision 0 (zero_division=0), without warnings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from core.metric_keys import CLASSIFICATION_METRICS


def classification_report(
    y_true: Sequence[Any], y_pred: Sequence[Any], labels: Sequence[Any], proba: np.ndarray | None = None,
) -> dict[str, Any]:
    """Headline, per-class and confusion-matrix figures for one split.

    `labels` fixes the class order (rows/columns of the confusion matrix, columns of `proba`).
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    labels = list(labels)
    y_true, y_pred = list(y_true), list(y_pred)
    report: dict[str, Any] = {"n": len(y_true), "labels": [str(x) for x in labels]}
    if not y_true:
        return {**report, **{k: 0.0 for k in CLASSIFICATION_METRICS}, "per_class": {}, "confusion_matrix": [],
                "majority_rate": 0.0}
    report["accuracy"] = float(accuracy_score(y_true, y_pred))
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=average,
                                                     zero_division=0)
        report.update({f"{average}_precision": float(p), f"{average}_recall": float(r), f"{average}_f1": float(f)})
    p, r, f, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=None,
                                                       zero_division=0)
    report["per_class"] = {str(label): {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                                        "support": int(support[i])} for i, label in enumerate(labels)}
    report["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=labels).tolist()
    counts = np.array([sum(1 for y in y_true if y == label) for label in labels])
    report["majority_rate"] = float(counts.max() / len(y_true))
    report["majority_label"] = str(labels[int(counts.argmax())])
    if proba is not None and len(labels) >= 2:
        report.update(_probability_metrics(y_true, np.asarray(proba, dtype=float), labels))
    return report


def _probability_metrics(y_true: list[Any], proba: np.ndarray, labels: list[Any]) -> dict[str, Any]:
    """One-vs-rest ROC AUC and average precision per class (skipped for classes absent from y_true)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    out: dict[str, Any] = {"roc_auc": {}, "average_precision": {}}
    y = np.asarray([str(v) for v in y_true])
    for i, label in enumerate(labels):
        positives = y == str(label)
        if positives.all() or not positives.any():
            continue
        out["roc_auc"][str(label)] = float(roc_auc_score(positives, proba[:, i]))
        out["average_precision"][str(label)] = float(average_precision_score(positives, proba[:, i]))
    if out["roc_auc"]:
        out["macro_roc_auc"] = float(np.mean(list(out["roc_auc"].values())))
    return out


def headline(report: dict[str, Any]) -> dict[str, float]:
    """Just the headline figures of a report (what `train --json` and the leaderboard show)."""
    return {k: float(report[k]) for k in CLASSIFICATION_METRICS if k in report}


def validation_scores(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Loss, accuracy and macro-F1 of class probabilities against integer labels (a training run's validation)."""
    from sklearn.metrics import f1_score

    if len(y) == 0:
        return {"loss": 0.0, "accuracy": 0.0, "macro_f1": 0.0}
    pred = proba.argmax(axis=1)
    loss = float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, 1.0))))
    labels = list(range(proba.shape[1]))
    return {"loss": loss, "accuracy": float(np.mean(pred == y)),
            "macro_f1": float(f1_score(y, pred, labels=labels, average="macro", zero_division=0))}
