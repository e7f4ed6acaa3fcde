"""The Sentiment demo's two ways in: one text with its label, probabilities and the words behind them, or a whole
file scored and downloadable. The models are loaded once per process and shared by every session.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from core.charts.sentiment import label_colours, label_distribution, probability_bars
from core.data.spreadsheet import formula_like_cells
from core.errors import ProtolabError
from core.text.batch_scoring import read_upload, results_csv, scorable_columns, score_frame
from core.text.explain import explain, legend, render_explanation_html
from core.text.serving import TextClassifier, clean_text, load_classifier


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def classifier(run_id: int, version: str) -> TextClassifier:
    # One model per process, shared by every session; `version` stops a reused run id serving stale files.
    return load_classifier(run_id)


@st.cache_data(show_spinner=False, max_entries=256)
def explanation(run_id: int, version: str, text: str) -> Any:
    return explain(classifier(run_id, version), text)


@st.cache_data(show_spinner=False, max_entries=8)
def uploaded_table(data: bytes, name: str) -> Any:
    return read_upload(data, name)


def show_prediction(run_id: int, version: str, model: TextClassifier, text: str) -> None:
    """The label of one text, how sure the model is, and the words that made it say so."""
    try:
        cleaned = clean_text(text)
    except ProtolabError as exc:
        st.warning(str(exc))
    else:
        pred = model.predict([cleaned])[0]
        left, right = st.columns([2, 3])
        left.metric("Prediction", pred.label, f"{pred.confidence:.0%} confident", delta_color="off",
                    delta_arrow="off")
        if pred.low_confidence:
            left.warning("Low confidence: the model is unsure, so treat this label as a guess.", icon="🤔")
        if pred.truncated:
            left.info(f"This text is longer than the model reads ({model.max_length} tokens): only its "
                      "beginning was scored.", icon="✂️")
        right.plotly_chart(probability_bars(pred.probabilities, pred.label), key="proba_chart")
        st.subheader("Why")
        why = explanation(run_id, version, cleaned)
        colours = dict(zip(model.labels, label_colours(model.labels), strict=True))  # the bars' colours
        st.markdown(render_explanation_html(why, colours), unsafe_allow_html=True)
        st.caption(legend(why))


def score_file(run_id: int, model: TextClassifier) -> None:
    """Upload a file, pick its text column, score every row and download the result."""
    upload = st.file_uploader("CSV or Excel file, one text per row", key="upload",
                              type=["csv", "tsv", "txt", "xlsx", "xls", "json", "parquet"])
    if upload is not None:
        try:
            frame = uploaded_table(upload.getvalue(), upload.name)
            columns = scorable_columns(frame, upload.name)
        except ProtolabError as exc:
            st.warning(str(exc))
        else:
            column = st.selectbox("Text column", columns, key="text_col")
            st.dataframe(frame.head(5), hide_index=True)
            job = (run_id, upload.file_id, column)
            if st.button(f"Score {len(frame):,} rows", key="score", type="primary"):
                bar = st.progress(0.0, text="Starting…")
                st.session_state["scored"] = (job, score_frame(model, frame, column,
                                                               on_progress=lambda f, t: bar.progress(f, text=t)))
                bar.empty()
            done = st.session_state.get("scored")
            if done and done[0] == job:
                result = done[1]
                m1, m2, m3 = st.columns(3)
                m1.metric("Scored", f"{result.scored:,}")
                m2.metric("Blank rows skipped", f"{result.empty:,}")
                m3.metric("Truncated", f"{result.truncated:,}")
                st.plotly_chart(label_distribution(result.label_counts), key="distribution_chart")
                st.dataframe(result.frame.head(100), hide_index=True)
                st.download_button("Download scored CSV", results_csv(result), key="download",
                                   file_name=f"scored-run{run_id}.csv", mime="text/csv")
                if quoted := formula_like_cells(result.frame):
                    st.caption(f"{quoted:,} cells start with =, +, -, @ or a tab: the CSV puts a ' before each, "
                               "so a spreadsheet shows them as text instead of running them as formulas.")
