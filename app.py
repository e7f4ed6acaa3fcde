"""Protolab's entry point: `streamlit run app.py`. Routes to the pages; no work happens here."""

from __future__ import annotations

import streamlit as st

from core import tasks
from core.logs import configure_logging
from core.runs.estimates import measure_cold_starts_in_background
from core.settings import PRESENTATION, PUBLIC_PRESENTATION
from ui.common import ensure_db, mark_routed, require_password

configure_logging()  # the app's one set-up; every rerun of this script finds it done
st.set_page_config(page_title="Protolab", page_icon="🧪", layout="wide")
mark_routed()


def presentation_mode() -> bool:
    """Stakeholder view: only the demo pages (URL `?present=1` or PROTOLAB_PRESENTATION=1)."""
    if st.query_params.get("present") in {"1", "true", "yes"}:
        st.session_state["present"] = True
    elif st.query_params.get("present") in {"0", "false", "no"}:
        st.session_state["present"] = False
    present = bool(st.session_state.get("present", PRESENTATION.get()))
    if present and st.query_params.get("present") != "1":
        # Navigating between pages drops the query string; put the mode back in the URL of every page,
        # so a reload (a new session, without session state) still shows the audience only the demos.
        st.query_params["present"] = "1"
    return present


present = presentation_mode()
# One entry per task's demo page (core.tasks): a new task's demo appears here without this file knowing it.
demos = [st.Page(demo.page, title=demo.title, icon=demo.icon, url_path=demo.url_path) for demo in tasks.demos()]
public_demos = present and PUBLIC_PRESENTATION.get()
st.session_state["_public_presentation"] = public_demos
if not public_demos and not require_password():
    st.stop()
ensure_db()
measure_cold_starts_in_background()  # once per server: the first estimate then finds the start-up measured

if present:
    st.markdown("<style>[data-testid='stSidebarNav'] {display: none;}</style>", unsafe_allow_html=True)
    # The root URL gets a hidden copy of the first demo, so each demo keeps its own address
    # (/sentiment?present=1): Streamlit always shows the default page's address as "/".
    first = tasks.demos()[0]
    root = st.Page(first.page, title=first.title, url_path="demo", default=True, visibility="hidden")
    pg = st.navigation([root, *demos], position="top")
else:
    pg = st.navigation({
        "Protolab": [st.Page("pages/home.py", title="Home", icon="🏠", default=True)],
        "Data": [st.Page("pages/datasets.py", title="Datasets", icon="📂", url_path="datasets"),
                 st.Page("pages/label.py", title="Label", icon="🏷️", url_path="label")],
        "Models": [st.Page("pages/train.py", title="Train", icon="🏋️", url_path="train"),
                   st.Page("pages/evaluate.py", title="Evaluate", icon="📊", url_path="evaluate")],
        "Demos": demos,
    })
pg.run()
