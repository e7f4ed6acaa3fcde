"""The demo pages' "Use this model from code" expander under AppTest: snippets for the shown run, keys from the UI."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.api.keys import list_keys, verify_key
from db import read_scope
from tests.test_recommenders import completed_run

PAGES = Path(__file__).resolve().parents[1] / "pages"


def _page(name: str, **state) -> AppTest:
    at = AppTest.from_file(str(PAGES / name), default_timeout=180)
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def _codes(at: AppTest) -> str:
    return "\n".join(c.value for c in at.code)


def test_sentiment_page_shows_snippets_and_manages_keys(make_served_run) -> None:
    run_id = make_served_run("tfidf")
    at = _page("sentiment.py")
    assert not at.exception, at.exception
    assert [e.label for e in at.expander] == ["Use this model from code"]
    codes = _codes(at)
    assert f"/v1/runs/{run_id}/predict" in codes and "httpx.post(" in codes
    assert f"protolab serve --run {run_id}" in codes

    at.text_input(key="api_key_name").input("crm-app").run()
    at.button(key="api_key_create").click().run()
    assert not at.exception, at.exception
    assert "not shown again" in at.success[0].value
    captions = " ".join(c.value for c in at.caption)
    assert "No active key yet" not in captions and "`crm-app`" in captions  # listed at once
    key = next(c.value for c in at.code if c.value.startswith("pl_"))
    with read_scope() as s:
        assert verify_key(s, key).name == "crm-app"

    at = _page("sentiment.py")  # a fresh visit: the key is listed, never shown again
    assert "pl_" not in _codes(at).replace("protolab", "")
    at.selectbox(key="api_key_pick").select("crm-app").run()
    at.button(key="api_key_revoke").click().run()
    assert not at.exception and "revoked" in at.success[0].value
    with read_scope() as s:
        assert verify_key(s, key) is None and list_keys(s, include_revoked=False) == []


def test_recommend_page_snippet_uses_a_known_user(interactions_dataset: int) -> None:
    run_id = completed_run(interactions_dataset, "itemknn")
    at = _page("recommendations.py")
    assert not at.exception, at.exception
    codes = _codes(at)
    assert f"/v1/runs/{run_id}/recommend" in codes and '"user": "u' in codes


def test_presentation_mode_hides_it(make_served_run) -> None:
    make_served_run("tfidf")
    at = _page("sentiment.py", present=True)
    assert not at.exception and not [e for e in at.expander if e.label == "Use this model from code"]
    assert not at.code  # no snippet, no serve command in front of the audience
