"""A first visit in a real browser: the Home page renders from a cold server, navigation works."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Server, wait_for_text

pytestmark = pytest.mark.e2e


def test_home_renders_and_navigation_reaches_every_page(server: Server, page) -> None:  # noqa: ANN001
    page.goto(server.url)
    wait_for_text(page, "Turn a dataset into a demo")
    wait_for_text(page, "Where it runs")
    assert "protolab.db" in page.content()
    for label in ("Datasets", "Train", "Evaluate", "Sentiment demo", "Recommendations demo"):
        page.get_by_role("link", name=label).first.click()
        page.locator("h1").first.wait_for()
        assert "Traceback" not in page.content()
    assert "Error" not in server.log()


def test_presentation_mode_hides_the_workbench(server: Server, page) -> None:  # noqa: ANN001
    page.goto(server.url + "/?present=1")
    wait_for_text(page, "Sentiment")
    links = page.get_by_role("link").all_inner_texts()
    assert not any("Train" in text or "Datasets" in text for text in links)
