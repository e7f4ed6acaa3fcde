"""Labelling tag sets in Chromium against a real server: upload texts without labels, choose "several tags per
text" for the label set, toggle tags with the number keys and confirm each set with Enter (an empty one too)."""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import Server, wait_for_text
from tests.e2e.test_journeys import click, no_errors, settle
from tests.e2e.test_labelling_journey import shown_text, upload_unlabelled
from tests.test_labelling_tags import ticket_frame

pytestmark = pytest.mark.e2e


def press_until_next_text(page, key: str) -> None:  # noqa: ANN001
    text = shown_text(page)
    page.locator("body").press(key)
    deadline = time.monotonic() + 30
    while shown_text(page) == text and time.monotonic() < deadline:
        time.sleep(0.2)
    assert shown_text(page) != text, f"{key} did not confirm the tags of {text!r}"


def test_tags_toggle_with_number_keys_and_enter_confirms(server: Server, page, tmp_path) -> None:  # noqa: ANN001
    csv = tmp_path / "tickets.csv"
    ticket_frame(30).to_csv(csv, index=False)
    upload_unlabelled(page, server, csv, "tickets", rows=30)

    page.get_by_role("link", name="Label").first.click()
    wait_for_text(page, "Define the label set first")
    page.get_by_text("several tags per text").first.click()
    settle(page)
    page.locator('[data-testid="stTextArea"] textarea').first.fill("billing\nbug\ndelivery")
    click(page, "Save label set")
    wait_for_text(page, "☐ 1 · billing")
    page.locator("body").press("1")
    wait_for_text(page, "☑ 1 · billing")
    page.locator("body").press("3")
    wait_for_text(page, "Confirm 2 tags (Enter)")
    press_until_next_text(page, "Enter")
    wait_for_text(page, "1 of 30 texts labelled")
    wait_for_text(page, "Confirm: no tag (Enter)")  # the next text starts with no tag ticked
    press_until_next_text(page, "Enter")
    wait_for_text(page, "2 of 30 texts labelled")
    no_errors(page, server)
