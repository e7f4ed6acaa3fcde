"""Streamlit helpers shared by pages: database start-up, status chips, formatting, access control."""

from __future__ import annotations

import logging
import math
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import streamlit as st

from core import auth
from core.auth import verify_password
from core.data.storage import remove_orphans
from core.formatting import format_duration as format_duration  # pages import it from here
from core.runs.jobs import start_watchdog
from core.settings import PASSWORD_HASH, load_settings
from db import init_db, read_scope
from db.enums import RunStatus

log = logging.getLogger(__name__)

STATUS_CHIPS = {
    RunStatus.QUEUED: ":gray-badge[⏳ queued]",
    RunStatus.RUNNING: ":blue-badge[▶ running]",
    RunStatus.COMPLETED: ":green-badge[✔ completed]",
    RunStatus.FAILED: ":red-badge[✖ failed]",
    RunStatus.CANCELLED: ":orange-badge[■ cancelled]",
}


@st.cache_resource(show_spinner=False)
def _migrated(url: str) -> bool:
    """Once per server process and database: migrate, sweep dataset folders no row owns (left by a
    crash or a rolled-back import), and start the dead-worker watchdog so a killed run is marked
    failed within seconds even when nobody has a page open."""

    init_db(url)
    with read_scope(url) as s:
        remove_orphans(s)
    start_watchdog(database_url=url)
    return True


_ROUTED = "_routed_by_app"  # session-state key app.py sets: this session's pages run under its navigation
APP_SCRIPT = Path(__file__).resolve().parent.parent / "app.py"  # the entry point beside pages/


def mark_routed() -> None:
    """app.py's first call on every run: the pages that follow run under its st.navigation."""
    st.session_state[_ROUTED] = True


def ensure_db() -> None:
    """Every page's first call: route through app.py, ask for the password, migrate the database once.

    Streamlit runs a page file directly (skipping app.py, its navigation and its password gate) when a URL like
    /evaluate is the first request a fresh server sees, because a `pages/` folder sits next to app.py. Calling
    st.navigation is Streamlit's public way out of that legacy mode (once called, the pages/ folder is ignored by
    the server process); the rerun then runs app.py, whose navigation serves the same page: every page's url_path
    is its file name, so the rerun's page is the one asked for. The password check below is a second lock.
    """
    # (AppTest runs a page file directly on purpose and routes pages itself, so there it is left alone.)
    if not st.session_state.get(_ROUTED) and not st.config.get_option("global.appTest"):
        # The same pages Streamlit's legacy mode lists, so the page asked for is among them (no "page not found").
        pages = sorted((APP_SCRIPT.parent / "pages").glob("*.py"))
        st.navigation([st.Page(APP_SCRIPT, default=True), *(st.Page(p, url_path=p.stem) for p in pages)],
                      position="hidden")
        st.rerun()
    # app.py marks a session public only in presentation mode with PROTOLAB_PUBLIC_PRESENTATION=1,
    # where it routes nothing but the demo pages.
    if not st.session_state.get("_public_presentation") and not require_password():
        st.stop()
    _migrated(load_settings().database_url)


def status_chip(status: RunStatus) -> str:
    return STATUS_CHIPS.get(status, status.value)


def format_when(ts: datetime | None) -> str:
    if ts is None:
        return "-"
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone().strftime("%Y-%m-%d %H:%M")


def configured_password_hash() -> str | None:
    value = PASSWORD_HASH.get()
    if value:
        return value
    try:
        return st.secrets.get("auth", {}).get("password_hash")
    except (FileNotFoundError, KeyError, AttributeError):  # no secrets.toml, or no [auth] in it: no password
        return None
    except Exception as exc:  # a secrets.toml that does not parse: say why its password is ignored
        log.warning("cannot read the password from .streamlit/secrets.toml: %s: %s", type(exc).__name__, exc)
        return None


def require_password() -> bool:
    """Ask for the password when one is configured; True once this browser session is signed in."""
    stored = configured_password_hash()
    if not stored or st.session_state.get("_authenticated"):
        return True
    st.title("🔒 Protolab")
    with st.form("login"):
        password = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        keys = _login_keys()
        throttle = auth.LOGIN_THROTTLE
        wait = throttle.wait_left(*keys)
        if wait > 0:  # refused unchecked: guessing gets no faster by clicking
            st.error(f"Too many wrong passwords: try again in {math.ceil(wait)} s.")
            return False
        if verify_password(password, stored):
            throttle.succeeded(*keys)
            st.session_state["_authenticated"] = True
            st.rerun()
        wait = throttle.failed(*keys)
        st.error("Wrong password." + (f" Wait {math.ceil(wait)} s before the next try." if wait else ""))
    return False


def _login_keys() -> tuple[str, ...]:
    """Who the wrong passwords count against: this browser session, and its client address when Streamlit
    knows it (not on localhost; behind a proxy it is the proxy's, shared by everyone behind it)."""
    session = st.session_state.setdefault("_login_session", secrets.token_hex(8))
    address = st.context.ip_address
    return (f"session {session}",) + ((f"address {address}",) if address else ())


def page_link(path: str, label: str, icon: str | None = None, query_params: dict[str, str] | None = None) -> None:
    """st.page_link that degrades to a hint when the page runs on its own (AppTest, no navigation).

    `query_params` open the target on something specific, e.g. {"run": "12"} for Evaluate.
    """
    try:
        st.page_link(path, label=label, icon=icon, query_params=query_params)
    except st.errors.StreamlitPageNotFoundError:
        st.caption(f"→ {label}")


def empty_state(message: str, *, present: bool) -> None:
    """Say honestly that there is nothing to show yet and where to start, then stop the page.

    In presentation mode stakeholders get the message without links into the workbench.
    """
    st.info(message)
    if not present:
        page_link("pages/datasets.py", "Go to Datasets", "📂")
        page_link("pages/train.py", "Go to Train", "🏋️")
    st.stop()


def model_card(card: Any) -> None:
    """A demo's plain-language model card (core.evaluation.cards) in presentation mode: what it does and how good
    it is in words, the technical line one click away."""
    st.subheader(card.title)
    st.markdown(f"{card.what}  \n**{card.how_good}**")
    with st.expander("Technical details"):
        st.caption(card.technical)
