"""Multi-label scores: micro/macro/samples F1, per-tag precision/recall/F1, Hamming loss, subset accuracy; the
per-tag decision thresholds tuned on validation (and the one global threshold beside them); the zero-tag and
"most frequent tags" baselines.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

THRESHOLD_GRID = tuple(round(x, 2) for x in np.arange(0.05, 0.96, 0.05))
DEFAULT_THRESHOLD = 0.5


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denominator = 2 * tp + fp + fn
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def report(y: np.ndarray, pred: np.ndarray, tags: Sequence[str]) -> dict[str, Any]:
    """Every figure of predicted tag sets `pred` against true ones `y` (both (rows, tags) 0/1)."""
    y, pred = np.asarray(y, dtype=bool), np.asarray(pred, dtype=bool)
    n = len(y)
    tp, fp, fn = (y & pred).sum(0), (~y & pred).sum(0), (y & ~pred).sum(0)
    precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)
    recall = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), 0.0)
    f1 = _f1(tp, fp, fn)
    present = (tp + fn) > 0  # macro averages over the tags the split holds: an absent tag has no F1 to speak of
    row_tp, row_fp, row_fn = (y & pred).sum(1), (~y & pred).sum(1), (y & ~pred).sum(1)
    # A row with no true and no predicted tag is a perfect answer (sklearn's samples-F1 scores it 0 by default).
    samples = np.where(row_tp + row_fp + row_fn > 0, _f1(row_tp, row_fp, row_fn), 1.0)
    return {
        "micro_f1": float(_f1(tp.sum(), fp.sum(), fn.sum())) if n else 0.0,
        "micro_precision": float(tp.sum() / max(tp.sum() + fp.sum(), 1)),
        "micro_recall": float(tp.sum() / max(tp.sum() + fn.sum(), 1)),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "samples_f1": float(samples.mean()) if n else 0.0,
        "hamming_loss": float((y != pred).mean()) if n else 0.0,
        "subset_accuracy": float((y == pred).all(1).mean()) if n else 0.0,
        "labels_per_row_true": float(y.sum(1).mean()) if n else 0.0,
        "labels_per_row_pred": float(pred.sum(1).mean()) if n else 0.0,
        "n": int(n),
        "per_tag": {t: {"precision": float(precision[j]), "recall": float(recall[j]), "f1": float(f1[j]),
                        "support": int(tp[j] + fn[j])} for j, t in enumerate(tags)},
    }


def apply_thresholds(proba: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """The predicted tag sets: each tag whose probability reaches its threshold."""
    return (np.asarray(proba) >= np.asarray(thresholds)[None, :]).astype(np.int8)


def threshold_curves(y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """(tags, grid) F1 of each tag at each threshold of THRESHOLD_GRID."""
    y = np.asarray(y, dtype=bool)
    out = np.zeros((y.shape[1], len(THRESHOLD_GRID)))
    for k, t in enumerate(THRESHOLD_GRID):
        pred = np.asarray(proba) >= t
        out[:, k] = _f1((y & pred).sum(0), (~y & pred).sum(0), (y & ~pred).sum(0))
    return out


def tune_thresholds(y: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    """Per-tag thresholds that maximise each tag's validation F1 (the one nearest 0.5 among ties; 0.5 for a tag
    the validation split lacks), and one global threshold that maximises micro-F1: the simple alternative."""
    y = np.asarray(y, dtype=bool)
    grid = np.asarray(THRESHOLD_GRID)
    curves = threshold_curves(y, proba)
    per_tag = []
    for j in range(y.shape[1]):
        if not y[:, j].any():
            per_tag.append(DEFAULT_THRESHOLD)
            continue
        best = curves[j].max()
        ties = np.flatnonzero(curves[j] >= best - 1e-12)
        per_tag.append(float(grid[ties[np.argmin(np.abs(grid[ties] - DEFAULT_THRESHOLD))]]))
    micro = []
    for t in grid:
        pred = np.asarray(proba) >= t
        micro.append(_f1((y & pred).sum(), (~y & pred).sum(), (y & ~pred).sum()))
    micro = np.asarray(micro)
    ties = np.flatnonzero(micro >= micro.max() - 1e-12)
    global_t = float(grid[ties[np.argmin(np.abs(grid[ties] - DEFAULT_THRESHOLD))]])
    return {"per_tag": per_tag, "global": global_t, "grid": list(THRESHOLD_GRID), "curves": curves.round(4).tolist()}


def most_frequent_tags(y_train: np.ndarray) -> np.ndarray:
    """The "most frequent tags" baseline's one answer for every text: the k most frequent training tags, k the
    training split's mean tags per row rounded (at least one)."""
    y_train = np.asarray(y_train)
    k = max(1, int(round(float(y_train.sum(1).mean())))) if len(y_train) else 1
    out = np.zeros(y_train.shape[1], dtype=np.int8)
    out[np.argsort(-y_train.sum(0), kind="stable")[:k]] = 1
    return out


def baselines(y_train: np.ndarray, y_test: np.ndarray, tags: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The zero-tag baseline (no tag on any text) and the most-frequent-tags one, scored on `y_test`."""
    n = len(y_test)
    frequent = np.tile(most_frequent_tags(y_train), (n, 1))
    zero = np.zeros_like(frequent)
    keep = ("micro_f1", "macro_f1", "samples_f1", "hamming_loss", "subset_accuracy")
    out = {}
    for name, pred in (("no_tags", zero), ("most_frequent", frequent)):
        scores = report(y_test, pred, tags)
        out[name] = {k: scores[k] for k in keep}
    out["most_frequent"]["tags"] = [t for t, on in zip(tags, most_frequent_tags(y_train), strict=True) if on]
    return out
