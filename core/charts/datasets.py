"""Dataset profile charts: class balance, text lengths, ratings and interaction long tails.

Pure functions: data in, plotly Figure out (tested by looking at figure data).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.charts.axes import readable_log_axis


def class_balance(classes: Mapping[str, int], imbalance_ratio: float | None = None) -> go.Figure:
    """Rows per class, largest first; the title warns when the largest class dwarfs the smallest."""
    ordered = sorted(classes.items(), key=lambda kv: -kv[1])
    labels, counts = [str(k) for k, _ in ordered], [int(v) for _, v in ordered]
    ratio = imbalance_ratio if imbalance_ratio is not None else (max(counts) / min(counts) if counts else 1.0)
    title = "Class balance" + (f" — imbalanced ({ratio:.1f}x)" if ratio >= 3 else "")
    fig = go.Figure(go.Bar(x=labels, y=counts, text=counts, textposition="auto", name="rows"))
    fig.update_layout(title=title, xaxis_title="label", yaxis_title="rows")
    return fig


def text_length_histogram(chars: Sequence[int], tokens: Sequence[int] | None = None,
                          max_length: int | None = None) -> go.Figure:
    """Histogram of text lengths in characters and, when given, tokens of the default tokenizer."""
    cols = 2 if tokens is not None else 1
    titles = ["characters", "tokens (default tokenizer, sample)"][:cols]
    fig = make_subplots(rows=1, cols=cols, subplot_titles=titles)
    fig.add_trace(go.Histogram(x=np.asarray(chars), name="characters", nbinsx=50), row=1, col=1)
    if tokens is not None:
        fig.add_trace(go.Histogram(x=np.asarray(tokens), name="tokens", nbinsx=50), row=1, col=2)
        if max_length:
            fig.add_vline(x=max_length, line_dash="dash", row=1, col=2, annotation_text=f"max_length {max_length}")
    fig.update_layout(title="Text length", showlegend=False, yaxis_title="texts")
    return fig


def rating_histogram(ratings: Sequence[float]) -> go.Figure:
    values, counts = np.unique(np.asarray(ratings, dtype=float), return_counts=True)
    if len(values) > 20:  # continuous ratings: bin them
        fig = go.Figure(go.Histogram(x=np.asarray(ratings, dtype=float), nbinsx=20, name="ratings"))
    else:
        fig = go.Figure(go.Bar(x=values, y=counts, name="ratings"))
    fig.update_layout(title="Ratings", xaxis_title="rating", yaxis_title="interactions")
    return fig


def long_tail(counts: Sequence[int], entity: str = "user") -> go.Figure:
    """Interactions per user (or item), sorted from most to least active, on a log scale."""
    ordered = np.sort(np.asarray(counts, dtype=int))[::-1]
    fig = go.Figure(go.Scatter(x=np.arange(1, ordered.size + 1), y=ordered, mode="lines", name=entity,
                               fill="tozeroy"))
    fig.update_layout(title=f"Interactions per {entity} (long tail)", xaxis_title=f"{entity} rank",
                      yaxis_title="interactions")
    return readable_log_axis(fig, ordered)


def split_sizes(splits: Mapping[str, int]) -> go.Figure:
    """Rows per split as one stacked horizontal bar, each part labelled with its count and share.

    A figure, not a metric tile: "24,000 / 3,000 / 3,000" did not fit a quarter-width tile and was cut off.
    """
    total = sum(int(v) for v in splits.values()) or 1
    fig = go.Figure()
    for name, count in splits.items():
        count = int(count)
        fig.add_trace(go.Bar(y=["rows"], x=[count], orientation="h", name=name, text=[f"{name} {count:,} "
                                                                                      f"({count / total:.0%})"],
                             textposition="inside", insidetextanchor="middle", hovertemplate=f"{name}: %{{x:,}}"))
    fig.update_layout(title="Splits", barmode="stack", height=170, showlegend=True, yaxis_visible=False,
                      xaxis_title="rows", margin={"l": 10, "r": 10, "t": 40, "b": 40},
                      legend={"orientation": "h", "y": -0.6})
    return fig
