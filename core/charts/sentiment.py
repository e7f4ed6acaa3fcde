"""Plotly figures for the Sentiment demo: class probabilities of one text, label distribution of a batch.

Pure functions of numbers; sentiment-like label names get the colours people expect.
"""

from __future__ import annotations

from collections.abc import Mapping

import plotly.graph_objects as go

SENTIMENT_COLOURS = {"positive": "#16a34a", "pos": "#16a34a", "negative": "#dc2626", "neg": "#dc2626",
                     "neutral": "#64748b", "mixed": "#d97706"}
PALETTE = ("#2563eb", "#7c3aed", "#0891b2", "#db2777", "#ca8a04", "#4b5563")


def label_colours(labels: list[str]) -> list[str]:
    """A colour per label: green/red/grey for sentiment names, a stable palette otherwise."""
    return [SENTIMENT_COLOURS.get(str(label).strip().lower(), PALETTE[i % len(PALETTE)])
            for i, label in enumerate(labels)]


def probability_bars(probabilities: Mapping[str, float], predicted: str | None = None) -> go.Figure:
    """One horizontal bar per class (0-100 %), the predicted class drawn solid and the others faded."""
    labels = list(probabilities)
    values = [float(probabilities[label]) for label in labels]
    colours = label_colours(labels)
    opacity = [1.0 if predicted is None or label == predicted else 0.45 for label in labels]
    fig = go.Figure(go.Bar(
        x=values, y=labels, orientation="h", marker=dict(color=colours, opacity=opacity),
        text=[f"{v:.0%}" for v in values], textposition="outside", cliponaxis=False,
        hovertemplate="%{y}: %{x:.1%}<extra></extra>"))
    fig.update_layout(template="plotly_white", height=70 + 42 * len(labels), margin=dict(l=10, r=40, t=10, b=30),
                      xaxis=dict(range=[0, 1.08], tickformat=".0%", title=None),
                      yaxis=dict(autorange="reversed", title=None), showlegend=False)
    return fig


def label_distribution(counts: Mapping[str, int]) -> go.Figure:
    """How many rows got each label, with the share of the total on each bar."""
    labels = list(counts)
    values = [int(counts[label]) for label in labels]
    total = sum(values) or 1
    fig = go.Figure(go.Bar(
        x=labels, y=values, marker=dict(color=label_colours(labels)),
        text=[f"{v:,} ({v / total:.0%})" for v in values], textposition="outside", cliponaxis=False,
        hovertemplate="%{x}: %{y:,} rows<extra></extra>"))
    fig.update_layout(template="plotly_white", height=320, margin=dict(l=10, r=10, t=30, b=30),
                      yaxis=dict(title="rows", rangemode="tozero"), xaxis=dict(title=None), showlegend=False)
    return fig
