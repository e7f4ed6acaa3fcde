"""How far a score on this many test rows could move: bootstrap confidence intervals, vectorised with numpy.

Resampling the test rows with replacement (1000 times, fixed seed, 95 %) gives each headline figure a range;
the same seed and row count draw the same resamples, so two runs scored on the same rows are compared pair by
pair (`paired_difference`), which is what "can this test set tell them apart?" asks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from core.evaluation.predictions import ArtifactsMissing, is_ranking, load_predictions, normalise_split

log = logging.getLogger(__name__)

N_RESAMPLES = 1000
LEVEL = 0.95
SEED = 24  # fixed: the same run always gets the same interval
CHUNK_CELLS = 2_000_000  # resamples are drawn in blocks of at most this many row indices (16 MB of int64)
CLASS_KEYS = ("accuracy", "macro_f1")
# Wider than this (±) and a test set cannot tell apart runs a few points apart.
TOO_WIDE = 0.05


@dataclass(frozen=True)
class Interval:
    value: float
    ci_low: float
    ci_high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def overlaps(self, other: Interval) -> bool:
        return self.ci_low <= other.ci_high and other.ci_low <= self.ci_high


def interval_from_dict(stored: Any) -> Interval | None:
    if not isinstance(stored, dict) or not {"value", "ci_low", "ci_high"} <= set(stored):
        return None
    return Interval(float(stored["value"]), float(stored["ci_low"]), float(stored["ci_high"]),
                    int(stored.get("n") or 0))


def _index_blocks(n: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """(b, n) row indices per block; the same (n, seed) always gives the same blocks."""
    rng = np.random.default_rng(seed)
    per_block = max(1, CHUNK_CELLS // max(n, 1))
    for start in range(0, n_resamples, per_block):
        yield rng.integers(0, n, size=(min(per_block, n_resamples - start), n))


def _class_scores(t: np.ndarray, p: np.ndarray, n_classes: int) -> dict[str, np.ndarray]:
    """Accuracy and macro-F1 of each row of (b, n) true/predicted class codes (a code of -1 is no class)."""
    b = t.shape[0]
    offsets = (np.arange(b) * n_classes)[:, None]
    correct = t == p
    tp = np.bincount((offsets + t)[correct], minlength=b * n_classes).reshape(b, n_classes)
    n_true = np.bincount((offsets + t).ravel(), minlength=b * n_classes).reshape(b, n_classes)
    known = p >= 0
    n_pred = np.bincount((offsets + p)[known], minlength=b * n_classes).reshape(b, n_classes)
    denominator = n_true + n_pred
    # F1 = 2TP / (2TP + FP + FN) = 2TP / (true + predicted); 0 when a class is neither (zero_division=0)
    f1 = np.divide(2 * tp, denominator, out=np.zeros(tp.shape, dtype=float), where=denominator > 0)
    return {"accuracy": correct.mean(axis=1), "macro_f1": f1.mean(axis=1)}


def _codes(y_true: Sequence[Any], y_pred: Sequence[Any], labels: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    index = {str(label): i for i, label in enumerate(labels)}
    t = np.array([index.get(str(v), -1) for v in y_true], dtype=np.int64)
    p = np.array([index.get(str(v), -1) for v in y_pred], dtype=np.int64)
    if (t < 0).any():
        raise ValueError("a true label is missing from `labels`")
    return t, p


def bootstrap_class_scores(y_true: Sequence[Any], y_pred: Sequence[Any], labels: Sequence[Any], *,
                           n_resamples: int = N_RESAMPLES, seed: int = SEED) -> dict[str, np.ndarray]:
    """Each of `n_resamples` resampled test sets' accuracy and macro-F1 ({key: (n_resamples,)})."""
    t, p = _codes(y_true, y_pred, labels)
    if not len(t):
        return {k: np.zeros(0) for k in CLASS_KEYS}
    parts = [_class_scores(t[idx], p[idx], len(labels)) for idx in _index_blocks(len(t), n_resamples, seed)]
    return {k: np.concatenate([part[k] for part in parts]) for k in CLASS_KEYS}


