"""🏋️ Train: filled by its own issue; until then the page says so honestly."""

import streamlit as st

from ui.common import ensure_db

ensure_db()
st.title("🏋️ Train")
st.info("Training is not available in this build yet: upload a dataset on the **Datasets** page first.")
