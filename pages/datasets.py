"""Datasets: the page is filled by the datasets issue; until then it says so honestly."""

import streamlit as st

from ui.common import ensure_db

ensure_db()
st.title("📂 Datasets")
st.info("Dataset upload is not available in this build yet.")
