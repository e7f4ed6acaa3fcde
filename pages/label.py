"""Label: label an unlabelled dataset one text at a time (keys 1-9, s, u) or as a table batch, with the few-shot
model's suggestions; diverse texts first, then uncertain ones. A SetFit run retrains in the background every N
new labels; the labelled rows become a normal dataset version on request.
"""

import streamlit as st

from core.data.storage import load_frame
from core.errors import ProtolabError
from core.labelling import pool as labels
from core.labelling import retrain
from core.labelling.strategy import STRATEGIES, pool_clusters
from core.settings import dataset_dir
from db import datasets as dataset_queries
from db import read_scope
from ui import labelling as ui
from ui.common import ensure_db

ensure_db()
st.title("🏷️ Label")


@st.cache_data(show_spinner=False, max_entries=4)
def texts_of(dataset_id: int, content_hash: str):  # noqa: ANN201 - a pandas Series
    with read_scope() as s:
        return load_frame(dataset_queries.get_dataset(s, dataset_id))["text"].astype(str)


@st.cache_resource(show_spinner="Embedding the texts to find diverse ones (once per dataset)…", max_entries=2)
def clusters_of(dataset_id: int, content_hash: str):  # noqa: ANN201 - Clusters
    return pool_clusters(texts_of(dataset_id, content_hash).tolist(), dataset_dir(dataset_id))


@st.cache_resource(show_spinner=False, max_entries=4)
def scores_of(run_id: int):  # noqa: ANN201 - PoolScores | None
    return retrain.pool_scores(run_id)


with read_scope() as s:
    pools = {d.id: d for d in labels.unlabelled_datasets(s)}
    for d in pools.values():
        s.expunge(d)
if not pools:
    st.info("No unlabelled datasets yet: upload texts on the Datasets page with **No labels yet** ticked, or "
            "`protolab datasets add FILE --task classification --text-col text --unlabelled`.")
    st.stop()
dataset = pools[st.selectbox("Dataset", list(pools), format_func=lambda i: pools[i].name, key="pool")]
ui.show_error()
with read_scope() as s:
    state = labels.label_state(s, dataset.id)
    status = retrain.retrain_status(s, dataset.id)
ui.label_set_editor(dataset.id, state)
if not state.classes:
    st.info("Define the label set first: at least two labels, one a line.")
    st.stop()

texts = texts_of(dataset.id, dataset.content_hash)
left, mid, right = st.columns(3)
strategy = left.radio("Next text", STRATEGIES, key="strategy", horizontal=True,
                      help="auto: diverse texts (one per cluster) while labels are few, then the ones the model "
                           "is least sure of")
mode = mid.radio("Mode", ["one at a time", "table batch"], key="mode", horizontal=True)
every = int(right.number_input("Retrain every N new labels", 1, 10_000, retrain.DEFAULT_RETRAIN_EVERY,
                               key="retrain_every"))
st.caption(f"{len(state.labels)} of {len(texts)} texts labelled, {len(state.skipped)} skipped")
try:
    clusters = clusters_of(dataset.id, dataset.content_hash) if strategy in ("auto", "diverse") else None
    scores = scores_of(status.latest_completed_id) if status.latest_completed_id else None
    if mode == "one at a time":
        ui.one_at_a_time(dataset.id, texts, state, strategy, clusters, scores)
    else:
        ui.table_batch(dataset.id, texts, state, strategy, clusters, scores)
    ui.retraining(dataset, state, every)
except ProtolabError as exc:
    st.error(str(exc))
st.subheader("Progress")
ui.progress(dataset.id, state)
st.subheader("Save as a labelled dataset")
ui.save_version(dataset.id, state)
