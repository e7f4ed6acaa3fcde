"""Streamlit drawing for the Image classifier demo: the served model (cached per process), one image's top-k
bars and occlusion heatmap, and a ZIP scored into a downloadable CSV."""

from __future__ import annotations

import io
from typing import Any

import streamlit as st

from core.charts.sentiment import probability_bars
from core.errors import ProtolabError
from core.images.demo import overlay_heatmap, score_zip, top_k
from core.images.store import ImageError, open_image
from db import read_scope


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def classifier(run_id: int, version: str) -> Any:
    # One model per process, shared by every session; `version` stops a reused run id serving stale files.
    from core.images.serving import load_run_classifier  # imports torch: only once a demo is opened

    with read_scope() as s:
        return load_run_classifier(s, run_id)


def served_model(run_id: int, version: str) -> Any:
    """The run's classifier, or an error on the page and nothing more drawn."""
    try:
        return classifier(run_id, version)
    except ProtolabError as exc:
        st.error(f"This model cannot be served: {exc}")
        st.stop()


def show_prediction(model: Any, data: bytes, name: str, key: str) -> None:
    """One picture: its label, the top-k bars, and where the model looked (occlusion)."""
    try:
        image = open_image(io.BytesIO(data), name=name)
    except ImageError as exc:
        st.warning(str(exc))
        return
    pred = model.predict([image])[0]
    left, right = st.columns([2, 3])
    left.image(image, caption=name, width="stretch")
    left.metric("Prediction", pred.label, f"{pred.confidence:.0%} confident", delta_color="off", delta_arrow="off")
    if pred.low_confidence:
        left.warning("Low confidence: the model is unsure, so treat this label as a guess.", icon="🤔")
    right.plotly_chart(probability_bars(top_k(pred.probabilities), pred.label), key=f"{key}_proba_chart")
    st.subheader("Where the model looked")
    with st.spinner("Covering each part of the picture in turn…"):
        heat = model.occlusion(image, pred.label)
    st.image(overlay_heatmap(image, heat), width=320, caption=f"red: covering this part lowers '{pred.label}' most")


def score_archive(model: Any) -> None:
    """Upload a ZIP of images, score each and download a CSV."""
    upload = st.file_uploader("ZIP of images", key="zip_upload", type=["zip"])
    if upload is None:
        return
    if st.button("Score the images", key="score_zip", type="primary"):
        try:
            with st.spinner("Scoring…"):
                st.session_state["zip_scored"] = (upload.file_id, score_zip(model, upload.getvalue(), upload.name))
        except (ProtolabError, ValueError) as exc:
            st.warning(str(exc))
    done = st.session_state.get("zip_scored")
    if done and done[0] == upload.file_id:
        frame = done[1]
        st.caption(f"{frame['label'].notna().sum():,} images scored, {frame['error'].notna().sum():,} unreadable")
        st.dataframe(frame.head(50), hide_index=True)
        st.download_button("Download CSV", frame.to_csv(index=False).encode(), "scored_images.csv", "text/csv",
                           key="zip_download")
