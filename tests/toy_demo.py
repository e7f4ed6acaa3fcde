"""The toy task's demo page (tests.toy_task): a page outside pages/ that app.py lists because its task names it."""

import streamlit as st

from ui.common import ensure_db

ensure_db()
st.title("Toy demo")
st.write("Scores every text with the training split's mean.")