def class_intervals(y_true: Sequence[Any], y_pred: Sequence[Any], labels: Sequence[Any], *,
                    n_resamples: int = N_RESAMPLES, seed: int = SEED, level: float = LEVEL) -> dict[str, Interval]:
    """Accuracy and macro-F1 with their bootstrap intervals over the rows (empty for no rows)."""
    t, p = _codes(y_true, y_pred, labels)
    if not len(t):
        return {}
    point = _class_scores(t[None, :], p[None, :], len(labels))
    samples = bootstrap_class_scores(y_true, y_pred, labels, n_resamples=n_resamples, seed=seed)
    return {k: _interval(float(point[k][0]), samples[k], len(t), level) for k in CLASS_KEYS}


def mean_interval(values: Sequence[float] | np.ndarray, *, n_resamples: int = N_RESAMPLES, seed: int = SEED,
                  level: float = LEVEL) -> Interval | None:
    """The mean of per-row values (a recommender's per-user NDCG, hit or not) with its bootstrap interval."""
    x = np.asarray(values, dtype=float)
    if not len(x):
        return None
    means = np.concatenate([x[idx].mean(axis=1) for idx in _index_blocks(len(x), n_resamples, seed)])
    return _interval(float(x.mean()), means, len(x), level)


def paired_difference(a: dict[str, np.ndarray], b: dict[str, np.ndarray], key: str = "macro_f1",
                      level: float = LEVEL) -> tuple[float, float]:
    """The interval of run A minus run B over the same resamples of the same rows."""
    diff = a[key] - b[key]
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(diff, [tail, 100 - tail])
    return float(low), float(high)


def _interval(value: float, samples: np.ndarray, n: int, level: float) -> Interval:
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    # A percentile interval of a skewed score can miss the score itself by a hair; it never should.
    return Interval(value, float(min(low, value)), float(max(high, value)), n)


def intervals_json(intervals: dict[str, Interval]) -> dict[str, dict[str, Any]]:
    return {k: iv.as_dict() for k, iv in intervals.items()}


def run_intervals(run: Any, split: str = "test") -> dict[str, Interval]:
    """A run's intervals on one split: stored when it completed, else computed from its prediction file."""
    split = normalise_split(split)
    stored = ((run.metrics or {}).get("intervals") or {}).get(split) or {}
    found = {k: iv for k, v in stored.items() if (iv := interval_from_dict(v)) is not None}
    if found or is_ranking(run):
        return found
    try:
        frame = load_predictions(run.id, split)
    except ArtifactsMissing as exc:
        log.info("run %s: no %s intervals (%s)", run.id, split, exc)
        return {}
    labels = [*((run.metrics or {}).get("labels") or [])]
    labels += sorted(set(frame["label"]) - set(labels))
    return class_intervals(frame["label"].tolist(), frame["pred"].tolist(), labels)


def run_warnings(run: Any) -> list[str]:
    """What a reader of a classification run's test score must know: too few rows, or validation disagrees."""
    test, validation = run_intervals(run, "test"), run_intervals(run, "validation")
    found = (too_small_warning(test.get("macro_f1")),
             disagreement_warning(test.get("macro_f1"), validation.get("macro_f1")))
    return [w for w in found if w]


def too_small_warning(interval: Interval | None, metric: str = "macro-F1") -> str | None:
    """Said when a test set is too small to tell runs a few points apart."""
    if interval is None or interval.half_width <= TOO_WIDE:
        return None
    return (f"With {interval.n:,} test rows, {metric} is only known to about ±{interval.half_width:.2f} "
            f"({interval.ci_low:.2f}–{interval.ci_high:.2f}): runs closer than that cannot be told apart on "
            "this test set. A bigger test split would.")


def disagreement_warning(test: Interval | None, validation: Interval | None, metric: str = "macro-F1") -> str | None:
    """Said when the test score and the validation score differ by more than their intervals allow."""
    if test is None or validation is None or test.overlaps(validation):
        return None
    return (f"Test {metric} {test.value:.2f} ({test.ci_low:.2f}–{test.ci_high:.2f}) and validation {metric} "
            f"{validation.value:.2f} ({validation.ci_low:.2f}–{validation.ci_high:.2f}) disagree by more than "
            "their intervals allow: one of the splits is unusual (small, or unlike the other), so trust neither "
            "number alone.")
