"""The figures a run logs to MLflow: its curves for every kind, and its task's own (a task entry names them).

Built from what Protolab already draws (core.charts), never a second drawing of the same chart.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import plotly.graph_objects as go

from core.charts import evaluation as charts
from core.charts.training import loss_curve, validation_curve
from core.evaluation.analysis import analyse_split
from core.evaluation.predictions import split_report

TRACKED_SPLIT = "test"  # the split whose figures go to MLflow (Evaluate opens on it)


def curves(points: Iterable[dict[str, Any]]) -> dict[str, go.Figure]:
    """The loss and validation curves of a run that reported metric points (none for one that did not)."""
    points = list(points)
    if not points:
        return {}
    return {"loss_curve": loss_curve(points), "validation_curve": validation_curve(points)}


def classification_figures(run: Any) -> dict[str, go.Figure]:
    """Confusion matrix, per-class bars, and the ROC and precision-recall curves of the test split."""
    report = split_report(run, TRACKED_SPLIT)
    figures = {"confusion_matrix": charts.confusion_matrix(report["confusion_matrix"], report["labels"]),
               "per_class": charts.per_class_bars(report)}
    analysis = analyse_split(run.id, TRACKED_SPLIT, list(report["labels"]))
    if analysis.roc:
        figures["roc_curves"] = charts.roc_curves(analysis.roc)
        figures["pr_curves"] = charts.pr_curves(analysis.pr)
    return figures


def ranking_figures(run: Any) -> dict[str, go.Figure]:
    """The ranking metrics against K."""
    by_k = (run.metrics or {}).get("by_k") or {}
    return {"metrics_at_k": charts.metric_vs_k({int(k): v for k, v in by_k.items()})} if by_k else {}
