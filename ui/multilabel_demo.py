"""The tagging demo's drawing: a text's tags as chips (probability and threshold on each), every tag's bar, and a
file scored with one column per tag. The page picks the run; scoring lives in core.multilabel.serving."""

from __future__ import annotations

import html

import pandas as pd
import streamlit as st

from core.data import datasets as ds
from core.multilabel.explain import against, explain_tags
from core.multilabel.serving import Tagger, load_run_tagger, tag_frame
from core.text.explain import Explanation, render_explanation_html

CHIP = ("<span style='display:inline-block;margin:2px 6px 2px 0;padding:4px 10px;border-radius:14px;"
        "background:{bg};color:{fg};border:1px solid #1f77b4'>{text}</span>")


@st.cache_resource(show_spinner="Loading the model…", max_entries=3)
def tagger(run_id: int) -> Tagger:
    return load_run_tagger(run_id)


def chips(tagger_: Tagger, text: str) -> None:
    """The predicted tags as chips; the tags just under their threshold greyed out, so "almost" is visible."""
    answer = tagger_.tag([text])[0]
    ranked = sorted(answer.probabilities.items(), key=lambda kv: -kv[1])
    shown = [CHIP.format(bg="#1f77b4", fg="white",
                         text=html.escape(f"{t} {answer.probabilities[t]:.0%} (≥ {answer.thresholds[t]:.2f})"))
             for t in answer.labels]
    near = [CHIP.format(bg="white", fg="#555", text=html.escape(f"{t} {p:.0%} (needs {answer.thresholds[t]:.2f})"))
            for t, p in ranked if t not in answer.labels and p >= answer.thresholds[t] * 0.6][:3]
    if shown:
        st.markdown("".join(shown), unsafe_allow_html=True)
    else:
        st.info("No tag reaches its threshold for this text (an empty tag set is a valid answer).")
    if near:
        st.caption("Close, but under their threshold:")
        st.markdown("".join(near), unsafe_allow_html=True)
    st.dataframe(pd.DataFrame([{"tag": t, "probability": round(p, 4), "threshold": answer.thresholds[t],
                                "tagged": t in answer.labels} for t, p in ranked]), hide_index=True,
                 key="tag_table")


TOWARDS, AWAY = "#1f77b4", "#d62728"  # the chips' blue for words that call for the tag; red for words against it


@st.cache_data(show_spinner="Weighing each word…", max_entries=32)
def explanations(run_id: int, text: str) -> dict[str, Explanation]:
    return explain_tags(tagger(run_id), text)


def why(run_id: int, text: str) -> None:
    """Which words call for a tag and which speak against it, one tag at a time (the likeliest first)."""
    found = explanations(run_id, text)
    ranked = sorted(found, key=lambda t: -found[t].confidence)
    tag = st.selectbox("Why this tag?", ranked, key="tag_why",
                       format_func=lambda t: f"{t} ({found[t].confidence:.0%})")
    st.markdown(render_explanation_html(found[tag], {tag: TOWARDS, against(tag): AWAY}), unsafe_allow_html=True)
    st.caption(f"Blue words make '{tag}' more likely, red words less; the darker, the more its odds change when "
               "the word is left out.")


def score_file(tagger_: Tagger) -> None:
    upload = st.file_uploader("Score a file (CSV, Excel, JSON Lines): one text per row", key="tag_upload")
    if upload is None:
        return
    frame = ds.read_table(upload.getvalue(), upload.name).frame
    columns = [str(c) for c in frame.columns]
    column = st.selectbox("Text column", columns, key="tag_text_col")
    scored = tag_frame(tagger_, frame, column)
    st.dataframe(scored.head(50), key="tag_scored")
    st.download_button("Download the scored CSV (one column per tag)", scored.to_csv(index=False).encode(),
                       file_name="tagged.csv", key="tag_download")
