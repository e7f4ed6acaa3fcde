"""Choices kept in the page's URL (query parameters), so a reload or a shared link restores them, and the one
message for a `?run=N` that names no such run.

A browser reload starts a new Streamlit session (session_state is empty); the URL is what survives.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import streamlit as st

from db import read_scope
from db import runs as run_queries


def remember(name: str, value: Any) -> None:
    """Write `value` to the URL as ?name=value (only when it changed: each write is a browser history update)."""
    if st.query_params.get(name) != str(value):
        st.query_params[name] = str(value)


def remember_unless(name: str, value: Any, default: Any) -> None:
    """?name=value while `value` differs from `default`; the parameter goes away when it is back to the default
    (links stay short, and only what the user changed travels)."""
    if value is None or value == default:
        if name in st.query_params:
            del st.query_params[name]
    else:
        remember(name, value)


def url_text(name: str) -> str | None:
    """The URL's ?name= value as text, or None."""
    return st.query_params.get(name)


def run_config(run_id: int | None) -> tuple[str, dict[str, Any]] | None:
    """(model kind, config) of run `run_id`: the settings it was started with, for the form after a reload."""
    if run_id is None:
        return None
    with read_scope() as s:
        run = run_queries.get_run(s, run_id)
        return (run.model_kind, dict(run.config or {})) if run is not None else None


def url_index(name: str, options: Sequence[Any], fallback: Any = None) -> int:
    """Index in `options` of the URL's ?name= value (compared as text), else of `fallback`, else 0."""
    texts = [str(o) for o in options]
    for wanted in (st.query_params.get(name), fallback):
        if wanted is not None and str(wanted) in texts:
            return texts.index(str(wanted))
    return 0


def url_run_id() -> int | None:
    """The run the URL names (?run=N), or None when it names none or something that is not a number."""
    wanted = st.query_params.get("run")
    return int(wanted) if wanted and wanted.strip().isdigit() else None


def run_choice(run_id: int | None) -> tuple[int, str] | None:
    """(dataset id, model kind) of run `run_id`, to preset the Train form after a reload; None if no such run."""
    if run_id is None:
        return None
    with read_scope() as s:
        run = run_queries.get_run(s, run_id)
        return (run.dataset_id, run.model_kind) if run is not None else None


def missing_run_message(run_id: int | None, shown: Sequence[int], *, instead: str = "") -> str | None:
    """Why the URL's run is not shown ("does not exist", "has not completed"), or None when it is shown."""
    raw = st.query_params.get("run")
    if raw is None or (run_id is not None and run_id in shown):
        return None
    if run_id is None:
        return f"'{raw}' in the link is not a run number{instead}."
    with read_scope() as s:
        run = run_queries.get_run(s, run_id)
        status = run.status.value if run is not None else None
    if status is None:
        return f"Run #{run_id} does not exist (deleted, or a mistyped link){instead}."
    return f"Run #{run_id} has not completed (it is {status}){instead}."
