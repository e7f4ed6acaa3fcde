"""A first visit in a real browser: the Home page renders from a cold server, navigation works."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Server, wait_for_text

pytestmark = pytest.mark.e2e


def test_home_renders_and_navigation_reaches_every_page(server: Server, page) -> None:  # noqa: ANN001
    page.goto(server.url)
    wait_for_text(page, "Turn a dataset into a demo")
    wait_for_text(page, "Where it runs")
    wait_for_text(page, "protolab.db")  # the database in use, shown redacted
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


def test_a_deep_link_as_first_request_still_goes_through_the_password_gate(tmp_path, page) -> None:  # noqa: ANN001
    """Streamlit runs pages/x.py directly for a fresh server's first /x request; it must not skip the gate."""
    from core.auth import hash_password
    from tests.e2e.conftest import start_server

    srv = start_server(tmp_path / "home", extra_env={"PROTOLAB_PASSWORD_HASH": hash_password("open sesame")})
    try:
        page.goto(srv.url + "/evaluate")  # the very first request this server sees
        wait_for_text(page, "Sign in")
        page.wait_for_timeout(1500)
        body = page.inner_text("body")
        assert "No completed runs yet" not in body and "Evaluate" not in body.split("Sign in")[-1]
        page.get_by_label("Password", exact=True).fill("open sesame")
        page.get_by_role("button", name="Sign in").click()
        # app.py's own navigation replaces the file list Streamlit drew for the legacy page
        page.get_by_role("link", name="Sentiment demo", exact=True).first.wait_for()
        page.locator("h1").filter(has_text="Evaluate").first.wait_for()  # and the page asked for
    finally:
        srv.stop()
