"""🎬 Recommendations demo: a completed recommender run, served to someone who has never seen the rest of the app.

Three ways in: an existing user's history and picks, a new visitor's likes, or the items nearest to one item.
"""

import streamlit as st

from core.charts.recommendations import recommendation_scores
from core.errors import ProtolabError
from core.evaluation.cards import recommender_card
from core.evaluation.demo_choice import DEMO_ORDER_HELP
from core.metric_keys import DISPLAY_K
from core.recs.serving import load_recommender, recommender_runs
from core.recs.similarity import DEFAULT_DAMPED
from db import read_scope
from ui.api_access import use_from_code
from ui.common import empty_state, ensure_db, format_when, page_link

MODES = ("👤 Existing user", "👋 New visitor", "🔗 Similar items")


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def recommender(run_id: int, version: str):
    # One model per process, shared by every session; `version` stops a reused run id serving stale files.
    return load_recommender(run_id)


def show_recommendations(model, recs) -> None:
    if not recs:
        st.info("Nothing left to recommend: this user has seen every item the model knows.")
        return
    st.dataframe(model.table(recs), hide_index=True, width="stretch", key="recs_table")
    st.plotly_chart(recommendation_scores([(model.title(i), s) for i, s, _ in recs]), key="recs_chart")


ensure_db()
present = bool(st.session_state.get("present"))
st.title("🎬 Recommendations demo")
with read_scope() as s:
    runs = recommender_runs(s, present=present)  # in demo order; presentation mode leaves out weak runs
if not runs:
    empty_state("No trained recommender to demo yet. Upload an interactions file (user, item, optional rating and "
                "timestamp) on **Datasets**, train a recommender on **Train**, and it appears here once it "
                "completes.", present=present)

by_id = {r.run_id: r for r in runs}
rank = {run_id: n for n, run_id in enumerate(by_id, start=1)}
run = by_id[st.selectbox("Model", list(by_id), key="run", help=DEMO_ORDER_HELP,
                         format_func=lambda i: f"Model {rank[i]} · {by_id[i].dataset_name}" if present
                         else by_id[i].title)]
try:
    model = recommender(run.run_id, str(run.finished_at))
except ProtolabError as exc:
    st.error(f"This model cannot be served: {exc}")
    st.stop()

details = (f"Trained {format_when(run.finished_at)} · run #{run.run_id}"
           + ("" if model.catalogue is not None else " · no item catalogue: items are shown by id"))
with st.container(border=True):
    if present:  # the audience gets what it does and how good it is in plain words; numbers on request
        card = recommender_card(hit_rate=run.hit_rate, k=DISPLAY_K, dataset_name=run.dataset_name,
                                n_items=len(model.items),
                                technical=f"{run.title} · {details}")
        st.subheader(card.title)
        st.markdown(f"{card.what}  \n**{card.how_good}**")
        with st.expander("Technical details"):
            st.caption(card.technical)
    else:
        c1, c2, c3, c4 = st.columns([3, 2, 2, 2])
        c1.markdown(f"**Dataset**  \n{run.dataset_name}")
        c2.markdown(f"**Model**  \n{run.model_kind}")
        c3.metric(f"NDCG@{DISPLAY_K}", f"{run.ndcg:.3f}" if run.ndcg is not None else "–")
        c4.metric("Users · items", f"{len(model.users):,} · {len(model.items):,}")
        st.caption(details)

mode = st.radio("Mode", MODES, horizontal=True, key="mode", label_visibility="collapsed")
top_n = st.slider("How many recommendations", 3, 30, DISPLAY_K, key="top_n")

try:
    if mode == MODES[0]:
        user = st.selectbox("User", model.users, key="user", help="Type to search user ids.")
        history = model.user_history(user)
        left, right = st.columns([2, 3])
        with left:
            st.subheader(f"History ({len(history)})")
            st.dataframe(history, hide_index=True, width="stretch", height=420, key="history_table")
        with right:
            st.subheader("Recommended next")
            show_recommendations(model, model.recommend(user, top_n))
    elif mode == MODES[1]:
        # select_all=False: with the bulk action on, Enter after typing picked "Select N matches" and added
        # every film that fuzzily matched the search, not the one the visitor meant.
        likes = st.multiselect("Items you like", model.items, format_func=model.label, key="likes",
                               placeholder="Type a title to search…", max_selections=20, select_all=False)
        if not likes:
            st.info("Pick a few items you like: recommendations appear at once, no retraining.")
        else:
            show_recommendations(model, model.recommend_for_likes(likes, top_n))
    else:
        item = st.selectbox("Item", model.items, format_func=model.label, key="item",
                            help="Type a title to search.")
        damped = st.toggle("Less obvious picks", value=DEFAULT_DAMPED, key="damped",
                           help="Ranks items by how much more often they go with this one than their popularity "
                                "alone explains (their correlation), so blockbusters everyone saw do not top every "
                                "list. On MovieLens 100K its picks were chosen held out the most often relative to "
                                "their popularity (BENCHMARKS.md); off: the model's own similarity.")
        st.subheader(f"Nearest to {model.title(item)}")
        st.dataframe(model.similar_table(model.similar_items(item, top_n, damped=damped)), hide_index=True,
                     width="stretch", key="similar_table")
except ProtolabError as exc:
    st.error(str(exc))

if not present:
    page_link("pages/evaluate.py", "Full evaluation of this run", "📊", query_params={"run": str(run.run_id)})

use_from_code(run.run_id, user=str(model.users[0]), present=present)
