"""Presentation mode in a real browser: it survives clicking another demo tab and reloading the page."""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import Server, start_server, wait_for_text

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
    # The top navigation has drawn (its demo links are there), so a workbench link would be on screen too.
    page.get_by_role("link", name="Sentiment demo").first.wait_for()
    assert "present=1" in page.url
    assert _workbench_links(page) == []
    assert page.locator("[data-testid='stSidebarNav']").count() == 0


@pytest.mark.parametrize("path,heading", [("/sentiment", "Sentiment demo"),
                                          ("/recommendations", "Recommendations demo")])
def test_a_demo_pages_own_url_opens_in_presentation_mode(server: Server, page, path: str,  # noqa: ANN001
                                                         heading: str) -> None:
    page.goto(server.url + path + "?present=1")  # the first request this fresh server sees
    page.locator("h1").filter(has_text=heading).first.wait_for()
    page.wait_for_timeout(1500)  # let a "Page not found" dialog or a redirect arrive if there is one
    assert page.get_by_text("Page not found").count() == 0
    assert page.url == server.url + path + "?present=1"
    assert _workbench_links(page) == []
    page.reload()
    page.locator("h1").filter(has_text=heading).first.wait_for()
    page.wait_for_timeout(1000)
    assert page.get_by_text("Page not found").count() == 0 and page.url == server.url + path + "?present=1"


def test_a_workbench_url_in_presentation_mode_shows_no_workbench_page(server: Server, page) -> None:  # noqa: ANN001
    page.goto(server.url + "/train?present=1")
    page.locator("h1").filter(has_text="Sentiment demo").first.wait_for()
    page.wait_for_timeout(1000)
    assert page.locator("h1").filter(has_text="Train").count() == 0
    assert _workbench_links(page) == []


def test_presentation_mode_shows_the_run_pinned_for_demos(protolab_home, make_served_run, page) -> None:  # noqa: ANN001
    """A weak run stays out of presentation mode until someone pins it on purpose; then it is the one shown."""
    from db import runs as run_queries
    from db import session_scope

    good, weak = make_served_run("tfidf", macro_f1=0.9), make_served_run("tfidf", macro_f1=0.3)
    report = {"n": 60, "labels": ["negative", "positive"], "majority_rate": 0.5, "accuracy": 0.5, "macro_f1": 1 / 3}
    with session_scope() as s:  # majority-class level: weak
        run_queries.get_run(s, weak).metrics = {"accuracy": 0.5, "macro_f1": 1 / 3, "reports": {"test": report}}
    server = start_server(protolab_home)
    try:
        def shown_run() -> str:
            page.goto(server.url + "/?present=1")
            wait_for_text(page, "Sentiment demo")
            page.get_by_text("Technical details").first.click()
            line = page.get_by_text(re.compile(r"served on")).first  # the technical line, in the expander
            line.wait_for()
            return line.inner_text()

        assert f"#{good} " in shown_run()
        with session_scope() as s:
            run_queries.set_pinned(s, run_queries.get_run(s, weak), True)
        technical = shown_run()
        assert f"#{weak} " in technical and "pinned for demos" in technical
    finally:
        server.stop()
