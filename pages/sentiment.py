"""💬 Sentiment demo: a trained classification run, served to someone who has never seen the rest of the app.

One text with its label, probabilities and the words behind them; or a whole file scored and downloadable.
"""

import streamlit as st

from core.charts.sentiment import label_colours, label_distribution, probability_bars
from core.data.spreadsheet import formula_like_cells
from core.errors import ProtolabError
from core.evaluation.cards import classifier_card
from core.evaluation.demo_choice import DEMO_ORDER_HELP
from core.text.batch_scoring import read_upload, results_csv, score_frame, text_columns
from core.text.explain import explain, legend, render_explanation_html
from core.text.language import example_sentences
from core.text.serving import clean_text, load_classifier, servable_runs
from db import read_scope
from ui.api_access import use_from_code
from ui.common import empty_state, ensure_db, format_when, page_link
from ui.language import dataset_language_of


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def classifier(run_id: int, version: str):
    # One model per process, shared by every session; `version` stops a reused run id serving stale files.
    return load_classifier(run_id)


@st.cache_data(show_spinner=False, max_entries=256)
def explanation(run_id: int, version: str, text: str):
    return explain(classifier(run_id, version), text)


@st.cache_data(show_spinner=False, max_entries=8)
def uploaded_table(data: bytes, name: str):
    return read_upload(data, name)


def use_example(text: str) -> None:
    st.session_state["text"] = text


ensure_db()
present = bool(st.session_state.get("present"))
st.title("💬 Sentiment demo")
with read_scope() as s:
    completed = servable_runs(s, present=present)  # in demo order; presentation mode leaves out weak runs
runs = [r for r in completed if r.has_artifacts]
if missing := [f"#{r.run_id}" for r in completed if not r.has_artifacts]:
    st.warning(f"The model files of run {', '.join(missing)} are missing from the data folder, so it cannot be "
               "demoed; train it again on **Train**.")
if not runs:
    empty_state("No trained model to demo yet (a model that is no better than its baselines is not shown here "
                "unless it is pinned for demos). Upload labelled text on **Datasets**, train a model on **Train**, "
                "and it will appear here as soon as the run completes.", present=present)

by_id = {r.run_id: r for r in runs}
rank = {run_id: n for n, run_id in enumerate(by_id, start=1)}
run = by_id[st.selectbox("Model", list(by_id), key="run", help=DEMO_ORDER_HELP,
                         format_func=lambda i: f"Model {rank[i]} · {by_id[i].dataset_name}" if present
                         else by_id[i].title)]
with st.container(border=True):
    accuracy = run.metrics.get("accuracy")
    if not present:
        c1, c2, c3, c4 = st.columns([3, 3, 2, 2])
        c1.markdown(f"**Dataset**  \n{run.dataset_name}")
        c2.markdown(f"**Model**  \n{run.model_kind}" + (f" · `{run.model_id}`" if run.model_id else ""))
        c3.metric("Macro-F1", f"{run.macro_f1:.3f}" if run.macro_f1 is not None else "–")
        c4.metric("Accuracy", f"{accuracy:.1%}" if accuracy is not None else "–")
    version = str(run.finished_at)
    try:
        model = classifier(run.run_id, version)
    except ProtolabError as exc:
        st.error(f"This model cannot be served: {exc}")
        st.stop()
    reads = "reads whole texts" if model.family == "tfidf" else f"reads up to {model.max_length} tokens"
    details = (f"Trained {format_when(run.finished_at)} · run #{run.run_id} · served on {model.device} "
               f"({model.precision}) · {reads}")
    if present:  # the audience gets what it does and how good it is in plain words; numbers on request
        card = classifier_card(labels=model.labels, accuracy=accuracy, dataset_name=run.dataset_name,
                               technical=f"{run.title} · {details}", n_test=run.n_test,
                               accuracy_interval=run.interval("accuracy"))
        st.subheader(card.title)
        st.markdown(f"{card.what}  \n**{card.how_good}**")
        with st.expander("Technical details"):
            st.caption(card.technical)
    else:
        st.caption(details)
        page_link("pages/evaluate.py", "Full evaluation of this run", "📊", query_params={"run": str(run.run_id)})

single, batch = st.tabs(["✍️ Try a sentence", "📄 Score a file"])
with single:
    st.caption("Try one of these, or write your own:")
    examples = example_sentences(dataset_language_of(run.dataset_id))  # in the language of its training texts
    for col, (i, example) in zip(st.columns(len(examples)), enumerate(examples), strict=True):
        col.button(example, key=f"example_{i}", on_click=use_example, args=(example,), width="stretch")
    text = st.text_area("Text", key="text", height=110, placeholder="Type or paste a review, a tweet, an email…")
    analyse = st.button("Analyse", key="analyse", type="primary")
    if analyse or text:
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
            why = explanation(run.run_id, version, cleaned)
            colours = dict(zip(model.labels, label_colours(model.labels), strict=True))  # the bars' colours
            st.markdown(render_explanation_html(why, colours), unsafe_allow_html=True)
            st.caption(legend(why))

with batch:
    upload = st.file_uploader("CSV or Excel file, one text per row", key="upload",
                              type=["csv", "tsv", "txt", "xlsx", "xls", "json", "parquet"])
    if upload is not None:
        try:
            frame = uploaded_table(upload.getvalue(), upload.name)
            columns = text_columns(frame)
            if not columns:
                raise ProtolabError(f"{upload.name} has no column with text to score (columns: "
                                    f"{', '.join(map(str, frame.columns))}). Put one review per row in a text column.")
        except ProtolabError as exc:
            st.warning(str(exc))
        else:
            column = st.selectbox("Text column", columns, key="text_col")
            st.dataframe(frame.head(5), hide_index=True)
            job = (run.run_id, upload.file_id, column)
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
                                   file_name=f"scored-run{run.run_id}.csv", mime="text/csv")
                if quoted := formula_like_cells(result.frame):
                    st.caption(f"{quoted:,} cells start with =, +, -, @ or a tab: the CSV puts a ' before each, "
                               "so a spreadsheet shows them as text instead of running them as formulas.")

use_from_code(run.run_id, texts=[examples[0]], present=present)
