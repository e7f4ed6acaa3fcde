"""🏋️ Train: pick a dataset, a model and a few settings, start a background run, watch it live.

The run trains in its own worker process (core.runs.jobs); this page only reads the database: a refresh loses nothing.
"""

import streamlit as st

from core.charts.training import loss_curve, validation_curve
from core.evaluation.weakness import run_weakness
from core.runs import jobs
from core.runs.files import RunFiles
from core.runs.registry import find_kind, headline_of
from core.tasks import get_task
from db import datasets as dataset_queries
from db import read_scope, session_scope
from db import runs as run_queries
from db.enums import RunStatus
from db.models import Run
from ui import search_views, url_state
from ui.common import ensure_db, format_duration, format_when, page_link, status_chip
from ui.fleet_views import show_placement

# The progress bar refreshes every second; the curves every 5 s (a point arrives every 5 steps anyway).
CHARTS_REFRESH = "5s"

ensure_db()
st.title("🏋️ Train")
jobs.reap_dead_runs()  # a worker that died shows as failed, not as running forever

with read_scope() as s:
    datasets = {d.id: (f"{d.name} ({d.row_count:,} rows · {get_task(d.task).holds})", get_task(d.task))
                for d in dataset_queries.list_datasets(s)}
if not datasets:
    st.info("No dataset yet: upload labelled texts or user–item interactions (or load a demo dataset) first.")
    page_link("pages/datasets.py", "Go to Datasets", "📂")
    st.stop()

# --- what to train ----------------------------------------------------------------------------------
# After a reload (a new session) the form comes back as it was: from ?dataset=&model= or the run in ?run=.
url_run = url_state.run_choice(url_state.url_run_id())
dataset_id = st.selectbox("Dataset", list(datasets), format_func=lambda i: datasets[i][0], key="dataset",
                          index=url_state.url_index("dataset", list(datasets), url_run and url_run[0]))
url_state.remember("dataset", dataset_id)
if st.segmented_control("Mode", ["One run", "Search"], default="One run", key="train_mode") == "Search":
    search_views.search_form(dataset_id)  # a hyperparameter search: many runs (ui.search_views)
    st.stop()
datasets[dataset_id][1].part("train_form")(dataset_id, url_run and url_run[1])


# --- the live panel ---------------------------------------------------------------------------------
def _snapshot(run_id: int) -> dict | None:
    with read_scope() as s:
        run = run_queries.get_run(s, run_id)
        if run is None:
            return None
        return {"id": run.id, "status": run.status, "progress": run.progress, "text": run.status_text or "",
                "model": run.model_kind, "dataset": run.dataset.name, "task": run.task, "device": run.device,
                "error": run.error, "weakness": run_weakness(run, s),
                "metrics": run.metrics or {}, "events": run.events or [], "duration": run.duration_s}


def _points(run_id: int) -> list[dict]:
    with read_scope() as s:
        return [{"name": p.name, "value": p.value, "step": p.step, "epoch": p.epoch, "split": p.split}
                for p in run_queries.metric_points(s, run_id)]


def live_panel(run_id: int, was_active: bool) -> None:
    if was_active:
        jobs.reap_dead_runs()  # so a worker that dies while we watch turns into "failed" here
    run = _snapshot(run_id)
    if run is None:
        return
    if was_active and not run["status"].is_active:
        st.rerun()  # finished: redraw the whole page once, without the 1 s refresh
    st.markdown(f"{status_chip(run['status'])} **Run #{run['id']}** · {run['model']} on {run['dataset']} · "
                f"{run['device'] or 'device not chosen yet'} · {format_duration(run['duration'])}")
    st.progress(min(1.0, run["progress"]), text=run["text"] or run["status"].value)
    show_placement(run_id)
    for event in run["events"]:
        if event.get("message"):  # events without one (resume, claimed...) show in the status line instead
            st.caption(f"ℹ️ {event['message']}")
    if run["status"].is_active and st.button("■ Cancel", key="cancel"):
        with session_scope() as s:
            jobs.cancel_run(s, run_id)
        st.toast(f"Cancelling run #{run_id}…")
    if run["status"] == RunStatus.COMPLETED:
        figures = get_task(run["task"]).summary
        for column, figure in zip(st.columns(len(figures)), figures, strict=True):
            column.metric(*figure.show(run["metrics"]))
        if run["weakness"].weak:
            st.warning(f"Weak run: {run['weakness'].reason}. It is never picked by default for a demo.", icon="⚠️")
        page_link("pages/evaluate.py", "Evaluate this run", "📊", query_params={"run": str(run_id)})
    if run["status"] == RunStatus.FAILED:
        st.error(run["error"] or "The run failed without a message.")
        with st.expander("Worker log (last lines)"):
            st.code(jobs.log_tail(run_id) or "(empty)")
    resumable = run["status"] in (RunStatus.FAILED, RunStatus.CANCELLED) and RunFiles.of(run_id).has_checkpoint()
    if resumable and st.button("↻ Resume from checkpoint", key="resume"):
        with session_scope() as s:
            jobs.resume_run(s, run_id)
        st.rerun()


def live_charts(run_id: int) -> None:
    """The loss and validation curves, in their own slower fragment: Chromium redrawing them every second with the
    progress bar took 0.27 core, 0.19 this way, which a CPU run on a laptop pays for in speed (BENCHMARKS.md)."""
    points = _points(run_id)
    left, right = st.columns(2)
    left.plotly_chart(loss_curve(points), key=f"loss_{run_id}")
    right.plotly_chart(validation_curve(points), key=f"val_{run_id}")


def _score(run: Run) -> str:
    text = headline_of(run.model_kind, run.task, run.metrics)[0].text(run.metrics)
    weak = " · ⚠ weak" if run_weakness(run).weak else ""
    return (f" · {text}" if text else "") + weak


def _recent() -> list[tuple]:
    with read_scope() as s:
        return [(r.id, r.status, r.model_kind, r.dataset.name, r.created_at, _score(r))
                for r in run_queries.list_runs(s, limit=10)]


def recent_runs(was_active: bool) -> None:
    # Refreshed with the live panel while anything runs, so its chips never contradict the panel's status.
    recent = _recent()
    if was_active and not any(r[1].is_active for r in recent):
        st.rerun()
    if not recent:
        st.caption("No runs yet: press Start above.")
    for run_id, status, model, dataset_name, created, score in recent:
        row, open_col = st.columns([6, 1])
        row.markdown(f"{status_chip(status)} **#{run_id}** {model} on {dataset_name} · {format_when(created)}{score}")
        if open_col.button("Open", key=f"open_{run_id}"):
            st.query_params["run"] = str(run_id)
            st.rerun()


recent = _recent()
wanted = url_state.url_run_id()
active = [r[0] for r in recent if r[1].is_active]
selected = wanted if wanted is not None else (active[0] if active else recent[0][0] if recent else None)
snap = _snapshot(selected) if selected is not None else None
if missing := url_state.missing_run_message(wanted, [selected] if snap else []):
    st.warning(missing)  # a link to a run that is gone says so, rather than showing nothing or another run
elif snap is not None:
    st.subheader("Run")
    is_active = snap["status"].is_active
    st.fragment(run_every="1s" if is_active else None)(live_panel)(selected, is_active)
    kind = find_kind(snap["model"])
    if kind is None or kind.has_epochs:  # TF-IDF, EASE...: no epochs, so no loss or validation to draw
        st.fragment(run_every=CHARTS_REFRESH if is_active else None)(live_charts)(selected)

st.subheader("Recent runs")
st.fragment(run_every="1s" if active else None)(recent_runs)(bool(active))
