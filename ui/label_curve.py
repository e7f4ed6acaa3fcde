"""The Evaluate page's "How many labels do I need?" section: for a run trained on few labels, start the label
curve of its dataset (a background job), follow it while it runs (the scores so far drawn as they come), and
read the finished curve in one sentence. Hidden in presentation mode: it is a question for the team.

The curve itself is core.labelling; this module only reads the database and the run folder, and draws.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from core.charts.labelling import label_curve as label_curve_chart
from core.errors import ProtolabError
from core.labelling import curve_job
from core.labelling.label_curve import LabelCurveConfig, aggregate, is_small_training_set, read_curve
from db import datasets as dataset_queries
from db import read_scope, session_scope
from db import runs as run_queries
from db.enums import RunStatus


@st.cache_data(show_spinner=False, max_entries=32)
def cached_train_counts(dataset_id: int) -> dict[str, int]:
    """A dataset's files never change (an edit is a new version with its own id), so its counts keep."""

    with read_scope() as s:
        dataset = dataset_queries.get_dataset(s, dataset_id)
        return curve_job.train_counts(dataset) if dataset is not None else {}


def label_curve_section(run: Any) -> None:
    """Draw the section for a completed classification run, if its question is "should we label more?"."""
    if st.session_state.get("present"):
        return
    try:
        counts = cached_train_counts(run.dataset_id)
    except (OSError, ProtolabError):  # the dataset's files are gone: the page says so elsewhere
        return
    if not is_small_training_set(run.model_kind, counts):
        return
    with read_scope() as s:
        job = curve_job.latest_curve_run(s, run.dataset_id)
        job = None if job is None else {"id": job.id, "status": job.status, "error": job.error}
    reference = _reference(run)
    cfg = LabelCurveConfig()
    with st.expander("How many labels do I need?", expanded=job is not None):
        st.caption(f"SetFit, TF-IDF and the fine-tuned Transformer, each trained on {', '.join(map(str, cfg.sizes))} "
                   f"labelled examples a class drawn from this dataset's training split (its smallest class has "
                   f"{min(counts.values()) if counts else 0}), scored on up to {cfg.test_cap:,} rows of its test "
                   "split. A background run: about 10 minutes on a 2-core CPU for 3 classes, two thirds of it SetFit.")
        if job is not None and job["status"].is_active:
            curve_progress(job["id"], reference)
            return
        if job is not None and job["status"] == RunStatus.FAILED and job["error"]:
            st.error(f"The last label curve failed: {job['error'].splitlines()[0]}")
        if st.button("Draw the label curve" if job is None else "Draw it again", key="curve_start",
                     type="primary" if job is None else "secondary"):
            try:
                with session_scope() as s:
                    curve_job.start_label_curve(s, run.dataset_id)
            except ProtolabError as exc:
                st.error(str(exc))
                return
            st.rerun()
        if job is not None:
            draw_curve(job["id"], reference)


@st.fragment(run_every="2s")
def curve_progress(job_id: int, reference: tuple[str, float] | None) -> None:
    with read_scope() as s:
        job = run_queries.get_run(s, job_id)
        status, progress, text = job.status, job.progress, job.status_text
    if not status.is_active:
        st.rerun()  # finished: redraw the section with the whole curve
    st.progress(progress, text=f"Label curve running in the background: {text}")
    draw_curve(job_id, reference)


def draw_curve(job_id: int, reference: tuple[str, float] | None) -> None:
    with read_scope() as s:
        job = run_queries.get_run(s, job_id)
        curve = curve_job.read_curve_of(job) if job is not None else None
    if not curve or not curve.get("points"):
        return
    st.plotly_chart(label_curve_chart(aggregate(curve["points"]), reference), key=f"curve_chart_{job_id}",
                    width="stretch")
    st.markdown(read_curve(curve))
    capped = f"a stratified slice of {curve['n_test']:,} of its {curve['test_rows']:,} test rows" \
        if curve.get("test_capped") else f"its {curve.get('n_test', 0):,} test rows"
    st.caption(f"Label curve run #{job_id}: scored on {capped}; {curve.get('seeds', 1)} seed(s) a size.")


def _reference(run: Any) -> tuple[str, float] | None:
    """The evaluated run's test macro-F1 (on the whole test split) as the curve's dashed line."""
    report = ((run.metrics or {}).get("reports") or {}).get("test") or {}
    value = report.get("macro_f1")
    if not isinstance(value, (int, float)) and (run.metrics or {}).get("split", "test") == "test":
        value = (run.metrics or {}).get("macro_f1")
    return (f"this run (#{run.id} {run.model_kind})", float(value)) if isinstance(value, (int, float)) else None
