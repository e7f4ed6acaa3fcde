"""Multi-label charts: tag frequency, tags per row, tag co-occurrence, per-tag scores and threshold curves.

Pure functions: data in, plotly Figure out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go


def tag_frequency(counts: Mapping[str, int], rows: int) -> go.Figure:
    """Rows per tag, most frequent first, with each tag's share of the rows."""
    tags, n = list(counts), [int(v) for v in counts.values()]
    share = [f"{v / max(rows, 1):.0%}" for v in n]
    fig = go.Figure(go.Bar(x=tags, y=n, text=share, textposition="auto", name="rows"))
    fig.update_layout(title=f"Tag frequency ({len(tags)} tags, {rows:,} rows)", xaxis_title="tag",
                      yaxis_title="rows with the tag")
    return fig


def tags_per_row(histogram: Mapping[int, int]) -> go.Figure:
    """How many rows carry 0, 1, 2, ... tags (rows without a tag are valid and shown)."""
    keys = sorted(int(k) for k in histogram)
    fig = go.Figure(go.Bar(x=keys, y=[int(histogram[k]) for k in keys], name="rows"))
    fig.update_layout(title="Tags per row", xaxis_title="tags on the row", yaxis_title="rows", xaxis_dtick=1)
    return fig


def cooccurrence(tags: Sequence[str], counts: Sequence[Sequence[int]]) -> go.Figure:
    """Rows holding both tags; the diagonal (a tag with itself) is the tag's own count."""
    z = np.asarray(counts, dtype=float)
    fig = go.Figure(go.Heatmap(z=z, x=list(tags), y=list(tags), colorscale="Blues",
                               hovertemplate="%{y} + %{x}: %{z:.0f} rows<extra></extra>"))
    fig.update_layout(title="Tag co-occurrence (rows with both)", yaxis_autorange="reversed")
    return fig


def per_tag_scores(report: Mapping[str, Mapping[str, float]]) -> go.Figure:
    """Precision, recall and F1 per tag (bars), support on the hover and in the axis labels."""
    tags = list(report)
    fig = go.Figure()
    for metric in ("precision", "recall", "f1"):
        fig.add_trace(go.Bar(name=metric, x=[f"{t} ({int(report[t]['support'])})" for t in tags],
                             y=[report[t][metric] for t in tags]))
    fig.update_layout(title="Per tag (support in brackets)", barmode="group", yaxis_range=[0, 1],
                      yaxis_title="score", xaxis_title="tag")
    return fig


def threshold_curve(tag: str, thresholds: Sequence[float], f1: Sequence[float], chosen: float) -> go.Figure:
    """Validation F1 of one tag against its decision threshold, the chosen threshold marked."""
    fig = go.Figure(go.Scatter(x=list(thresholds), y=list(f1), mode="lines", name="F1"))
    fig.add_vline(x=chosen, line_dash="dash", annotation_text=f"chosen {chosen:.2f}")
    fig.update_layout(title=f"'{tag}': validation F1 by threshold", xaxis_title="threshold", yaxis_title="F1",
                      xaxis_range=[0, 1], yaxis_range=[0, 1])
    return fig
