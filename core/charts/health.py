"""The Data health tab's chart: what an audit found, at a glance. A pure function of the audit's summary."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import plotly.graph_objects as go

# Summary key -> what the chart calls it, in the order a reviewer should look.
FINDINGS = {
    "label_issues": "likely label errors",
    "possible_label_issues": "possible label errors",
    "near_duplicates": "near-duplicates",
    "leakage": "leaking across splits",
    "conflicting_duplicates": "duplicates with another label",
    "empty": "empty-ish texts",
    "long": "very long texts",
    "other_script": "another script",
    "small_classes": "classes too small",
}


def audit_counts(summary: Mapping[str, Any]) -> go.Figure:
    """Horizontal bars, one per kind of finding, with the share of all rows in the hover."""
    rows = max(int(summary.get("rows") or 0), 1)
    names = list(FINDINGS.values())
    counts = [int(summary.get(key) or 0) for key in FINDINGS]
    share = [c / rows if key != "small_classes" else None for key, c in zip(FINDINGS, counts, strict=True)]
    fig = go.Figure(go.Bar(x=counts, y=names, orientation="h", text=counts, textposition="auto",
                           customdata=[f"{s:.1%} of rows" if s is not None else "classes" for s in share],
                           hovertemplate="%{y}: %{x} (%{customdata})<extra></extra>",
                           marker_color=[_colour(key) for key in FINDINGS]))
    fig.update_layout(title=f"Data health: {rows:,} rows audited", template="plotly_white", xaxis_title="rows",
                      yaxis=dict(autorange="reversed"), margin=dict(l=40, r=20, t=50, b=40), height=340)
    return fig


def _colour(key: str) -> str:
    # red: act on these; grey: look if there is time (cleanlab doubts them, less surely); blue: the rest
    return "#d62728" if key in ("label_issues", "leakage") else "#9e9e9e" if key == "possible_label_issues" \
        else "#1f77b4"


def tag_issue_counts(issues_per_tag: Mapping[str, Mapping[str, int]]) -> go.Figure:
    """A multi-label audit's flags per tag: stacked horizontal bars of the rows likely missing each tag (red) and
    the rows likely tagged with it wrongly (orange), the tags with most flags first."""
    tags = sorted(issues_per_tag, key=lambda t: (-sum(issues_per_tag[t].values()), t))
    fig = go.Figure()
    for kind, name, colour in (("missing", "tag likely missing", "#d62728"), ("wrong", "tag likely wrong", "#ff7f0e")):
        counts = [int(issues_per_tag[t].get(kind) or 0) for t in tags]
        fig.add_trace(go.Bar(x=counts, y=tags, orientation="h", name=name, marker_color=colour,
                             hovertemplate=f"%{{y}}: %{{x}} rows with the {name}<extra></extra>"))
    fig.update_layout(title="Likely tag errors per tag", template="plotly_white", barmode="stack", xaxis_title="rows",
                      yaxis=dict(autorange="reversed"), margin=dict(l=40, r=20, t=50, b=40),
                      height=max(260, 60 + 28 * len(tags)), legend=dict(orientation="h", y=-0.2))
    return fig
