"""Labelling progress charts: labels per class, and the few-shot model's learning curve.

Pure functions: data in, plotly Figure out (tested by looking at figure data).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go


def labels_per_class(counts: Mapping[str, int]) -> go.Figure:
    """Labels given to each class, in label-set order (a class still at 0 shows as an empty bar).

    Before the first label the chart says so instead of drawing bars of height 0 on the -1...1 axis plotly picks
    for all-zero data; counts are whole numbers, so the axis starts at 0 and never ticks at 0.5."""
    names, values = [str(k) for k in counts], [int(v) for v in counts.values()]
    fig = go.Figure(go.Bar(x=names, y=values, text=values, textposition="auto", name="labels"))
    fig.update_layout(title=f"Labels per class ({sum(values)} in all)", xaxis_title="label", yaxis_title="labels",
                      height=300, margin={"t": 40, "b": 40})
    if not any(values):
        fig.update_yaxes(visible=False)
        fig.add_annotation(text="No labels yet: label a few texts and each class's count appears here",
                           xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False)
        return fig
    fig.update_yaxes(rangemode="tozero", range=[0, max(values) * 1.15], dtick=1 if max(values) <= 5 else None)
    return fig


def learning_curve(points: Sequence[tuple[int, float]]) -> go.Figure:
    """Cross-validated accuracy against the number of labels: is labelling more still paying off?"""
    xs, ys = [int(n) for n, _ in points], [float(a) for _, a in points]
    fig = go.Figure(go.Scatter(x=xs, y=ys, mode="lines+markers", name="cross-validated accuracy"))
    fig.update_layout(title="Learning curve", xaxis_title="labels", yaxis_title="cross-validated accuracy",
                      yaxis_range=[0, 1.02], height=300, margin={"t": 40, "b": 40})
    return fig



def label_curve(rows: Sequence[Mapping[str, Any]], reference: tuple[str, float] | None = None) -> go.Figure:
    """How many labels do I need: macro-F1 against labels a class (log-2 axis: 8, 16, 32, 64 evenly spaced), one
    line per model, a ± std band where a point has several seeds, and a dashed line at `reference` (label,
    macro-F1): the full-data run being evaluated. `rows` as core.labelling.label_curve.aggregate gives them."""
    from plotly.colors import qualitative

    fig = go.Figure()
    models = list(dict.fromkeys(str(r["model"]) for r in rows))
    for i, model in enumerate(models):
        points = sorted((r for r in rows if r["model"] == model), key=lambda r: int(r["size"]))
        xs, ys = [int(r["size"]) for r in points], [float(r["mean"]) for r in points]
        color, name = qualitative.Plotly[i % len(qualitative.Plotly)], str(points[0].get("label") or model)
        if any(int(r.get("n", 1)) > 1 for r in points):
            upper = [y + float(r["std"]) for y, r in zip(ys, points, strict=True)]
            lower = [y - float(r["std"]) for y, r in zip(ys, points, strict=True)]
            fig.add_trace(go.Scatter(x=xs + xs[::-1], y=upper + lower[::-1], mode="lines", fill="toself",
                                     fillcolor=color, opacity=0.2, line={"width": 0}, hoverinfo="skip",
                                     showlegend=False, name=f"{name} ± std"))
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=name, line={"color": color},
                                 customdata=[int(r.get("n", 1)) for r in points],
                                 hovertemplate="%{x} labels a class: macro-F1 %{y:.3f} (%{customdata} seeds)"))
    if reference is not None:
        fig.add_hline(y=float(reference[1]), line_dash="dash", line_color="grey",
                      annotation_text=f"{reference[0]}: {float(reference[1]):.3f}", annotation_position="bottom right")
    sizes = sorted({int(r["size"]) for r in rows})
    fig.update_xaxes(type="log", tickvals=sizes, ticktext=[str(k) for k in sizes], title="labels a class")
    fig.update_layout(title="How many labels do I need?", yaxis_title="test macro-F1", yaxis_range=[0, 1.02],
                      height=340, margin={"t": 40, "b": 40}, legend={"orientation": "h", "y": -0.25})
    return fig
