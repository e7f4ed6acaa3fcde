"""Home: what Protolab does, what is stored, recent runs, and where it runs (no torch import here)."""

import streamlit as st

from core.evaluation.weakness import run_weakness
from core.runs.device import describe_compute
from core.runs.registry import headline_of
from core.settings import load_settings, redact_url
from db import datasets as dataset_queries
from db import read_scope
from db import runs as run_queries
from db.enums import RunStatus
from ui.common import ensure_db, format_duration, format_when, page_link, status_chip
from ui.fleet_views import show_fleet
from ui.tracking_settings import show_tracking_settings

ensure_db()
st.title("🧪 Protolab")
st.markdown(
    "Turn a dataset into a demo a stakeholder can click: **upload** labelled text or user–item "
    "interactions, **fine-tune** a pretrained Transformer, an LSTM or a TF-IDF baseline (on a GPU when "
    "there is one), **evaluate** with the charts that answer *is it good enough?*, and **demo** sentiment "
    "analysis and recommendations."
)

with read_scope() as s:
    n_datasets = dataset_queries.count_datasets(s)
    runs_by_status = run_queries.count_runs(s)
    recent = [(r.id, r.name or f"{r.model_kind} on {r.dataset.name}", r.status, r.model_kind, r.task,
               r.created_at, r.duration_s, r.metrics or {}, run_weakness(r, s))
              for r in run_queries.list_runs(s, limit=8)]

c1, c2, c3, c4 = st.columns(4)
c1.metric("Datasets", n_datasets)
c2.metric("Runs", sum(runs_by_status.values()))
c3.metric("Running now", sum(n for status, n in runs_by_status.items() if RunStatus(status).is_active))
c4.metric("Completed", runs_by_status.get(RunStatus.COMPLETED, 0))

st.subheader("Recent runs")
if not recent:
    st.info("Nothing here yet: upload a dataset (or load a demo dataset) on the **Datasets** page, "
            "then start a run on **Train**.")
    page_link("pages/datasets.py", "Go to Datasets", "📂")
else:
    for run_id, name, status, model, task, created, duration, metrics, weakness in recent:
        score = headline_of(model, task, metrics)
        score_text = f" · {score[0].label} {score[1]:.3f}" if score[1] is not None else ""
        weak = " · :orange-badge[⚠ weak: not above its baselines]" if weakness.weak else ""
        st.markdown(f"{status_chip(status)} **#{run_id} {name}** · {model} · {format_when(created)} · "
                    f"{format_duration(duration)}{score_text}{weak}", help=weakness.reason)

st.subheader("Where it runs")
settings = load_settings()
compute = describe_compute()
d1, d2 = st.columns(2)
d1.markdown(f"**Compute:** {compute.summary}")
d2.markdown(f"**Database:** `{redact_url(settings.database_url)}`")
st.caption(f"Data folder: `{settings.home}`")
show_tracking_settings()
show_fleet()
