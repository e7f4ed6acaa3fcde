"""Weak runs: a run whose score does not clear its baselines by more than its own uncertainty.

A classification run must beat the majority class and the best TF-IDF run on its dataset (the same test set),
a recommender the popularity baseline on its split, each by more than the 95 % interval of its score: the
lower end of the interval must lie above the baseline. Train, Evaluate, Home, `protolab runs` and the demo
pickers say so, and no default ever picks a weak run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import object_session

from core.evaluation.comparison import baseline_column, baseline_run, majority_scores
from core.evaluation.predictions import EvaluationError, is_ranking, split_report
from core.evaluation.uncertainty import Interval, run_intervals
from db.enums import RunStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Weakness:
    weak: bool
    reason: str | None = None  # why, in one sentence (None when it is not weak)

    def as_dict(self) -> dict[str, Any]:
        return {"weak": self.weak, "weak_reason": self.reason}


NOT_WEAK = Weakness(False)


def _score_text(label: str, iv: Interval) -> str:
    return f"{label} {iv.value:.3f} (95 % interval {iv.ci_low:.3f}–{iv.ci_high:.3f})"


def _against(label: str, iv: Interval, baselines: list[tuple[str, float]]) -> Weakness:
    for name, value in baselines:
        if iv.ci_low <= value:
            return Weakness(True, f"{_score_text(label, iv)} is not above {name} ({value:.3f}) by more than its "
                                  "interval: on this test set it is no better than that baseline")
    return NOT_WEAK


def classification_weakness(run: Any, baseline: Any | None) -> Weakness:
    """Weak unless the run's test macro-F1 interval lies above the majority class and its task's baseline."""
    try:
        report = split_report(run, "test")
    except EvaluationError:
        return NOT_WEAK  # nothing to judge it by
    iv = run_intervals(run, "test").get("macro_f1")
    if iv is None:
        value = float(report.get("macro_f1") or 0.0)
        iv = Interval(value, value, value, int(report.get("n") or 0))
    baselines = [("always predicting the majority class", majority_scores(report)["macro_f1"])]
    if baseline is not None and isinstance((baseline.metrics or {}).get("macro_f1"), (int, float)):
        baselines.append((f"the {baseline_column(run.task)} #{baseline.id}", float(baseline.metrics["macro_f1"])))
    return _against("macro-F1", iv, baselines)


def ranking_weakness(run: Any) -> Weakness:
    """Weak unless the NDCG interval at the run's K lies above the popularity baseline on the same split."""
    m = run.metrics or {}
    if (m.get("baseline") or {}).get("kind") == run.model_kind:
        return NOT_WEAK  # it is the baseline its metrics were measured against
    k = str(m.get("k", 10))
    popular = (((m.get("baseline") or {}).get("by_k") or {}).get(k) or {}).get("ndcg")
    value = ((m.get("by_k") or {}).get(k) or {}).get("ndcg", m.get(f"ndcg@{k}"))
    if not isinstance(popular, (int, float)) or not isinstance(value, (int, float)):
        return NOT_WEAK
    iv = run_intervals(run, "test").get(f"ndcg@{k}") or Interval(float(value), float(value), float(value), 0)
    return _against(f"NDCG@{k}", iv, [("the popularity baseline", float(popular))])


def run_weakness(run: Any, s: Any | None = None) -> Weakness:
    """Whether a completed run is weak, and why (runs that are not completed are never weak)."""
    if run.status != RunStatus.COMPLETED:
        return NOT_WEAK
    if is_ranking(run):
        return ranking_weakness(run)
    s = s if s is not None else object_session(run)
    baseline = baseline_run(s, run) if s is not None else None  # None for a baseline run itself
    return classification_weakness(run, baseline)
