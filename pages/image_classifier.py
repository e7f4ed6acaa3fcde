"""🖼️ Image classifier demo: a trained image run, served to someone who has never seen the rest of the app.

One picture (uploaded or from the camera) with its top classes and where the model looked; or a ZIP scored.
"""

import streamlit as st

from core.evaluation.cards import classifier_card
from core.evaluation.demo_choice import DEMO_ORDER_HELP
from core.images import TASK
from core.text.serving import servable_runs
from db import read_scope
from ui.common import empty_state, ensure_db, format_when, model_card, page_link
from ui.images import demo as views

ensure_db()
present = bool(st.session_state.get("present"))
st.title("🖼️ Image classifier")
with read_scope() as s:
    runs = [r for r in servable_runs(s, present=present, task=TASK) if r.has_artifacts]
if not runs:
    empty_state("No trained image model to demo yet. Upload a ZIP of images on **Datasets**, train a model on "
                "**Train**, and it will appear here as soon as the run completes.", present=present)

by_id = {r.run_id: r for r in runs}
run = by_id[st.selectbox("Model", list(by_id), key="run", help=DEMO_ORDER_HELP,
                         format_func=lambda i: by_id[i].title)]
model = views.served_model(run.run_id, str(run.finished_at))
details = (f"{run.title} · {run.dataset_name} · trained {format_when(run.finished_at)} · run #{run.run_id} · "
           f"served on {model.device} · {model.reads}")
if present:  # as on the Sentiment page: what it does and how good it is in plain words, numbers on request
    card = classifier_card(labels=model.labels, accuracy=run.metrics.get("accuracy"), dataset_name=run.dataset_name,
                           technical=details, n_test=run.n_test, items="images", reads="an image",
                           accuracy_interval=run.interval("accuracy"))
    model_card(card)
else:
    st.caption(details)
    page_link("pages/evaluate.py", "Full evaluation of this run", "📊", query_params={"run": str(run.run_id)})

single, camera, batch = st.tabs(["🖼️ Try an image", "📷 Take a photo", "🗂️ Score a ZIP"])
with single:
    upload = st.file_uploader("An image", key="image_upload", type=["jpg", "jpeg", "png", "webp", "bmp", "gif"])
    if upload is not None:
        views.show_prediction(model, upload.getvalue(), upload.name, "upload")
with camera:
    photo = st.camera_input("Take a photo", key="camera")
    if photo is not None:
        views.show_prediction(model, photo.getvalue(), "camera photo", "camera")
with batch:
    views.score_archive(model)
