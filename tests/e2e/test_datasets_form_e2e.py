"""The Datasets upload form in Chromium: a second file gets its own columns and name, not the first file's
(the browser keeps a widget's value across reruns while its key stays the same, AppTest does not)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.e2e.conftest import Server, wait_for_text
from tests.e2e.test_journeys import no_errors, settle, upload

pytestmark = pytest.mark.e2e


def _combo(page, label: str) -> str:  # noqa: ANN001
    return page.get_by_role("combobox", name=label, exact=True).first.input_value()


def test_a_second_upload_gets_its_own_columns_and_name(server: Server, page, tmp_path: Path) -> None:  # noqa: ANN001
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    labels = ["positive", "negative", "neutral"]
    pd.DataFrame({"id": range(30), "body": [f"review {i}: the thing was {labels[i % 3]}" for i in range(30)],
                  "stars": [labels[i % 3] for i in range(30)]}).to_csv(first, index=False)
    pd.DataFrame({"review": [f"long enough review text {i}" for i in range(30)],
                  "sentiment": ["good", "bad"] * 15}).to_csv(second, index=False)
    page.goto(server.url + "/datasets")
    wait_for_text(page, "Upload your own")
    upload(page, first)
    wait_for_text(page, "Checks passed")
    assert (_combo(page, "Text column"), _combo(page, "Label column")) == ("body", "stars")
    page.get_by_role("button", name="Save dataset").first.click()
    wait_for_text(page, "Saved 'first'")
    page.get_by_role("tab", name="Your datasets").click()
    settle(page)
    page.get_by_role("tab", name="Add a dataset").click()
    upload(page, second)
    wait_for_text(page, "second.csv:")
    settle(page)
    assert (_combo(page, "Text column"), _combo(page, "Label column")) == ("review", "sentiment")
    assert page.get_by_label("Dataset name", exact=True).first.input_value() == "second"
    page.get_by_role("button", name="Save dataset").first.click()
    wait_for_text(page, "Saved 'second'")
    assert page.get_by_text("already exists").count() == 0
    no_errors(page, server)
