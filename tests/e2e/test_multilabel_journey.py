"""Multi-label text in Chromium (issue 26's done-when), against a real `streamlit run app.py`: a CSV whose tags are
`|`-delimited uploads with zero fixes (the Datasets page guesses the task and the delimiter), TF-IDF trains on the
Train page, Evaluate shows the tag scores and the texts with missing or extra tags, and the Tagging demo gives a
text its tags as chips."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import Server, wait_for_text
from tests.e2e.test_journeys import RUN_TIMEOUT_MS, click, no_errors, settle, type_into, upload_from_home
from tests.test_multilabel_runs import write_tickets

pytestmark = pytest.mark.e2e


def test_tag_sets_upload_train_evaluate_and_tag(server: Server, page, tmp_path: Path) -> None:  # noqa: ANN001
    csv = write_tickets(tmp_path / "support tickets.csv", n=120)

    # 1. Datasets: the tag column is recognised (multi-label, '|'), the checks pass with nothing to fix; save.
    upload_from_home(page, server, csv)
    wait_for_text(page, "Checks passed: 120 rows")
    type_into(page, "Dataset name", "tickets")
    click(page, "Save dataset")
    wait_for_text(page, "Saved 'tickets'")
    no_errors(page, server)

    # 2. Train: the TF-IDF baseline, to completion (its tag figures on the live panel).
    page.goto(server.url + "/train")
    page.get_by_role("combobox", name="Dataset", exact=True).wait_for()
    page.get_by_text("TF-IDF + logistic regression (fast baseline)").click()
    settle(page)
    click(page, "▶ Start")
    wait_for_text(page, "Run #1")
    wait_for_text(page, "Test micro-F1", timeout_ms=RUN_TIMEOUT_MS)
    wait_for_text(page, "completed")
    no_errors(page, server)

    # 3. Evaluate: the tag metrics, the per-tag chart and the texts whose tags it got wrong.
    page.goto(server.url + "/evaluate")
    wait_for_text(page, "samples-F1")
    wait_for_text(page, "Per tag (support in brackets)")
    wait_for_text(page, "Texts with missing or extra tags")
    no_errors(page, server)

    # 4. Tagging demo: a text about a refund and a crash gets both tags as chips.
    page.goto(server.url + "/tagging")
    area = page.locator('[data-testid="stTextArea"] textarea').first
    area.wait_for()
    area.fill("refund invoice crash broken the app")  # two words of each tag, as the tickets are written
    area.press("Control+Enter")
    settle(page)
    wait_for_text(page, "Why this tag?")
    chips = page.locator("span").filter(has_text="(≥ ")
    shown = " ".join(chips.all_inner_texts())
    assert "billing" in shown and "bug" in shown, shown
    no_errors(page, server)
