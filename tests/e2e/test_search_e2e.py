"""The Search view (Evaluate) in Chromium, on a real 2-trial TF-IDF search run by `protolab search --wait` against
the server's data folder: Optuna's figures are drawn as plotly charts in their tabs, and "Promote best" pins the
best trial's run for the demos and the API."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import sentiment_frame
from tests.e2e.conftest import Server, wait_for_text
from tests.e2e.test_data_health_e2e import protolab
from tests.e2e.test_journeys import click, no_errors, settle

pytestmark = pytest.mark.e2e


def test_the_search_view_draws_optunas_figures_and_promotes_the_best(server: Server, page,  # noqa: ANN001
                                                                      tmp_path: Path) -> None:
    csv = tmp_path / "reviews.csv"
    sentiment_frame(120, seed=3).to_csv(csv, index=False)
    protolab(server, "datasets", "add", str(csv), "--name", "reviews", "--task", "classification")
    out = json.loads(protolab(server, "search", "--dataset", "reviews", "--model", "tfidf", "--trials", "2",
                              "--wait", "--json"))
    assert out["status"] == "completed" and out["best"] is not None, out

    page.goto(server.url + "/evaluate")
    page.locator("[data-testid='stButtonGroup'] button").filter(has_text="Search").first.click()
    settle(page)
    wait_for_text(page, f"Best {out['metric']}")
    # The history is in the first tab; each other tab draws its own figure when opened. Each chart is found by its
    # own title: while the page reruns into Search mode, the One-run view's charts can still be on screen (CI once
    # read the per-class bars as the first visible chart).
    page.locator(".js-plotly-plot").filter(visible=True).filter(has_text="Optimization History Plot").first.wait_for(
        timeout=30_000)
    page.get_by_role("tab", name="Parallel coordinates").click()
    page.locator(".js-plotly-plot").filter(visible=True).filter(has_text="Parallel Coordinate Plot").first.wait_for(
        timeout=30_000)
    no_errors(page, server)

    click(page, "📌 Promote best")
    wait_for_text(page, f"Run #{out['best']['run_id']} now serves the demos and the API.")
    with sqlite3.connect(server.home / "protolab.db") as db:
        pinned = [row[0] for row in db.execute("SELECT id FROM runs WHERE pinned")]
    assert pinned == [out["best"]["run_id"]]
