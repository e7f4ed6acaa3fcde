"""Presentation mode in a real browser: it survives clicking another demo tab and reloading the page."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Server, wait_for_text

pytestmark = pytest.mark.e2e


def _workbench_links(page) -> list[str]:  # noqa: ANN001
    return [t for t in page.get_by_role("link").all_inner_texts() if any(w in t for w in ("Train", "Datasets",
                                                                                            "Evaluate", "Home"))]


def test_presentation_mode_survives_a_tab_click_and_a_reload(server: Server, page) -> None:  # noqa: ANN001
    page.goto(server.url + "/?present=1")
    wait_for_text(page, "Sentiment demo")
    assert _workbench_links(page) == []
    page.get_by_role("link", name="Recommendations demo").first.click()
    page.locator("h1").filter(has_text="Recommendations demo").first.wait_for()
    page.wait_for_function("() => new URLSearchParams(location.search).get('present') === '1'", timeout=15_000)
    assert "/recommendations" in page.url
    page.reload()  # a new session: only the URL remembers the mode
    page.locator("h1").filter(has_text="Recommendations demo").first.wait_for()
    page.wait_for_timeout(1000)  # let the navigation draw, so a leak would be on screen
    assert "present=1" in page.url
    assert _workbench_links(page) == []
    assert page.locator("[data-testid='stSidebarNav']").count() == 0 or \
        not page.locator("[data-testid='stSidebarNav']").first.is_visible()
