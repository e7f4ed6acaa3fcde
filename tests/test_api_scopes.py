"""Key scopes: a key may call every run or a list of runs, and may predict or only list; 403 outside its scope,
decided before the body is read. On a real `protolab serve`, from the CLI, the keys UI and an old database."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from streamlit.testing.v1 import AppTest

from core.api.keys import create_key, verify_key
from core.cli import main
from db import api_keys as key_queries
from db import dispose_engines, get_engine, read_scope, session_scope, upgrade_database
from tests.test_recommenders import completed_run
from tests.test_serve_cli import _free_port, _start, _stop, _wait_ready

PAGES = Path(__file__).resolve().parents[1] / "pages"


def _created(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert main(["keys", "create", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _refused(response: httpx.Response, code: str) -> str:
    assert response.status_code == 403, response.text
    assert response.json()["error"] == code
    return response.json()["detail"]


def test_scoped_keys_on_a_real_server(make_served_run, interactions_dataset: int,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    mine, other, recs = make_served_run("tfidf"), make_served_run("tfidf"), completed_run(interactions_dataset,
                                                                                         "popularity")
    scoped = _created(capsys, "--name", "crm", "--runs", f"{mine},{recs}")
    lister = _created(capsys, "--name", "dashboard", "--read-only")
    every = _created(capsys, "--name", "ops")
    assert scoped["runs"] == sorted([mine, recs]) and scoped["read_only"] is False
    assert lister["runs"] is None and lister["read_only"] is True and every["runs"] is None
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _start(["--port", str(port)])
    try:
        _wait_ready(proc, url)

        def call(key: dict, run_id: int | str, body: object = None, verb: str = "predict") -> httpx.Response:
            return httpx.post(f"{url}/v1/runs/{run_id}/{verb}", json=body or {"texts": ["love it"]}, timeout=30,
                              headers={"Authorization": f"Bearer {key['key']}"})

        assert call(scoped, mine).status_code == 200
        assert call(scoped, recs, {"user": "u0"}, "recommend").status_code == 200
        detail = _refused(call(scoped, other), "run_out_of_scope")
        assert f"runs {min(mine, recs)}, {max(mine, recs)} only" in detail and str(other) in detail
        _refused(call(scoped, other, {"not": "valid"}), "run_out_of_scope")  # the scope before the body
        for spelling, verb in ((f"+{other}", "predict"), (f"0{other}", "predict"), (other, "predict/")):
            _refused(call(scoped, spelling, verb=verb), "run_out_of_scope")  # all of them name that run
        assert call(every, other).status_code == 200

        _refused(call(lister, mine), "read_only_key")
        _refused(call(lister, recs, {"user": "u0"}, "recommend"), "read_only_key")
        listed = httpx.get(f"{url}/v1/runs", headers={"Authorization": f"Bearer {lister['key']}"}, timeout=30)
        assert sorted(r["id"] for r in listed.json()["runs"]) == sorted([mine, other, recs])
        narrowed = httpx.get(f"{url}/v1/runs", headers={"Authorization": f"Bearer {scoped['key']}"}, timeout=30)
        assert sorted(r["id"] for r in narrowed.json()["runs"]) == sorted([mine, recs])
    finally:
        err = _stop(proc)
    assert "Traceback" not in err

    assert main(["keys", "list"]) == 0
    table = capsys.readouterr().out
    assert f"runs {min(mine, recs)}, {max(mine, recs)}, predict" in table and "every run, list only" in table


def test_keys_create_refuses_runs_that_do_not_exist(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "create", "--name", "crm", "--runs", "3,5"]) == 1
    assert "no run 3, 5" in capsys.readouterr().err
    for bad in ("three", "3;5", "-3", "", "99999999999999999999999"):
        assert main(["keys", "create", "--name", "crm", "--runs", bad]) == 1
        assert capsys.readouterr().err.count("\n") == 1, bad


def test_keys_made_before_scopes_keep_every_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade_database(url, "0008")
    with get_engine(url).begin() as conn:
        conn.execute(text("INSERT INTO api_keys (name, prefix, salt, secret_hash, created_at) VALUES "
                          "('old', 'abcdef012345', '00', 'x', CURRENT_TIMESTAMP)"))
    dispose_engines()
    upgrade_database(url, "head")
    with session_scope(url) as s:
        row = key_queries.key_by_prefix(s, "abcdef012345")
        assert row.run_ids is None and row.read_only is False


def test_the_keys_ui_chooses_and_shows_a_scope(make_served_run) -> None:
    run_id, _ = make_served_run("tfidf"), make_served_run("tfidf")
    at = AppTest.from_file(str(PAGES / "sentiment.py"), default_timeout=180).run()
    assert not at.exception, at.exception
    at.text_input(key="api_key_name").input("crm-app").run()
    at.multiselect(key="api_key_runs").select(run_id)
    at.checkbox(key="api_key_read_only").check()
    at.button(key="api_key_create").click().run()
    assert not at.exception, at.exception
    assert f"run {run_id}, list only" in at.success[0].value
    key = next(c.value for c in at.code if c.value.startswith("pl_"))
    with read_scope() as s:
        info = verify_key(s, key)
    assert info.run_ids == (run_id,) and info.read_only is True
    at = AppTest.from_file(str(PAGES / "sentiment.py"), default_timeout=180).run()
    assert any(f"run {run_id}, list only" in c.value for c in at.caption)
    with session_scope() as s:
        assert create_key(s, "ops")[0].scope == "every run, predict"
