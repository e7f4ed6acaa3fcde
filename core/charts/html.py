"""Tables and plotly figures as HTML fragments for the self-contained reports (core.export.report and the tasks'
own report bodies, e.g. core.multilabel.report). Every value goes through `esc`; figures carry no plotly.js (the
page embeds it once)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go


def esc(value: Any) -> str:
    """Text as HTML: every user-supplied value passes here before it reaches the page."""
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape("" if value is None else str(value), quote=True)


def html_table(frame: pd.DataFrame, highlight: Sequence[str] = ()) -> str:
    marks = {c: ' class="diff"' if c in highlight else "" for c in frame.columns}
    head = "".join(f"<th{marks[c]}>{esc(c)}</th>" for c in frame.columns)
    body = []
    for _, row in frame.iterrows():
        cells = "".join(f"<td{marks[c]}>{esc(_cell(row[c]))}</td>" for c in frame.columns)
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _cell(value: Any) -> Any:
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):
        pass
    return value


def dict_table(data: dict[str, Any]) -> str:
    return html_table(pd.DataFrame({"setting": list(data), "value": [cell_repr(v) for v in data.values()]}))


def cell_repr(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, bool)) or value is None else repr(value)


def html_figure(fig: go.Figure) -> str:
    return f'<div class="chart">{fig.to_html(full_html=False, include_plotlyjs=False, default_height=420)}</div>'
