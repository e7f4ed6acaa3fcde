"""The demo pages' "Use this model from code" expander: how to serve the shown run, curl and Python (httpx)
snippets for it, and a small API-key manager (create: shown once; revoke). Hidden in presentation mode."""

from __future__ import annotations

import streamlit as st

from core.api.keys import create_key, list_keys, revoke_key
from core.api.snippets import KEY_ENV, Snippets, predict_snippets, recommend_snippets
from core.errors import ProtolabError
from db import read_scope, session_scope
from db import runs as run_queries
from db.enums import RunStatus


def use_from_code(run_id: int, *, texts: list[str] | None = None, user: str | None = None,
                  present: bool = False) -> None:
    """The expander for a classification run (`texts`: the example to send) or a recommender run (`user`)."""
    if present:  # stakeholders see the demo, not the plumbing
        return
    snippets = predict_snippets(run_id, texts or ["Great service, thanks!"]) if user is None \
        else recommend_snippets(run_id, user=user, k=5)
    with st.expander("Use this model from code", icon="🔌"):
        _show_snippets(snippets)
        st.divider()
        _manage_keys()


def _show_snippets(snippets: Snippets) -> None:
    st.caption("Start the API on the machine that has the models (it keeps them loaded and batches requests):")
    st.code(snippets.serve, language="bash")
    st.caption(f"Then call it. The key is read from `{KEY_ENV}`, so it never sits in your code.")
    st.markdown("**curl**")
    st.code(snippets.curl, language="bash")
    st.markdown("**Python** (httpx)")
    st.code(snippets.python, language="python")
    st.caption("Every endpoint, with examples: `/docs` on the running server. Export the model instead with "
               "`protolab export --run ID --format onnx -o DIR`.")


def _manage_keys() -> None:
    st.markdown("**API keys**")
    with read_scope() as s:
        keys = list_keys(s, include_revoked=False)
        runs = {r.id: f"{r.id}: {r.name or r.model_kind}" for r in
                run_queries.list_runs(s, statuses=[RunStatus.COMPLETED], models_only=True)}
    if keys:
        st.caption(" · ".join(f"`{k.name}` (pl_{k.prefix}_…, {k.scope}, created {k.created_at:%Y-%m-%d})"
                              for k in keys))
    else:
        st.caption("No active key yet: every call to the API needs one.")
    if created := st.session_state.pop("_created_api_key", None):  # shown once, after the list above re-read
        message, key = created
        st.success(message)
        st.code(key, language=None)
    left, right = st.columns(2)
    with left:
        name = st.text_input("New key's name", key="api_key_name", placeholder="e.g. crm-app")
        chosen_runs = st.multiselect("Runs it may call", list(runs), key="api_key_runs", format_func=runs.get,
                                     placeholder="Every run", help="Leave empty for every run; the API answers "
                                     "403 for any other run.")
        read_only = st.checkbox("List runs only (no predictions)", key="api_key_read_only")
        if st.button("Create key", key="api_key_create", disabled=not name.strip()):
            try:
                with session_scope() as s:
                    info, key = create_key(s, name, run_ids=chosen_runs or None, read_only=read_only)
            except ProtolabError as exc:
                st.warning(str(exc))
            else:
                # Rerun so the list above includes it (it said "No active key yet" beside the new key).
                st.session_state["_created_api_key"] = (
                    f"Key `{info.name}` created ({info.scope}). Copy it now: it is not shown again.", key)
                st.rerun()
    with right:
        names = [k.name for k in keys]
        chosen = st.selectbox("Revoke a key", names, key="api_key_pick", index=None, placeholder="Pick a key",
                              disabled=not names)
        if st.button("Revoke", key="api_key_revoke", disabled=chosen is None):
            try:
                with session_scope() as s:
                    revoke_key(s, str(chosen))
            except ProtolabError as exc:
                st.warning(str(exc))
            else:
                st.success(f"Key `{chosen}` revoked: the API refuses it within seconds.")
