"""Team mode on the pages: the worker fleet (Home) and where a run runs or waits (Train)."""

from __future__ import annotations

import streamlit as st

from core.runs import queue
from db import read_scope
from db import runs as run_queries
from ui.common import format_when

STATE_ICONS = {"online": "🟢", "draining": "🟡", "silent": "🟠", "lost": "🔴", "stopped": "⚪"}


def show_fleet() -> None:
    """The workers section of Home: each machine, its devices, what it runs, its last heartbeat."""
    with read_scope() as s:
        members = queue.fleet_overview(s)
    if not members:
        return  # one machine, no daemons: nothing to show
    st.subheader("Workers")
    for m in members:
        devices = ", ".join(f"{d} ({m.gpu_memory_mb[d] / 1024:.0f} GiB)" if d in m.gpu_memory_mb else d
                            for d in m.devices)
        doing = ", ".join(m.runs) if m.runs else "idle"
        st.markdown(f"{STATE_ICONS.get(m.state, '')} **{m.name}** on `{m.host}` · {devices} · {m.state} · "
                    f"{doing} · last heartbeat {format_when(m.heartbeat_at)}")


def show_placement(run_id: int) -> None:
    """Under a run on the Train page: which worker runs it, or its place in the queue and why it may wait."""
    with read_scope() as s:
        run = run_queries.get_run(s, run_id)
        if run is None:
            return
        where, problem = queue.run_placement(s, run)
    if where:
        st.caption(f"🖥️ {where[0].upper()}{where[1:]}")
    if problem:
        st.warning(f"This run cannot start yet: {problem}.")
