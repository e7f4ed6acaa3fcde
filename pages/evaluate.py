"""📊 Evaluate: is this model good enough? Metrics, charts, error analysis, comparison and reviews.

Reads metrics stored on finished runs; the sections are drawn by ui.evaluate_views.
"""

import streamlit as st

from core.tasks import get_task
from ui import evaluate_views as views
from ui import search_views, url_state
from ui.common import ensure_db, page_link

ensure_db()
st.title("📊 Evaluate")

rows = views.completed_runs()
if not rows:
    st.info("No completed runs yet: train a model on the **Train** page, then come back to evaluate it.")
    page_link("pages/train.py", "Train a model", "🏋️")
    st.stop()

by_id = {r["id"]: r for r in rows}
mode = st.segmented_control("View", ["One run", "Compare runs", "Search"], default="One run", key="mode")

if mode == "Search":  # a hyperparameter search: its figures and trials (ui.search_views)
    if (search_id := search_views.search_picker()) is not None:
        search_views.search_view(search_id)
elif mode == "Compare runs":
    views.comparison(rows, current=st.session_state.get("_evaluated_run", url_state.url_run_id()))
else:
    wanted = url_state.url_run_id()
    ids = list(by_id)
    start = ids.index(wanted) if wanted in by_id else 0
    if missing := url_state.missing_run_message(wanted, ids, instead=": showing the latest completed run instead"):
        st.warning(missing)
    left, right = st.columns([3, 1])
    run_id = left.selectbox("Run", ids, index=start, key="run", format_func=lambda i: by_id[i]["label"])
    st.session_state["_evaluated_run"] = run_id  # Compare opens on it (the selectbox's state goes when hidden)
    splits = get_task(by_id[run_id]["task"]).evaluate_splits
    split = right.radio("Split", splits, horizontal=True, key="split") if len(splits) > 1 else splits[0]
    views.single_run(run_id, split)
