"""The Data health tab's view of a multi-label audit (the multi-label task's `health_view`): likely tag errors per
tag as a chart, the flagged rows filtered by tag with the tags likely missing and wrong, and the suggested tag sets
the user accepts saved as a new dataset version. The audit itself is core.multilabel.audit."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core.charts.health import tag_issue_counts
from core.health.audit import CERTAINTY
from core.multilabel.audit import suggested_changes
from core.multilabel.labels import decode
from ui.data_health import EDITOR_ROWS, headline_metrics, other_findings, save_version, with_duplicates

ALL_TAGS = "every tag"
COLUMNS = ["row", "row_id", "split", "text", "label", "suggested", "missing", "wrong", "score", "likely"]


def tag_findings_view(dataset_id: int, audit: dict[str, Any]) -> None:
    summary, findings = audit["summary"], audit["findings"]
    headline_metrics(summary, "Likely tag errors",
                     f"Rows with a tag the held-out models are at least {summary.get('certainty', CERTAINTY):.0%} "
                     f"sure is missing or wrong; {summary.get('possible_label_issues', 0):,} more are possible.")
    per_tag = summary.get("issues_per_tag") or {}
    if per_tag:
        st.plotly_chart(tag_issue_counts(per_tag), key="health_tag_chart")
    st.caption(f"Audit #{audit['id']} · {summary.get('rows', 0):,} rows, {len(per_tag)} tags · cleanlab's "
               f"multi-label filter on cross-validated one-vs-rest models · {summary.get('seconds', 0):.1f} s")
    for small in findings.get("small_classes", []):
        st.warning(f"Tag '{small['label']}' is too rare for the split: {small['reason']}.")
    tag_marks(dataset_id, audit, sorted(per_tag))
    other_findings(findings)


def tag_marks(dataset_id: int, audit: dict[str, Any], tags: list[str]) -> None:
    issues = pd.DataFrame(audit["findings"].get("label_issues", []), columns=COLUMNS)
    issues["likely"] = issues["likely"].astype(bool)
    st.subheader("Suspicious tag sets")
    left, right = st.columns(2)
    tag = left.selectbox("Tag", [ALL_TAGS, *tags], key="health_tag",
                         help="Only the rows where this tag is likely missing or likely wrong")
    possible = int((~issues["likely"]).sum())
    with_possible = possible > 0 and right.toggle(f"Also show the {possible:,} possible tag errors",
                                                  key="health_possible")
    shown = issues if with_possible else issues[issues["likely"]]
    if tag != ALL_TAGS:
        shown = shown[[tag in m or tag in w for m, w in zip(shown["missing"], shown["wrong"], strict=True)]]
    accept = st.toggle("Accept every suggested tag set shown", key="health_accept_all",
                       help="The set the held-out models give each row: its likely missing tags added, its likely "
                            "wrong ones removed. Untick a row to keep its tags.")
    marks = shown.head(EDITOR_ROWS).assign(tags=[decode(v) for v in shown["label"].head(EDITOR_ROWS)],
                                           accept=accept, exclude=False)
    st.caption(f"{len(shown):,} rows{f' with {tag} likely missing or wrong' if tag != ALL_TAGS else ''}, most "
               f"suspicious first (score 1 = surely wrong); the first {min(len(shown), EDITOR_ROWS)} can be given "
               "their suggested set or excluded.")
    edited = st.data_editor(marks, key=f"health_tag_marks_{audit['id']}_{tag}_{with_possible}_{accept}",
                            hide_index=True, width="stretch",
                            column_order=("row", "accept", "exclude", "tags", "missing", "wrong", "suggested",
                                          "score", "likely", "split", "text"),
                            disabled=[c for c in marks.columns if c not in ("accept", "exclude")],
                            column_config={
                                "accept": st.column_config.CheckboxColumn("give suggested set"),
                                "tags": st.column_config.ListColumn("tags now"),
                                "missing": st.column_config.ListColumn("likely missing"),
                                "wrong": st.column_config.ListColumn("likely wrong"),
                                "suggested": st.column_config.ListColumn("suggested set"),
                                "score": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0,
                                                                         format="%.3f")})
    save_version(dataset_id, with_duplicates(marks_to_tag_changes(edited), audit["findings"].get("duplicates", [])))


def marks_to_tag_changes(marks: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of the editor marked `exclude`, or `accept`ed, as dataset changes (a relabel sets the whole set)."""
    records = marks.to_dict("records")
    excluded = [{"action": "exclude", "row": int(r["row"]), "split": r["split"], "text": r["text"],
                 "label": r["label"], "row_id": int(r["row_id"])} for r in records if bool(r["exclude"])]
    accepted = [r for r in records if bool(r["accept"]) and not bool(r["exclude"])]
    return excluded + suggested_changes(accepted)
