"""The Train page in Chromium while a run changes state: the Recent runs list follows the live panel (no
"queued" beside a "running" panel), and a browser reload comes back on the run's dataset and model."""

from __future__ import annotations

import time

import pytest

from db import runs as run_queries
from db import session_scope
from db.enums import RunStatus, TaskKind
from tests.e2e.conftest import Server, wait_for_text
from tests.e2e.test_journeys import no_errors, settle

pytestmark = pytest.mark.e2e


def _set(run_id: int, **changes) -> None:
    with session_scope() as s:
        run = run_queries.get_run(s, run_id)
        for name, value in changes.items():
            setattr(run, name, value)


def _row_text(page, run_id: int) -> str:  # noqa: ANN001
    row = page.locator('[data-testid="stMarkdownContainer"]').filter(has_text=f"#{run_id} lstm on")
    return " ".join(row.all_inner_texts())


def test_recent_runs_follow_the_panel_and_a_reload_keeps_the_form(server: Server, page,  # noqa: ANN001
                                                                   classification_dataset: int) -> None:
    # A run row as a worker would leave it between Start and its first report (no worker: we drive its status).
    with session_scope() as s:
        run_id = run_queries.create_run(s, dataset_id=classification_dataset, task=TaskKind.CLASSIFICATION,
                                        model_kind="lstm", config={"epochs": 1}).id
    try:
        page.goto(f"{server.url}/train?run={run_id}")
        wait_for_text(page, f"Run #{run_id}")
        settle(page)
        assert "queued" in _row_text(page, run_id)
        _set(run_id, status=RunStatus.RUNNING, status_text="epoch 1/1 · step 2/10")
        wait_for_text(page, "epoch 1/1 · step 2/10")  # the live panel has the new status
        deadline = time.time() + 15
        while time.time() < deadline and "running" not in _row_text(page, run_id):
            time.sleep(0.3)
        assert "running" in _row_text(page, run_id) and "queued" not in _row_text(page, run_id)

        page.reload()  # a new session: the form comes back on this run's dataset and model
        wait_for_text(page, f"Run #{run_id}")
        settle(page)
        assert page.get_by_role("combobox", name="Dataset", exact=True).input_value().startswith("tiny-sentiment")
        # The model radio is drawn after the dataset box: wait for it to come back checked on LSTM (CI once read
        # the radios before they were drawn and found none checked).
        checked = page.locator('[data-testid="stRadio"] label:has(input:checked)')
        checked.filter(has_text="LSTM").first.wait_for(state="visible", timeout=30_000)
        assert "model=lstm" in page.url and f"run={run_id}" in page.url
        no_errors(page, server)
    finally:
        _set(run_id, status=RunStatus.CANCELLED)
