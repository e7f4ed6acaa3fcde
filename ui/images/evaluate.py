"""The Evaluate page of an image run: everything a text classification run shows, then the gallery of its
mistakes as thumbnails (the confusion cell clicked, or the labels picked, choose which)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from core.evaluation import comparison as compare
from core.evaluation import predictions
from core.images.gallery import mistakes
from db import read_scope
from ui.evaluate_views import ANY, classification_view
from ui.images.datasets import THUMBNAIL, thumbnails

GALLERY_COLUMNS = 6


def images_run(run: Any, split: str) -> None:
    """A text run's views without the label curve (it trains SetFit and Transformers on texts), then the gallery."""
    with read_scope() as s:
        baseline = compare.baseline_run(s, run)
    classification_view(run, split, baseline)
    gallery(run, split)


def gallery(run: Any, page_split: str) -> None:
    """Thumbnails of the mistakes the error analysis lists (same split and cell: its widgets' keys)."""
    split = st.session_state.get("err_split") or page_split
    true, pred = st.session_state.get("err_true", ANY), st.session_state.get("err_pred", ANY)
    st.subheader("Mistakes as pictures")
    try:
        preds = predictions.load_predictions(run.id, split)  # with the probabilities cached_predictions drops
    except predictions.ArtifactsMissing as exc:
        st.info(f"No {split} predictions to show: {exc}")
        return
    labels = list((run.metrics or {}).get("labels") or sorted(set(preds["label"]) | set(preds["pred"])))
    found = mistakes(preds, labels, None if true == ANY else true, None if pred == ANY else pred)
    cell = f"true {true} → predicted {pred}" if ANY not in (true, pred) else "every confusion cell"
    if not found:
        st.caption(f"No {split} mistakes in {cell}.")
        return
    st.caption(f"The {len(found)} most confident {split} mistakes in {cell}: predicted label and its "
               "probability, then the true label's.")
    images = thumbnails(run.dataset_id, tuple(m.key for m in found))
    columns = st.columns(GALLERY_COLUMNS)
    for i, (mistake, image) in enumerate(zip(found, images, strict=True)):
        columns[i % GALLERY_COLUMNS].image(image, caption=mistake.text(), width=THUMBNAIL[0])
