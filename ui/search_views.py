"""Hyperparameter searches on the pages: the Train page's Search mode (form, estimate, live status) and the
Evaluate page's Search view (Optuna's figures, the trials linked to their runs, promote, stop and resume)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core.errors import ProtolabError
from core.runs import registry
from core.search import searches
from core.search.space import default_space
from core.search.study import search_figures
from db import datasets as dataset_queries
from db import read_scope, session_scope
from db import searches as search_queries
from db.enums import SearchStatus
from ui.common import format_when

STATE_ICONS = {"complete": "✅", "pruned": "✂️", "failed": "❌", "stopped": "⏹️", "running": "⏳"}
FIGURES = (("history", "Optimisation history"), ("parallel", "Parallel coordinates"),
           ("importances", "Parameter importances"), ("slices", "Slices"))


def search_form(dataset_id: int) -> None:
    """Train page, Search mode: which model, the budget and the space; the whole search's estimate; Start."""
    with read_scope() as s:
        dataset = dataset_queries.get_dataset(s, dataset_id)
        s.expunge(dataset)
    kinds = [k for k in registry.all_kinds(dataset.task) if default_space(k) or k.options]
    if not kinds:
        st.info("No model of this task can be searched yet.")
        return
    kind = registry.get_kind(st.selectbox("Model", [k.name for k in kinds], key="search_model",
                                          format_func=lambda n: registry.get_kind(n).label))
    left, right = st.columns(2)
    trials = left.number_input("Trials", min_value=1, max_value=searches.MAX_TRIALS, value=20, key="search_trials")
    minutes = right.number_input("Minutes (0: no limit)", min_value=0.0, value=0.0, step=5.0, key="search_minutes")
    default = ";".join(_space_text(p) for p in default_space(kind))
    space = st.text_input("Search space (what to vary; empty: the model's declared ranges)", key="search_space",
                          placeholder=default or "learning_rate=log(1e-5,1e-3);epochs=int(1,5)",
                          help="NAME=log(a,b) | float(a,b) | int(a,b) | ilog(a,b) | choice(a,b,...), separated by ;")
    st.caption(f"Objective: validation {kind.headline.label}, never the test split · TPE sampler · the median "
               "pruner stops trials below the others at the same epoch · trial 0 runs the defaults.")
    b1, b2 = st.columns(2)
    budget = float(minutes) or None
    if b1.button("⏱ Estimate the search", key="search_estimate"):
        try:
            st.session_state["search_estimate_text"] = searches.estimate_search(
                dataset, kind.name, {}, int(trials), budget).text()
        except ProtolabError as exc:
            st.session_state["search_estimate_text"] = f"No estimate: {exc}"
    if text := st.session_state.get("search_estimate_text"):
        st.caption(f"⏱ {text}")
    if b2.button("▶ Start search", key="search_start", type="primary"):
        try:
            with session_scope() as s:
                search_id = searches.start_search(s, dataset=s.merge(dataset), model_kind=kind.name,
                                                  trials=int(trials), minutes=budget, space=space or None)
            st.session_state["search_id"] = search_id
            st.toast(f"Search #{search_id} started")
        except ProtolabError as exc:
            st.error(str(exc))
    search_id = st.session_state.get("search_id") or _latest(dataset_id)
    if search_id is not None:
        with read_scope() as s:
            active = search_queries.get_search(s, search_id).status.is_active
        st.subheader(f"Search #{search_id}")
        st.fragment(run_every="2s" if active else None)(search_status)(search_id, active)


def _space_text(p: Any) -> str:
    if p.type == "choice":
        return f"{p.name}=choice({','.join(map(str, p.choices))})"
    form = {"int": "ilog" if p.log else "int", "float": "log" if p.log else "float"}[p.type]
    return f"{p.name}={form}({p.low:g},{p.high:g})"


def _latest(dataset_id: int) -> int | None:
    with read_scope() as s:
        found = search_queries.list_searches(s, dataset_id)
        return found[0].id if found else None


