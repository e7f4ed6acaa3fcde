"""Labelling progress charts: labels per class, and the few-shot model's learning curve.

Pure functions: data in, plotly Figure out (tested by looking at figure data).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go


def labels_per_class(counts: Mapping[str, int]) -> go.Figure:
    """Labels given to each class, in label-set order (a class still at 0 shows as an empty bar)."""
    names, values = [str(k) for k in counts], [int(v) for v in counts.values()]
    fig = go.Figure(go.Bar(x=names, y=values, text=values, textposition="auto", name="labels"))
    fig.update_layout(title=f"Labels per class ({sum(values)} in all)", xaxis_title="label", yaxis_title="labels",
                      height=300, margin={"t": 40, "b": 40})
    return fig


def learning_curve(points: Sequence[tuple[int, float]]) -> go.Figure:
    """Cross-validated accuracy against the number of labels: is labelling more still paying off?"""
    xs, ys = [int(n) for n, _ in points], [float(a) for _, a in points]
    fig = go.Figure(go.Scatter(x=xs, y=ys, mode="lines+markers", name="cross-validated accuracy"))
    fig.update_layout(title="Learning curve", xaxis_title="labels", yaxis_title="cross-validated accuracy",
                      yaxis_range=[0, 1.02], height=300, margin={"t": 40, "b": 40})
    return fig

