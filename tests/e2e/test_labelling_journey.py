"""From texts without labels to a demo, in Chromium against a real server: upload an unlabelled CSV, define the
label set, label 24 texts with the keyboard shortcuts on the Label page, let the background SetFit run finish,
restart the server (the labels and the model are still there), then ask the Sentiment demo about a sentence.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import POSITIVE, sentiment_frame
from tests.e2e.conftest import Server, start_server, wait_for_text
from tests.e2e.test_journeys import analyse_sentence, click, no_errors, settle, type_into, upload_from_home

pytestmark = pytest.mark.e2e
RETRAIN_TIMEOUT_MS = 420_000  # worker start-up, the encoder's load and 12 SetFit steps on a busy, shared 2-core box
LABELS = 24


def shown_text(page) -> str:  # noqa: ANN001
    return page.locator(".st-key-label_text").first.inner_text().strip()


def label_with_keys(page, n: int) -> dict[str, str]:  # noqa: ANN001
    """Label n texts by pressing 1 (positive) or 2 (negative), judging each by its cue words."""
    given = {}
    for _ in range(n):
        text = shown_text(page)
        key = "1" if any(word in text.split() for word in POSITIVE) else "2"
        page.locator("body").press(key)
        deadline = time.monotonic() + 30
        while shown_text(page) == text and time.monotonic() < deadline:
            time.sleep(0.2)
        assert shown_text(page) != text, f"key {key} did not label {text!r}"
        given[text] = key
    settle(page)
    return given


def upload_unlabelled(page, server: Server, csv: Path, name: str, rows: int) -> None:  # noqa: ANN001
    """On the Datasets page: upload a CSV of texts only ("No labels yet" starts ticked) and save it as `name`."""
    upload_from_home(page, server, csv)
    assert page.get_by_role("checkbox", name="No labels yet (label the texts on the Label page)").is_checked()
    wait_for_text(page, f"Checks passed: {rows} rows")
    type_into(page, "Dataset name", name)
    click(page, "Save dataset")
    wait_for_text(page, f"Saved '{name}'")
    no_errors(page, server)


@pytest.fixture
def server(tmp_path: Path, tiny_text_encoder: Path) -> Iterator[Server]:
    """The app with its background SetFit retrains starting from a tiny encoder (PROTOLAB_LABEL_MODEL): the
    journey is about labels reaching a model and the demo, not MiniLM's quality, and MiniLM's 12 SetFit steps were
    most of its two minutes on a 2-core box."""
    srv = start_server(tmp_path / "home", extra_env={"PROTOLAB_LABEL_MODEL": str(tiny_text_encoder)})
    yield srv
    srv.stop()


def test_unlabelled_csv_to_labels_to_setfit_to_demo(server: Server, page, tmp_path: Path) -> None:  # noqa: ANN001
    csv = tmp_path / "app reviews.csv"
    sentiment_frame(60, seed=7).rename(columns={"text": "comment"})[["comment"]].to_csv(csv, index=False)

    # 1. Datasets: upload texts only; "No labels yet" starts ticked for a file with one text column; save.
    upload_unlabelled(page, server, csv, "app reviews", rows=60)

    # 2. Label: the label set, then 24 texts with the keyboard; the 24th label starts a background SetFit run.
    page.get_by_role("link", name="Label").first.click()
    wait_for_text(page, "Define the label set first")
    page.locator('[data-testid="stTextArea"] textarea').first.fill("positive: likes it\nnegative: does not")
    click(page, "Save label set")
    wait_for_text(page, "1 · positive")
    label_with_keys(page, LABELS)
    wait_for_text(page, f"{LABELS} of 60 texts labelled")
    wait_for_text(page, "model suggests", timeout_ms=RETRAIN_TIMEOUT_MS)  # the retrain completed and scored all
    no_errors(page, server)

    # 3. A server restart loses nothing: the labels and the model's suggestions are read back from the database.
    server.stop()
    again = start_server(server.home, extra_env={"PROTOLAB_LABEL_MODEL": server.env["PROTOLAB_LABEL_MODEL"]})
    try:
        page.goto(again.url + "/label")
        wait_for_text(page, f"{LABELS} of 60 texts labelled", timeout_ms=60_000)
        wait_for_text(page, "model suggests")

        # 4. The SetFit run serves the Sentiment demo.
        page.goto(again.url + "/sentiment")
        prediction = analyse_sentence(page, "I love this wonderful product, it is perfect and amazing")
        assert "positive" in prediction, prediction
        no_errors(page, again)
    finally:
        again.stop()
