"""Home's "Experiment tracking" expander: the MLflow tracking URI and experiment in effect and where each comes
from, a form that saves or clears the app's own (the environment wins over it), and a connection test."""

from __future__ import annotations

import streamlit as st

from core.tracking import mlflow_runs
from core.tracking.setting import (
    ACCEPTED,
    DEFAULT,
    ENVIRONMENT,
    SAVED,
    Tracking,
    TrackingSettingError,
    check_uri,
    clear,
    current,
    save,
    shown_uri,
)

_MESSAGE, _RESET = "_tracking_message", "_tracking_reset"  # kept across the rerun that redraws what is in effect
_FIELDS = ("mlflow_uri", "mlflow_experiment")


def show_tracking_settings() -> None:
    tracking = current()
    with st.expander("Experiment tracking (MLflow)", icon="📈", expanded=_MESSAGE in st.session_state):
        st.markdown(_in_effect(tracking))
        if kind_and_text := st.session_state.pop(_MESSAGE, None):
            getattr(st, kind_and_text[0])(kind_and_text[1])
        _form(tracking)
        st.caption("Workers and search drivers read this when each run starts: a change applies from the next run. "
                   "`protolab runs export-mlflow --all` sends runs made before.")


def _in_effect(t: Tracking) -> str:
    if t.uri_from == ENVIRONMENT:
        where = f"Runs log to `{shown_uri(t.uri)}`, from `MLFLOW_TRACKING_URI` (the environment wins)"
        if t.saved_uri:
            where += f"; the URI saved here, `{shown_uri(t.saved_uri)}`, is not in effect"
    elif t.uri_from == SAVED:
        where = f"Runs log to `{shown_uri(t.uri)}`, set here"
    else:
        return ("MLflow is **off**: no run is logged. Save a tracking URI below, or set `MLFLOW_TRACKING_URI` where "
                "the workers run.")
    source = {ENVIRONMENT: "from `PROTOLAB_MLFLOW_EXPERIMENT`", SAVED: "set here", DEFAULT: "the default"}
    return f"{where}, under the experiment `{t.experiment}` ({source[t.experiment_from]})."


def _form(t: Tracking) -> None:
    if st.session_state.pop(_RESET, False):  # before the fields exist: a widget's value cannot change after
        for key in _FIELDS:
            st.session_state.pop(key, None)
    uri = st.text_input("Tracking URI", value=t.saved_uri or "", key="mlflow_uri", help=f"MLflow takes {ACCEPTED}.",
                        placeholder="http://127.0.0.1:5000 or sqlite:////srv/mlflow.db")
    experiment = st.text_input("Experiment", value=t.saved_experiment or "", key="mlflow_experiment",
                               placeholder=f"{t.experiment} (blank: the default)")
    save_col, test_col, clear_col = st.columns(3)
    if save_col.button("Save", key="mlflow_save", type="primary"):
        try:
            saved = save(uri, experiment)
        except TrackingSettingError as exc:
            st.error(f"Not saved: {exc}")  # shown where the user looks, at once; nothing was stored
        else:
            note = " (MLFLOW_TRACKING_URI still wins here)" if saved.uri_from == ENVIRONMENT else ""
            _redraw("success", f"Saved: runs from now on log to `{shown_uri(saved.saved_uri or '')}`{note}.")
    if test_col.button("Test connection", key="mlflow_test"):
        _test(uri.strip() or t.uri, experiment.strip() or t.experiment)
    if clear_col.button("Clear", key="mlflow_clear", disabled=not (t.saved_uri or t.saved_experiment)):
        cleared = clear()
        _redraw("success", "Cleared: " + ("`MLFLOW_TRACKING_URI` is still in effect." if cleared.enabled
                                          else "MLflow is off."), reset=True)


def _test(uri: str, experiment: str) -> None:
    if not uri:
        st.warning("No tracking URI to test: type one above.")
        return
    try:
        with st.spinner("Reaching MLflow…"):
            st.success(f"`{shown_uri(uri)}`: {mlflow_runs.check_connection(check_uri(uri), experiment)}.")
    except (TrackingSettingError, mlflow_runs.TrackingError) as exc:
        st.error(f"`{shown_uri(uri)}`: {exc}")


def _redraw(kind: str, text: str, *, reset: bool = False) -> None:
    st.session_state[_MESSAGE] = (kind, text)
    if reset:
        st.session_state[_RESET] = True
    st.rerun()