def search_status(search_id: int, was_active: bool) -> None:
    """The search's state, its trials so far (each linked to its run) and stop / resume."""
    searches.reap_lost_searches()
    with read_scope() as s:
        summary = searches.summary(s, search_id)
    if was_active and not SearchStatus(summary["status"]).is_active:
        st.rerun()
    st.markdown(f"**{summary['status']}** · {summary['status_text'] or ''} · {summary['metric']} · "
                f"{'; '.join(summary['space'])}")
    if summary["error"]:
        st.error(summary["error"])
    trials_table(summary)
    controls(summary)


def trials_table(summary: dict[str, Any]) -> None:
    rows = summary["trials"]
    if not rows:
        st.caption("No trial yet: the first is being queued.")
        return
    best = (summary["best"] or {}).get("number")
    frame = pd.DataFrame([{"best": "⭐" if t["number"] == best else "", "trial": t["number"],
                           "state": f"{STATE_ICONS.get(t['state'], '')} {t['state']}", "value": t["value"],
                           "run": f"evaluate?run={t['run_id']}" if t["run_id"] else None,
                           **{k: v for k, v in t["params"].items()}} for t in rows])
    st.dataframe(frame, hide_index=True, key=f"trials_{summary['search_id']}", column_config={
        "run": st.column_config.LinkColumn("run", display_text=r"run=(\d+)"),
        "value": st.column_config.NumberColumn(summary["metric"], format="%.4f")})


def controls(summary: dict[str, Any]) -> None:
    search_id, status = summary["search_id"], SearchStatus(summary["status"])
    cols = st.columns(3)
    if status.is_active and cols[0].button("■ Stop search", key="stop_search"):
        with session_scope() as s:
            searches.stop_search(s, search_id)
        st.toast(f"Stopping search #{search_id}…")
    if status in (SearchStatus.STOPPED, SearchStatus.FAILED) and cols[1].button("↻ Resume search",
                                                                               key="resume_search"):
        with session_scope() as s:
            searches.resume_search(s, search_id)
        st.rerun()
    if summary["best"] is not None and cols[2].button("📌 Promote best", key="promote_best",
                                                       help="the best trial's run becomes the one the demos and "
                                                            "the API serve first"):
        try:
            with session_scope() as s:
                run_id = searches.promote_best(s, search_id)
            st.success(f"Run #{run_id} now serves the demos and the API.")
        except ProtolabError as exc:
            st.error(str(exc))


def search_picker() -> int | None:
    """Evaluate page: which search to look at (None when there is none)."""
    with read_scope() as s:
        found = {x.id: f"#{x.id} {x.name or x.model_kind} · {x.status.value} · {format_when(x.created_at)}"
                 for x in search_queries.list_searches(s)}
    if not found:
        st.info("No search yet: start one from the Train page (Search mode) or `protolab search`.")
        return None
    return st.selectbox("Search", list(found), format_func=found.get, key="search")


def search_view(search_id: int) -> None:
    """Evaluate page, Search view: Optuna's figures, the trials with the best marked, promote / stop / resume."""
    searches.reap_lost_searches()
    with read_scope() as s:
        summary = searches.summary(s, search_id)
    best = summary["best"]
    st.markdown(f"**{summary['model']}** · {summary['status']} · {summary['status_text'] or ''}")
    if best is not None:
        st.metric(f"Best {summary['metric']}", f"{best['value']:.4f}",
                  help=f"trial {best['number']}, run #{best['run_id']}: {best['params']}")
    figures = search_figures(search_id)
    tabs = st.tabs([label for _, label in FIGURES])
    for tab, (key, _) in zip(tabs, FIGURES, strict=True):
        figure = figures.get(key, figures.get("history"))
        if isinstance(figure, str):
            tab.caption(f"Not drawn: {figure}.")
        else:
            tab.plotly_chart(figure, key=f"search_{key}")
    trials_table(summary)
    controls(summary)
