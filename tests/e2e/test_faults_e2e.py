"""Faults and the password gate against the real server in Chromium: a server killed mid-run, a busy
SQLite under two runs and three browser sessions, and direct page URLs on a password-protected server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from core.auth import hash_password
from db import runs as run_queries
from db import session_scope
from db.enums import RunStatus
from tests.e2e.conftest import ROOT, Server, start_server, wait_for_text
from tests.test_faults import _spawn, _status, _wait_until

pytestmark = pytest.mark.e2e

# Starts one run the way a page does (core.runs.jobs.start_run), with a ~15 s executor, then idles like a server.
LAUNCHER = (
    "import sys, time\n"
    "from core.runs import jobs\n"
    "from tests.helpers import queue_run\n"
    "from tests.test_faults import WORKER_SCRIPT\n"
    "jobs.worker_command = lambda run_id, gpus=1: [sys.executable, '-c', WORKER_SCRIPT, str(run_id),\n"
    "                                              'tests.test_faults:medium_executor']\n"
    "print(queue_run(dataset_id=int(sys.argv[1]), model_kind='tfidf', config={'device': 'cpu'}), flush=True)\n"
    "time.sleep(600)\n"
)


def _h1s(page, settle_s: float = 1.5) -> list[str]:  # noqa: ANN001
    page.locator("h1").first.wait_for(timeout=30_000)
    time.sleep(settle_s)  # let the script run finish, so a page that renders after the gate would show
    return page.locator("h1").all_inner_texts()


@pytest.fixture(scope="module")
def locked_server(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    # One server for every path: nobody signs in, so each request meets the gate afresh.
    srv = start_server(tmp_path_factory.mktemp("locked") / "home",
                       extra_env={"PROTOLAB_PASSWORD_HASH": hash_password("open sesame")})
    yield srv
    srv.stop()


@pytest.mark.parametrize("path", ["/train", "/evaluate", "/datasets", "/sentiment", "/recommendations", "/"])
def test_a_fresh_locked_server_asks_for_the_password_on_every_direct_url(locked_server: Server, browser,  # noqa: ANN001
                                                                         path: str) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(locked_server.url + path)
        assert _h1s(page) == ["🔒 Protolab"], f"{path} rendered without the password"
    finally:
        context.close()


def test_a_run_survives_a_server_crash_and_its_progress_shows_after_the_restart(
        server: Server, page, classification_dataset: int) -> None:  # noqa: ANN001
    """A run started from a server process; the server dies with its whole process group (SIGKILL);
    a server started afterwards shows the same run still making progress, then completed."""
    # The launcher stands in for the crashed server: its own session, start_run called inside it.
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(classification_dataset)], cwd=ROOT,
                                env={**server.env, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True,
                                start_new_session=True)
    try:
        run_id = int(launcher.stdout.readline())
        _wait_until(lambda: _status(run_id)[1] > 0.05, 60, "the run to report progress")
        os.killpg(launcher.pid, signal.SIGKILL)  # the "server" and everything in its process group
        launcher.wait(10)
        before = _status(run_id)[1]
        page.goto(server.url)
        wait_for_text(page, f"#{run_id}")
        wait_for_text(page, "running")
        # The Train page's live panel (a 1 s fragment) shows the worker's progress text moving on.
        page.goto(server.url + f"/train?run={run_id}")
        wait_for_text(page, f"Run #{run_id}")
        progress = page.locator('[data-testid="stProgress"]').first
        first_text = progress.inner_text()
        assert "step" in first_text, first_text
        _wait_until(lambda: progress.inner_text() != first_text, 30, "the progress text to change on the page")
        assert _status(run_id)[1] > before
        wait_for_text(page, "Test macro-F1", timeout_ms=60_000)  # completed: the panel shows the final metrics
        assert _status(run_id)[0] is RunStatus.COMPLETED
        page.goto(server.url)
        wait_for_text(page, "completed")
        assert "Traceback" not in page.content()
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
    with session_scope() as s:
        run = run_queries.get_run(s, run_id)
        assert run.metrics["macro_f1"] == 0.66 and run.error is None


def test_two_runs_and_three_browser_sessions_never_see_a_locked_database(
        server: Server, browser, classification_dataset: int) -> None:  # noqa: ANN001
    from tests.test_faults import _queued_run

    run_ids = [_queued_run(classification_dataset), _queued_run(classification_dataset)]
    workers = [_spawn(r, "medium_executor", PROTOLAB_MAX_RUNS_PER_DEVICE="2") for r in run_ids]
    contexts = [browser.new_context() for _ in range(3)]
    pages = [c.new_page() for c in contexts]
    paths = ["/", "/evaluate", "/sentiment"]
    rounds_while_running = 0
    try:
        _wait_until(lambda: all(_status(r)[0] is RunStatus.RUNNING for r in run_ids), 60, "both runs to start")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not all(_status(r)[0] is RunStatus.COMPLETED for r in run_ids):
            # The three sessions load at once (each goto returns before its script run ends).
            for pg, path in zip(pages, paths, strict=True):
                pg.goto(server.url + path, wait_until="commit")
            for pg, path in zip(pages, paths, strict=True):
                pg.locator("h1").first.wait_for(timeout=30_000)
                content = pg.content()
                assert "locked" not in content.lower() and "OperationalError" not in content, path
            rounds_while_running += 1
        for w in workers:
            assert w.wait(60) == 0
    finally:
        for c in contexts:
            c.close()
        for w in workers:
            if w.poll() is None:
                w.kill()
    assert all(_status(r)[0] is RunStatus.COMPLETED for r in run_ids)
    assert rounds_while_running >= 1
    log = server.log()
    assert "locked" not in log.lower() and "OperationalError" not in log


def test_a_first_visit_straight_to_a_page_url_still_goes_through_app_py(server: Server, page) -> None:  # noqa: ANN001
    """Without any password: a fresh server whose first visitor opens /train directly must still run app.py
    (its navigation, page titles, presentation mode), not pages/train.py on its own."""
    page.goto(server.url + "/train")
    _h1s(page)
    links = page.get_by_role("link").all_inner_texts()
    assert any("Home" in text for text in links), links  # app.py's navigation, not file names (app, home, ...)
