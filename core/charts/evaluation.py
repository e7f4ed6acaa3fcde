"""Plotly figures for the Evaluate page and the HTML report: pure functions of stored numbers.

No I/O here: callers pass reports, curves and metric frames from core.evaluation.analysis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from core.evaluation.analysis import Calibration, Curve
from core.tasks import get_task

PRF = (("precision", "Precision"), ("recall", "Recall"), ("f1", "F1"))
RUN_PALETTE = tuple(qualitative.Dark24)  # 24 distinct colours: runs with nearby ids never share one


def run_colour(run_id: int) -> str:
    """The one colour of run `run_id` in every chart, whatever the order its traces are drawn in."""
    return RUN_PALETTE[int(run_id) % len(RUN_PALETTE)]


def _layout(fig: go.Figure, title: str, **kwargs: Any) -> go.Figure:
    fig.update_layout(title=title, template="plotly_white", margin=dict(l=40, r=20, t=50, b=40),
                      legend=dict(orientation="h", y=-0.2), **kwargs)
    return fig


def per_class_bars(report: Mapping[str, Any]) -> go.Figure:
    """Precision, recall and F1 per class as grouped bars; the support is in the tick labels."""
    per_class = report.get("per_class") or {}
    labels = list(per_class)
    ticks = [f"{label} (n={per_class[label]['support']})" for label in labels]
    fig = go.Figure()
    for key, name in PRF:
        values = [per_class[label][key] for label in labels]
        fig.add_trace(go.Bar(name=name, x=ticks, y=values, text=[f"{v:.2f}" for v in values],
                             customdata=[per_class[label]["support"] for label in labels],
                             hovertemplate="%{x}<br>" + name + ": %{y:.3f}<br>support: %{customdata}<extra></extra>"))
    return _layout(fig, "Per-class precision, recall and F1", barmode="group", yaxis=dict(range=[0, 1.05]))


def confusion_matrix(matrix: Sequence[Sequence[int]], labels: Sequence[str], normalise: bool = False) -> go.Figure:
    """Heatmap of true (rows) vs predicted (columns); `normalise` divides each row by its total.

    A transparent marker sits on every cell so that clicking a cell selects a point
    (Streamlit's on_select reports scatter points, with customdata = [true, predicted]).
    """
    counts = np.asarray(matrix, dtype=float).reshape(len(labels), len(labels))
    totals = counts.sum(axis=1, keepdims=True)
    z = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0) if normalise else counts
    text = [[f"{z[i, j]:.2f}" if normalise else f"{int(counts[i, j])}" for j in range(len(labels))]
            for i in range(len(labels))]
    labels = [str(x) for x in labels]
    # The heatmap skips hover so that hovering and clicking land on the cell markers, which carry the text.
    fig = go.Figure(go.Heatmap(z=z.tolist(), x=labels, y=labels, text=text, texttemplate="%{text}",
                               colorscale="Blues", zmin=0, zmax=1 if normalise else None, hoverinfo="skip"))
    cells = [(i, j) for i in range(len(labels)) for j in range(len(labels))]
    fig.add_trace(go.Scatter(x=[labels[j] for _, j in cells], y=[labels[i] for i, _ in cells], mode="markers",
                             marker=dict(size=40, opacity=0, symbol="square"),
                             customdata=[[labels[i], labels[j], text[i][j]] for i, j in cells],
                             hovertemplate="true %{customdata[0]}<br>predicted %{customdata[1]}<br>"
                                           "%{customdata[2]}<extra></extra>", showlegend=False, name="cells"))
    fig.update_layout(clickmode="event+select", dragmode=False)
    fig.update_yaxes(autorange="reversed", title="true label", type="category")
    fig.update_xaxes(title="predicted label", type="category")
    return _layout(fig, "Confusion matrix" + (" (row-normalised)" if normalise else " (counts)"))


def _curve_figure(curves: Mapping[str, Curve], title: str, x_title: str, y_title: str, area_name: str,
                  diagonal: bool) -> go.Figure:
    fig = go.Figure()
    for label, curve in curves.items():
        fig.add_trace(go.Scatter(x=curve.x, y=curve.y, mode="lines", name=f"{label} ({area_name} {curve.area:.3f})"))
    if diagonal:
        fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance",
                                 line=dict(dash="dash", color="grey")))
    fig.update_xaxes(title=x_title, range=[0, 1])
    fig.update_yaxes(title=y_title, range=[0, 1.02])
    return _layout(fig, title)


def roc_curves(curves: Mapping[str, Curve]) -> go.Figure:
    """One-vs-rest ROC curve per class, AUC in the legend, plus the chance diagonal."""
    return _curve_figure(curves, "ROC curves (one-vs-rest)", "false positive rate", "true positive rate",
                         "AUC", diagonal=True)


def pr_curves(curves: Mapping[str, Curve]) -> go.Figure:
    """One-vs-rest precision-recall curve per class, average precision in the legend."""
    return _curve_figure(curves, "Precision-recall curves (one-vs-rest)", "recall", "precision", "AP",
                         diagonal=False)


def reliability_diagram(cal: Calibration) -> go.Figure:
    """Accuracy per confidence bin against the diagonal of perfect calibration; ECE in the title."""
    edges = cal.bin_edges
    centers = [(edges[i] + edges[i + 1]) / 2 for i in range(len(edges) - 1)]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=centers, y=[a if a is not None else 0 for a in cal.accuracy], name="accuracy",
                         width=[edges[i + 1] - edges[i] for i in range(len(centers))], customdata=cal.count,
                         hovertemplate="confidence %{x:.2f}<br>accuracy %{y:.3f}<br>n=%{customdata}<extra></extra>"))
    filled = [(c, m) for c, m in zip(centers, cal.confidence, strict=True) if m is not None]
    fig.add_trace(go.Scatter(x=[c for c, _ in filled], y=[m for _, m in filled], mode="markers",
                             name="mean confidence"))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                             line=dict(dash="dash", color="grey")))
    fig.update_xaxes(title="confidence", range=[0, 1])
    fig.update_yaxes(title="accuracy", range=[0, 1.02])
    return _layout(fig, f"Reliability diagram (ECE {cal.ece:.3f})")


def learning_curves(points: pd.DataFrame) -> go.Figure:
    """Training loss per step (left) and validation metrics per epoch (right) of one run."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("training loss per step", "validation per epoch"))
    if not points.empty:
        train = points[(points["name"] == "train_loss")].sort_values("step")
        if not train.empty:
            fig.add_trace(go.Scatter(x=train["step"], y=train["value"], mode="lines", name="train loss"),
                          row=1, col=1)
        val = points[points["split"] == "validation"]
        for name, group in val.groupby("name", sort=True):
            x = group["epoch"].where(group["epoch"].notna(), group["step"])
            fig.add_trace(go.Scatter(x=x, y=group["value"], mode="lines+markers", name=f"validation {name}"),
                          row=1, col=2)
    fig.update_xaxes(title_text="step", row=1, col=1)
    fig.update_xaxes(title_text="epoch", row=1, col=2)
    return _layout(fig, "Learning curves")


def comparison_bars(rows: Mapping[int, Mapping[str, float | None]], metrics: Sequence[str],
                    names: Mapping[int, str]) -> go.Figure:
    """Grouped bars: one trace per run (key = run id, drawn in run_colour), one group per metric."""
    fig = go.Figure()
    for run_id, values in rows.items():
        fig.add_trace(go.Bar(name=names.get(run_id, f"#{run_id}"), x=list(metrics), y=[values.get(m) for m in metrics],
                             marker_color=run_colour(run_id)))
    return _layout(fig, "Runs compared", barmode="group")


def runs_compared(runs: Sequence[Any], names: Mapping[int, str]) -> go.Figure:
    """The bars of a comparison of runs (Evaluate's Compare and the HTML report): each compared metric, a bar per
    run named by `names[run.id]`; recommenders at the display K."""
    task = get_task(runs[0].task)  # the runs of one dataset's lineage: one task, whose entry lists the metrics
    metrics = list(task.metrics)
    values = {r.id: task.values_for_compare(r) for r in runs}
    return comparison_bars({i: {m: v.get(m) for m in metrics} for i, v in values.items()}, metrics, names)


def overlaid_learning_curves(points: pd.DataFrame, names: Mapping[int, str], metric: str = "macro_f1",
                             split: str = "validation") -> go.Figure:
    """One line per run of `metric` on `split` (per epoch for validation, per step for training)."""
    fig = go.Figure()
    if not points.empty:
        sel = points[(points["name"] == metric) & (points["split"] == split)]
        for run_id, group in sel.groupby("run_id", sort=True):
            x = group["epoch"].where(group["epoch"].notna(), group["step"]) if split != "train" else group["step"]
            fig.add_trace(go.Scatter(x=x, y=group["value"], mode="lines+markers",
                                     name=names.get(int(run_id), f"#{run_id}"), line_color=run_colour(int(run_id))))
    fig.update_xaxes(title="epoch" if split != "train" else "step")
    fig.update_yaxes(title=metric)
    return _layout(fig, f"{split} {metric} by run")


def metric_vs_k(by_k: Mapping[int, Mapping[str, float]], metrics: Sequence[str] | None = None) -> go.Figure:
    """One line per ranking metric (precision, recall, NDCG, MAP, hit rate, coverage) against K."""
    ks = sorted(by_k)
    metrics = list(metrics or sorted({m for v in by_k.values() for m in v}))
    fig = go.Figure()
    for m in metrics:
        fig.add_trace(go.Scatter(x=ks, y=[by_k[k].get(m) for k in ks], mode="lines+markers", name=m))
    fig.update_xaxes(title="K", type="category")
    return _layout(fig, "Ranking metrics at K")


def metric_vs_k_comparison(runs: Mapping[int, Mapping[int, Mapping[str, float]]], names: Mapping[int, str],
                           metric: str = "ndcg") -> go.Figure:
    """One line per run (key = run id, drawn in run_colour) of one ranking metric against K."""
    fig = go.Figure()
    for run_id, by_k in runs.items():
        ks = sorted(by_k)
        fig.add_trace(go.Scatter(x=ks, y=[by_k[k].get(metric) for k in ks], mode="lines+markers",
                                 name=names.get(run_id, f"#{run_id}"), line_color=run_colour(run_id)))
    fig.update_xaxes(title="K", type="category")
    fig.update_yaxes(title=metric)
    return _layout(fig, f"{metric}@K by run")


def threshold_chart(table: pd.DataFrame, positive: str, current: float | None = None) -> go.Figure:
    """Precision, recall and F1 of the positive class against the decision threshold."""
    fig = go.Figure()
    for key, name in PRF:
        fig.add_trace(go.Scatter(x=table["threshold"], y=table[key], mode="lines", name=name))
    if current is not None:
        fig.add_vline(x=current, line_dash="dot", line_color="grey")
    fig.update_xaxes(title=f"threshold on P({positive})", range=[0, 1])
    fig.update_yaxes(range=[0, 1.02])
    return _layout(fig, f"Precision / recall vs threshold (positive: {positive})")
