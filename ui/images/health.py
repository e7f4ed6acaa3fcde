"""The Data health tab of an image dataset (the images task's `audit_form` and `health_view`): likely label errors
and near-duplicate pairs as thumbnails, and the suggestions the user accepts saved as a new dataset version.

The audit itself is core.health.images; relabels and exclusions go through the text audit's changes and versions.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core.health import jobs as health_jobs
from core.health.audit import CERTAINTY
from core.health.duplicates import SIMILARITY
from core.health.images import IMAGE_DUP_COLUMNS, IMAGE_ISSUE_COLUMNS
from core.images import TASK
from core.tasks import get_task
from ui.data_health import (
    CV,
    EDITOR_ROWS,
    audit_buttons,
    certainty_slider,
    headline_metrics,
    save_version,
    with_duplicates,
)
from ui.evaluate_views import cached_previews

PICTURE, OTHER_PICTURE = "picture", "other picture"


def image_audit_form(dataset_id: int, sources: list[str], labels: list[str]) -> None:
    st.caption("Every image is embedded once with the linear probe's frozen EfficientNet-Lite0: near-duplicates "
               "are pairs of close embeddings, label errors the images a cross-validated logistic regression on "
               "them doubts (cleanlab).")
    similarity = st.select_slider(
        "Two images are near-duplicates from this cosine similarity", key="health_similarity",
        options=sorted({0.9, SIMILARITY, 0.97, 0.98, 0.99}), value=SIMILARITY,
        help="Lower lists more pairs: retouched copies first, then merely alike pictures. On 1,797 handwritten "
             "digits, 0.95 found 19 of 20 brightened copies planted and 0.97 found 14 (BENCHMARKS.md).")
    audit_buttons(dataset_id, {"source": CV, "similarity": similarity, "certainty": certainty_slider()})


def previews(dataset_id: int, keys: pd.Series) -> list[str | None]:
    """Thumbnails (data: URIs) of the images named by `keys`, as the task's version editor shows them."""
    return cached_previews(get_task(TASK).versions.preview, dataset_id, tuple(keys.astype(str)))


def image_findings_view(dataset_id: int, audit: dict[str, Any]) -> None:
    summary, findings = audit["summary"], audit["findings"]
    headline_metrics(summary, "Likely label errors",
                     f"Images the held-out models are at least {summary.get('certainty', CERTAINTY):.0%} sure are "
                     f"labelled wrong; {summary.get('possible_label_issues', 0):,} more are possible errors.")
    st.caption(f"Audit #{audit['id']} · {summary.get('rows', 0):,} images embedded at "
               f"{summary.get('image_size', 0)} px · cleanlab on a cross-validated logistic regression · "
               f"{summary.get('seconds', 0):.1f} s")
    for small in findings.get("small_classes", []):
        st.warning(f"Class '{small['label']}' is too small for the split: {small['reason']}.")
    changes = label_marks(dataset_id, audit)
    duplicates = duplicate_pairs(dataset_id, audit)
    save_version(dataset_id, with_duplicates(changes, duplicates))


def label_marks(dataset_id: int, audit: dict[str, Any]) -> list[dict[str, Any]]:
    """The suspicious images with their given and suggested labels; the relabels and exclusions marked."""
    issues = pd.DataFrame(audit["findings"].get("label_issues", []), columns=IMAGE_ISSUE_COLUMNS)
    issues["likely"] = issues["likely"].astype(bool)
    labels = sorted(set(issues["label"]) | set(issues["suggested"]))
    st.subheader("Suspicious labels")
    left, right = st.columns(2)
    possible = int((~issues["likely"]).sum())
    with_possible = possible > 0 and left.toggle(f"Also show the {possible:,} possible label errors",
                                                 key="health_possible")
    accept = right.toggle("Accept every suggested label shown", key="health_accept_all",
                          help="Untick a row's 'relabel to' to keep its label.")
    shown = (issues if with_possible else issues[issues["likely"]]).head(EDITOR_ROWS)
    marks = shown.assign(exclude=False, relabel_to=shown["suggested"] if accept else None)
    marks.insert(0, PICTURE, previews(dataset_id, marks["image"]))
    st.caption(f"{len(shown):,} images, most suspicious first (confidence: how sure the held-out models are that "
               "the given label is wrong); each can be relabelled (to the suggestion or by hand) or excluded.")
    edited = st.data_editor(marks, key=f"health_image_marks_{audit['id']}_{with_possible}_{accept}",
                            hide_index=True, width="stretch",
                            column_order=(PICTURE, "exclude", "relabel_to", "label", "suggested", "score", "likely",
                                          "split", "text"),
                            disabled=[c for c in marks.columns if c not in ("exclude", "relabel_to")],
                            column_config={
                                PICTURE: st.column_config.ImageColumn(PICTURE),
                                "text": st.column_config.TextColumn("file"),
                                "score": st.column_config.ProgressColumn("confidence", min_value=0.0,
                                                                         max_value=1.0, format="%.3f"),
                                "relabel_to": st.column_config.SelectboxColumn("relabel to", options=labels)})
    return health_jobs.marks_to_changes(edited)


def duplicate_pairs(dataset_id: int, audit: dict[str, Any]) -> list[dict[str, Any]]:
    """Each near-duplicate beside the image it copies (kept), with both labels and whether the pair leaks."""
    found = audit["findings"].get("duplicates", [])
    pairs = pd.DataFrame(found, columns=IMAGE_DUP_COLUMNS)
    st.subheader(f"Near-duplicate images ({len(pairs)})")
    if pairs.empty:
        st.caption(f"No two images are closer than a cosine of {audit['summary'].get('similarity', 0):.3f}.")
        return found
    pairs.insert(0, PICTURE, previews(dataset_id, pairs["image"]))
    pairs.insert(1, OTHER_PICTURE, previews(dataset_id, pairs["duplicate_image"]))
    st.caption("Each copy beside the image kept (the one in the earliest split); a pair across splits leaks: the "
               "model is tested on what it trained on.")
    st.dataframe(pairs, hide_index=True, key="health_image_duplicates",
                 column_order=(PICTURE, OTHER_PICTURE, "similarity", "leak", "exact", "label", "duplicate_label",
                               "split", "text", "duplicate_text"),
                 column_config={PICTURE: st.column_config.ImageColumn("copy"),
                                OTHER_PICTURE: st.column_config.ImageColumn("kept"),
                                "text": st.column_config.TextColumn("copy's file"),
                                "duplicate_text": st.column_config.TextColumn("kept file"),
                                "duplicate_label": st.column_config.TextColumn("kept label")})
    return found
