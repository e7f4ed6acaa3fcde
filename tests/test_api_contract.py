"""The API keeps its contract on a real `protolab serve`: every answer is the documented `{"error", "detail"}`
body with a documented status, the key is checked before the body, and schemathesis (a third-party contract
tester) finds nothing with a key or without one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from core.api.app import create_app
from core.api.contract import MAX_RUN_ID
from core.api.keys import create_key
from core.api.served import ServedModels
from db import session_scope
from tests.test_recommenders import completed_run
from tests.test_serve_cli import _free_port, _start, _stop, _wait_ready

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CONFIG = Path(__file__).with_name("schemathesis.toml")
# Bounded and repeatable: 20 cases per operation and phase, the same cases every time (~20 s a run here).
FUZZ = ["-n", "20", "--generation-deterministic", "-w", "1", "-c", "all", "--request-timeout", "30"]


def _error_body(response: httpx.Response, status: int, code: str | None = None) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail"} and isinstance(body["detail"], str), body
    if code is not None:
        assert body["error"] == code, body
    return body["detail"]


def _schemathesis(url: str, cwd: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCHEMATHESIS), "--no-color", "--config-file", str(CONFIG), "run",
                           f"{url}/openapi.json", *FUZZ, *extra], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow
def test_live_server_keeps_the_contract(make_served_run, interactions_dataset: int, tmp_path: Path) -> None:
    text_run, rec_run = make_served_run("tfidf"), completed_run(interactions_dataset, "itemknn")
    with session_scope() as s:
        key = create_key(s, "contract")[1]
    auth = {"Authorization": f"Bearer {key}"}
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _start(["--port", str(port)])
    try:
        _wait_ready(proc, url)
        predict, recommend = f"{url}/v1/runs/{text_run}/predict", f"{url}/v1/runs/{rec_run}/recommend"
        # Run ids past the database's integer are a malformed parameter, not a crash (was 500, OverflowError).
        for path in ("predict", "recommend"):
            for run_id in (MAX_RUN_ID + 1, 2**63, 10**30):
                detail = _error_body(httpx.post(f"{url}/v1/runs/{run_id}/{path}", json={"texts": ["hi"]},
                                                headers=auth), 422, "invalid_request")
                assert "run_id" in detail
        # Bodies FastAPI could not decode (was a bare {"detail": ...} with 400).
        json_type = {**auth, "Content-Type": "application/json"}
        assert "UTF-8" in _error_body(httpx.post(predict, content=b'{"texts": ["\xff"]}', headers=json_type), 422)
        deep = b"[" * 50_000 + b"]" * 50_000
        assert "nested" in _error_body(httpx.post(predict, content=deep, headers=json_type), 422)
        # A declared latin-1 body is read as latin-1.
        latin = httpx.post(predict, content='{"texts": ["café great"]}'.encode("latin-1"),
                           headers={**auth, "Content-Type": "application/json; charset=latin-1"})
        assert latin.status_code == 200, latin.text
        _error_body(httpx.post(predict, content=b'{"texts": ["x"]}',
                               headers={**auth, "Content-Type": "application/json; charset=klingon"}), 422)
        # Unknown paths and methods (were {"detail": "Not Found"} and {"detail": "Method Not Allowed"}).
        _error_body(httpx.get(f"{url}/v1/nope", headers=auth), 404, "not_found")
        wrong_method = httpx.get(predict, headers=auth)
        _error_body(wrong_method, 405, "method_not_allowed")
        assert wrong_method.headers["allow"] == "POST"
        # The key comes first: a keyless request hears 401 whatever its body (was 422 or 400).
        for content in (b"{not json", b'{"texts": [""]}', deep):
            _error_body(httpx.post(predict, content=content, headers={"Content-Type": "application/json"}), 401,
                        "missing_key")
        _error_body(httpx.post(f"{url}/v1/nope"), 401, "missing_key")
        _error_body(httpx.post(predict, json={"texts": [""]}, headers=auth), 422, "empty_text")
        ok = httpx.post(recommend, json={"user": "u0", "k": 3}, headers=auth)
        assert ok.status_code == 200 and len(ok.json()["items"]) == 3

        for extra in (["-H", f"Authorization: Bearer {key}"], []):  # with the key, then without one
            run = _schemathesis(url, tmp_path, *extra)
            assert run.returncode == 0 and "Failures:" not in run.stdout, run.stdout[-6000:]
            assert " passed" in run.stdout and "generated" in run.stdout
    finally:
        err = _stop(proc)
    assert "Traceback" not in err


def test_schema_documents_every_refusal_as_the_error_body(make_served_run) -> None:
    run_id = make_served_run("tfidf")
    models = ServedModels([run_id])
    models.load()
    schema = create_app(models).openapi()
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    predict = schema["paths"]["/v1/runs/{run_id}/predict"]["post"]
    documented = {code: r["content"]["application/json"]["schema"] for code, r in predict["responses"].items()
                  if code != "200"}
    assert set(documented) == {"400", "401", "403", "404", "408", "409", "410", "413", "422"}
    assert all(s == error_ref for s in documented.values())  # 422 was FastAPI's array of errors
    assert "HTTPValidationError" not in json.dumps(schema)
    body = schema["components"]["schemas"]["PredictRequest"]
    text = body["properties"]["texts"]["items"]
    assert body["properties"]["texts"]["minItems"] == 1 and body["properties"]["texts"]["maxItems"] == 256
    assert text["maxLength"] == 20_000 and "pattern" in text  # "" and "   " are not texts
    assert body["additionalProperties"] is False
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    recommend = schema["components"]["schemas"]["RecommendRequest"]
    assert recommend["oneOf"] == [{"required": ["user"]}, {"required": ["like"]}]
    assert recommend["properties"]["k"]["maximum"] == 100
    upload = schema["paths"]["/v1/runs/{run_id}/classify/files"]["post"]  # images as a multipart upload
    files = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert {"400", "413"} <= set(upload["responses"]) and "2,000,000 bytes" in json.dumps(schema["components"])
    assert files == {"$ref": files["$ref"]} and schema["components"]["schemas"][files["$ref"].rsplit("/", 1)[1]][
        "properties"]["files"]["minItems"] == 1


@pytest.mark.parametrize("flag", [[], ["--no-auth"]])
def test_openapi_names_the_key_only_when_one_is_needed(make_served_run, flag: list[str]) -> None:
    run_id = make_served_run("tfidf")
    models = ServedModels([run_id])
    models.load()
    schema = create_app(models, require_key=not flag).openapi()
    listed = schema["paths"]["/v1/runs"]["get"]
    assert ("401" in listed["responses"]) is (not flag) and ("security" in listed) is (not flag)

