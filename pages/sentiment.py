"""💬 Sentiment demo: a trained classification run, served to someone who has never seen the rest of the app.

One text with its label, probabilities and the words behind them; or a whole file scored and downloadable.
"""

import streamlit as st

from core.errors import ProtolabError
from core.evaluation.cards import classifier_card
from core.evaluation.demo_choice import DEMO_ORDER_HELP
from core.text.language import example_sentences
from core.text.serving import servable_runs
from db import read_scope
from ui import sentiment_views as views
from ui.api_access import use_from_code
from ui.common import empty_state, ensure_db, format_when, model_card, page_link
from ui.language import dataset_language_of


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
        model = views.classifier(run.run_id, version)
    except ProtolabError as exc:
        st.error(f"This model cannot be served: {exc}")
        st.stop()
    details = (f"Trained {format_when(run.finished_at)} · run #{run.run_id} · served on {model.device} "
               f"({model.precision}) · {model.reads}")
    if present:  # the audience gets what it does and how good it is in plain words; numbers on request
        card = classifier_card(labels=model.labels, accuracy=accuracy, dataset_name=run.dataset_name,
                               technical=f"{run.title} · {details}", n_test=run.n_test,
                               accuracy_interval=run.interval("accuracy"))
        model_card(card)
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
        views.show_prediction(run.run_id, version, model, text)

with batch:
    views.score_file(run.run_id, model)

use_from_code(run.run_id, texts=[examples[0]], present=present)
