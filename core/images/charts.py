"""Image dataset charts: image sizes and aspect ratios (the class balance is core.charts.datasets').

Pure functions: data in, plotly Figure out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go


def size_scatter(widths: Sequence[int], heights: Sequence[int], labels: Sequence[str] | None = None) -> go.Figure:
    """Width against height of each image (one colour per class when labels are given): odd sizes stand out."""
    w, h = np.asarray(widths, dtype=int), np.asarray(heights, dtype=int)
    fig = go.Figure()
    groups = sorted(set(labels)) if labels is not None and len(labels) else [None]
    for group in groups:
        mask = np.ones(w.size, dtype=bool) if group is None else np.asarray(labels) == group
        fig.add_trace(go.Scattergl(x=w[mask], y=h[mask], mode="markers", name=group or "images",
                                   marker={"size": 5, "opacity": 0.5},
                                   hovertemplate="%{x} × %{y} px<extra>" + (group or "") + "</extra>"))
    fig.update_layout(title="Image sizes", xaxis_title="width (px)", yaxis_title="height (px)",
                      showlegend=len(groups) > 1)
    return fig


def aspect_histogram(aspects: Sequence[float]) -> go.Figure:
    """Width / height of the images: 1 is square, above 1 landscape; a model resizes every one to a square."""
    values = np.asarray(aspects, dtype=float)
    fig = go.Figure(go.Histogram(x=values, nbinsx=40, name="images"))
    fig.add_vline(x=1.0, line_dash="dash", annotation_text="square")
    fig.update_layout(title="Aspect ratio (width / height)", xaxis_title="aspect ratio", yaxis_title="images",
                      showlegend=False)
    return fig
