"""🏷️ Tagging demo: a completed multi-label run tags a text (chips with probabilities and thresholds, the words
for and against each tag) or a file; presentation mode leads with its plain-language card."""

import streamlit as st

from core.errors import ProtolabError
from core.multilabel.serving import servable_tag_runs, tag_run_card
from ui import multilabel_demo as demo
from ui.common import empty_state, ensure_db, model_card

ensure_db()
present = bool(st.session_state.get("present"))
st.title("🏷️ Tagging demo")
runs = servable_tag_runs()
if not runs:
    empty_state("No multi-label model to demo yet. Upload texts with tag sets on **Datasets** (task Multi-label "
                "text), train a model on **Train**, and it appears here once the run completes.", present=present)
by_id = {r["run_id"]: r for r in runs}
run_id = st.selectbox("Model", list(by_id), key="tag_run", format_func=lambda i: f"#{i} {by_id[i]['name']}"
                      + (f" · micro-F1 {by_id[i]['micro_f1']:.3f}" if by_id[i]["micro_f1"] is not None else ""))
try:
    model = demo.tagger(run_id)
    if present:  # the audience gets what it does and how good it is in plain words; numbers on request
        model_card(tag_run_card(run_id))
    text = st.text_area("Text", key="tag_text", placeholder="Paste a ticket, a review, a message…")
    if text.strip():
        demo.chips(model, text)
        demo.why(run_id, text)
    demo.score_file(model)
except ProtolabError as exc:
    st.error(str(exc))
