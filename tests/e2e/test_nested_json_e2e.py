"""A help-desk export in nested JSON Lines, uploaded in Chromium: the Datasets page offers the nested fields as
dotted columns, guesses the ticket body and the label inside "meta", and saves a dataset with the right classes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import Server, wait_for_text
from tests.e2e.test_journeys import click, no_errors, settle, type_into, upload

pytestmark = pytest.mark.e2e
LABELS = ["billing", "bug", "feature"]


def test_nested_json_upload_guesses_dotted_columns(server: Server, page, tmp_path: Path) -> None:  # noqa: ANN001
    path = tmp_path / "tickets.jsonl"
    path.write_text("\n".join(json.dumps(
        {"id": i, "ticket": {"subject": f"ticket {i}", "body": f"customer {i} writes about a {LABELS[i % 3]} problem"},
         "meta": {"label": LABELS[i % 3], "priority": ["low", "high"][i % 2]}}) for i in range(60)))

    page.goto(server.url + "/datasets")
    wait_for_text(page, "Upload your own")
    settle(page)
    upload(page, path)
    wait_for_text(page, "Checks passed")
    assert page.get_by_role("combobox", name="Text column", exact=True).input_value() == "ticket.body"
    assert page.get_by_role("combobox", name="Label column", exact=True).input_value() == "meta.label"
    wait_for_text(page, "nested objects flattened to dotted columns")
    type_into(page, "Dataset name", "nested tickets")
    click(page, "Save dataset")
    wait_for_text(page, "Saved 'nested tickets'")
    no_errors(page, server)
