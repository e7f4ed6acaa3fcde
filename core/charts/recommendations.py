"""Plotly figures for recommender runs: metric against K, model comparison at one K, recommendation scores.

Pure functions over Run.metrics dicts (the shape core.recs.training.metrics_dict writes); no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from core.metric_keys import DISPLAY_K, RANKING_METRICS

METRIC_LABELS = {"ndcg": "NDCG", "precision": "Precision", "recall": "Recall", "map": "MAP",
                 "hit_rate": "Hit rate", "coverage": "Catalogue coverage"}


def metric_vs_k(metrics_by_run: Mapping[str, Mapping[str, Any]], metric: str = "ndcg") -> go.Figure:
    """One line per run: `metric` at each K stored under the run's by_k (label -> Run.metrics)."""
    fig = go.Figure()
    for label, metrics in metrics_by_run.items():
        by_k = metrics.get("by_k") or {}
        ks = sorted(by_k, key=int)
        fig.add_trace(go.Scatter(x=[int(k) for k in ks], y=[by_k[k].get(metric) for k in ks],
                                 mode="lines+markers", name=str(label)))
    name = METRIC_LABELS.get(metric, metric)
    fig.update_layout(title=f"{name} at K", xaxis_title="K (list length)", yaxis_title=name,
                      yaxis_rangemode="tozero", legend_title="run", margin={"t": 50, "b": 40})
    return fig


def compare_at_k(metrics_by_run: Mapping[str, Mapping[str, Any]], k: int = DISPLAY_K,
                 metrics: Sequence[str] = RANKING_METRICS,
                 ) -> go.Figure:
    """Grouped bars: each metric at one K, one bar per run (runs that lack that K are left out)."""
    fig = go.Figure()
    for label, run_metrics in metrics_by_run.items():
        values = (run_metrics.get("by_k") or {}).get(str(k))
        if not values:
            continue
        fig.add_trace(go.Bar(x=[METRIC_LABELS.get(m, m) for m in metrics], y=[values.get(m) for m in metrics],
                             name=str(label)))
    fig.update_layout(barmode="group", title=f"Ranking metrics at K = {k}", yaxis_title="score",
                      yaxis_rangemode="tozero", legend_title="run", margin={"t": 50, "b": 40})
    return fig


def recommendation_scores(items: Sequence[tuple[str, float]]) -> go.Figure:
    """Horizontal bars of (label, score), best at the top, for the demo page."""
    labels = [label for label, _ in items][::-1]
    scores = [score for _, score in items][::-1]
    fig = go.Figure(go.Bar(x=scores, y=labels, orientation="h"))
    fig.update_layout(title="Recommendation scores", xaxis_title="score", margin={"t": 40, "b": 30, "l": 10},
                      height=max(240, 28 * len(items) + 80))
    return fig
