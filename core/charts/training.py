"""Live training charts: loss by step, validation metrics by epoch, throughput.

Pure functions over metric points (MetricPoint rows or dicts with name, value,
step, epoch, split); no data yet gives an annotated empty figure, not an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import plotly.graph_objects as go

VALIDATION_METRICS = ("macro_f1", "accuracy")
LOSS_NAMES = ("train_loss", "loss")
THROUGHPUT_NAMES = ("samples_per_s", "throughput")
TRAIN_COLOR, VALIDATION_COLOR = "#1f77b4", "#ff7f0e"


def loss_curve(points: Iterable[Any], smoothing: float = 0.8) -> go.Figure:
    """Training loss by step: the raw points faintly, an exponential moving average on top,
    and the validation loss (one marker per epoch) when there is one."""
    all_rows = _rows(points)
    rows = [p for p in all_rows if p["name"] in LOSS_NAMES and p["split"] in ("train", None)]
    val = sorted((p for p in all_rows if p["name"] in LOSS_NAMES and p["split"] == "validation"),
                 key=lambda p: p["step"])
    fig = _figure("Training loss", "step", "loss")
    if not rows:
        return _empty(fig)
    rows.sort(key=lambda p: p["step"])
    steps, values = [p["step"] for p in rows], [p["value"] for p in rows]
    # Markers while there are only a few points, so the first report is visible at all.
    mode = "lines+markers" if len(rows) < 5 else "lines"
    fig.add_trace(go.Scatter(x=steps, y=values, mode=mode, name="loss", opacity=0.35,
                             line={"width": 1, "color": TRAIN_COLOR}))
    fig.add_trace(go.Scatter(x=steps, y=smooth(values, smoothing), mode=mode, name="loss (smoothed)",
                             line={"width": 2.5, "color": TRAIN_COLOR}))
    if val:
        fig.add_trace(go.Scatter(x=[p["step"] for p in val], y=[p["value"] for p in val], mode="markers+lines",
                                 name="validation loss", marker={"size": 8},
                                 line={"dash": "dot", "color": VALIDATION_COLOR}))
    fig.update_yaxes(tickformat=".3g")
    return fig


def validation_curve(points: Iterable[Any], metrics: Sequence[str] = VALIDATION_METRICS) -> go.Figure:
    """Validation metrics by epoch (one line per metric, markers so a single epoch shows)."""
    rows = [p for p in _rows(points) if p["split"] == "validation" and p["name"] in metrics]
    fig = _figure("Validation", "epoch", "score")
    if not rows:
        return _empty(fig, "no validation yet: it comes at the end of each epoch")
    for name in metrics:
        series = sorted((p for p in rows if p["name"] == name), key=_epoch_key)
        if series:
            fig.add_trace(go.Scatter(x=[_epoch_key(p) for p in series], y=[p["value"] for p in series],
                                     mode="lines+markers", name=name))
    fig.update_yaxes(range=[0, 1.02])
    return fig


def throughput_chart(points: Iterable[Any]) -> go.Figure:
    """Training samples per second by step."""
    rows = sorted((p for p in _rows(points) if p["name"] in THROUGHPUT_NAMES), key=lambda p: p["step"])
    fig = _figure("Throughput", "step", "samples/s")
    if not rows:
        return _empty(fig)
    fig.add_trace(go.Scatter(x=[p["step"] for p in rows], y=[p["value"] for p in rows], mode="lines",
                             name="samples/s"))
    return fig


def smooth(values: Sequence[float], weight: float = 0.8) -> list[float]:
    """Debiased exponential moving average (TensorBoard's smoothing), so early points are not pulled to 0."""
    out, avg = [], 0.0
    for i, v in enumerate(values, start=1):
        avg = weight * avg + (1 - weight) * v
        out.append(avg / (1 - weight**i) if weight < 1 else v)
    return out


def _rows(points: Iterable[Any]) -> list[dict[str, Any]]:
    rows = []
    for p in points or []:
        get = p.get if isinstance(p, dict) else lambda k, d=None, p=p: getattr(p, k, d)
        value = get("value")
        if value is None:
            continue
        rows.append({"name": get("name"), "value": float(value), "step": int(get("step") or 0),
                     "epoch": get("epoch"), "split": get("split", "train")})
    return rows


def _epoch_key(p: dict[str, Any]) -> float:
    return float(p["epoch"]) if p["epoch"] is not None else float(p["step"])


def _figure(title: str, x_title: str, y_title: str) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, height=320,
                      margin={"l": 40, "r": 10, "t": 40, "b": 40}, legend={"orientation": "h", "y": -0.25})
    return fig


def _empty(fig: go.Figure, text: str = "no data yet") -> go.Figure:
    fig.add_annotation(text=text, xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False,
                       font={"size": 14, "color": "gray"})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig
