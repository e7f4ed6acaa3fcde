"""Readable axes shared by the chart modules: log-scale ticks labelled with whole numbers.

Plotly's default log ticks label the minor steps with their first digit only ("2 3 … 100 2"), which
reads as nonsense; these put labels at 1-2-5 steps spelled out in full ("1", "20", "5k").
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go

MAX_TICKS = 12


def log_ticks(values: Sequence[float]) -> tuple[list[float], list[str]]:
    """Tick positions at 1-2-5 × 10^k covering the positive `values`, and their labels ("500", "2k", "1M")."""
    positive = [float(v) for v in values if v and v > 0]
    if not positive:
        return [1.0], ["1"]
    lo, hi = min(positive), max(positive)
    steps = (1, 2, 5)
    ticks = [m * 10.0**e for e in range(math.floor(math.log10(lo)), math.floor(math.log10(hi)) + 1) for m in steps]
    ticks = [t for t in ticks if lo / 2.0001 <= t <= hi * 2] or [10.0 ** math.floor(math.log10(lo))]
    if len(ticks) > MAX_TICKS:  # many decades: powers of ten only
        ticks = [t for t in ticks if math.log10(t).is_integer()]
    return ticks, [short_number(t) for t in ticks]


def short_number(value: float) -> str:
    """12 -> "12", 2000 -> "2k", 1500000 -> "1.5M", 0.5 -> "0.5"."""
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:g}{suffix}"
    return f"{value:g}"


def readable_log_axis(fig: go.Figure, values: Sequence[float], axis: str = "y") -> go.Figure:
    """Make `axis` of `fig` a log axis whose ticks are spelled-out numbers covering `values`."""
    ticks, labels = log_ticks(values)
    update = fig.update_yaxes if axis == "y" else fig.update_xaxes
    update(type="log", tickmode="array", tickvals=ticks, ticktext=labels)
    return fig
