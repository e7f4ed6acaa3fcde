"""The prediction API under FastAPI's TestClient: answers, keys, every refusal as 4xx JSON, micro-batching."""

from __future__ import annotations

import asyncio
import shutil
import threading
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from core.api.app import Limits, create_app
from core.api.batching import BatchConfig, MicroBatcher
from core.api.keys import create_key, revoke_key
from core.api.served import ServedModels
from core.settings import run_dir
from db import session_scope
from tests.test_recommenders import completed_run


def _client(run_ids: list[int] | None = None, *, require_key: bool = False, limits: Limits = Limits(),
            runtime: str = "torch") -> TestClient:
    models = ServedModels(run_ids, runtime=runtime)
    models.load()
    return TestClient(create_app(models, require_key=require_key, limits=limits))


def _key(name: str = "app") -> str:
    with session_scope() as s:
        return create_key(s, name)[1]


def _refusal(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code and "Traceback" not in response.text
    return body["detail"]


# --- answers ------------------------------------------------------------------------------------

def test_predict_labels_texts_in_order(make_served_run) -> None:
    run_id = make_served_run("tfidf")
    client = _client([run_id])
    r = client.post(f"/v1/runs/{run_id}/predict", json={"texts": ["love great wonderful", "hate awful terrible"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["run_id"] == run_id and body["labels"] == ["negative", "positive"]
    assert [p["label"] for p in body["predictions"]] == ["positive", "negative"]
    first = body["predictions"][0]
    assert set(first) == {"label", "confidence", "probabilities", "low_confidence", "truncated"}
    assert first["confidence"] == max(first["probabilities"].values()) and first["truncated"] is False


def test_runs_healthz_and_docs(make_served_run) -> None:
    run_id = make_served_run("lstm", macro_f1=0.8)
    client = _client()  # every completed run
    runs = client.get("/v1/runs").json()["runs"]
    assert [r["id"] for r in runs] == [run_id]
    assert runs[0]["metrics"]["macro_f1"] == 0.8 and runs[0]["labels"] == ["negative", "positive"]
    assert runs[0]["status"] == "ready" and runs[0]["endpoint"] == f"/v1/runs/{run_id}/predict"
    assert client.get("/healthz").json()["runs"] == 1
    assert client.get("/docs").status_code == 200
    assert "/v1/runs/{run_id}/predict" in client.get("/openapi.json").json()["paths"]


def test_a_run_completed_after_start_is_served_on_first_request(make_served_run) -> None:
    client = _client()  # serving every run, none yet
    run_id = make_served_run("tfidf")
    r = client.post(f"/v1/runs/{run_id}/predict", json={"texts": ["love it"]})
    assert r.status_code == 200 and client.get("/v1/runs").json()["runs"][0]["id"] == run_id


def test_recommend_for_a_user_and_for_likes(interactions_dataset: int) -> None:
    run_id = completed_run(interactions_dataset, "itemknn")
    client = _client([run_id])
    r = client.post(f"/v1/runs/{run_id}/recommend", json={"user": "u0", "k": 5})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert len(items) == 5 and all(int(i["item"][1:]) % 2 == 0 for i in items)  # u0 likes even items
    assert items[0]["title"].startswith("Garden Movie") and items[0]["score"] >= items[-1]["score"]
    liked = client.post(f"/v1/runs/{run_id}/recommend", json={"like": "i1", "k": 3}).json()["items"]
    assert len(liked) == 3 and "i1" not in [i["item"] for i in liked]
    detail = _refusal(client.post(f"/v1/runs/{run_id}/recommend", json={"user": "nobody"}), 404, "unknown_user")
    assert "nobody" in detail
    _refusal(client.post(f"/v1/runs/{run_id}/recommend", json={"like": ["zz"]}), 404, "unknown_item")
    _refusal(client.post(f"/v1/runs/{run_id}/recommend", json={"user": "u0", "like": "i1"}), 422,
             "invalid_request")
    _refusal(client.post(f"/v1/runs/{run_id}/recommend", json={"user": "u0", "k": 0}), 422, "invalid_request")


# --- keys ---------------------------------------------------------------------------------------

def test_v1_needs_a_valid_key_and_revoking_it_locks_out(make_served_run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("core.api.gate.KEY_CACHE_S", 0.0)  # see a revocation at once
    run_id = make_served_run("tfidf")
    client = _client([run_id], require_key=True)
    url, body = f"/v1/runs/{run_id}/predict", {"texts": ["love it"]}
    detail = _refusal(client.post(url, json=body), 401, "missing_key")
    assert "Authorization: Bearer" in detail and "protolab keys create" in detail
    key = _key()
    assert client.post(url, json=body, headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert client.get("/v1/runs", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    _refusal(client.post(url, json=body, headers={"Authorization": f"Bearer {key[:-2]}xx"}), 401, "bad_key")
    _refusal(client.post(url, json=body, headers={"Authorization": f"Basic {key}"}), 401, "bad_key")
    _refusal(client.post(url, json=body, headers={"Authorization": "Bearer nonsense"}), 401, "bad_key")
    assert client.get("/healthz").status_code == 200  # health and docs stay open
    with session_scope() as s:
        revoke_key(s, "app")
    _refusal(client.post(url, json=body, headers={"Authorization": f"Bearer {key}"}), 401, "bad_key")


# --- refusals -----------------------------------------------------------------------------------

def test_limits_on_texts_characters_and_body(make_served_run) -> None:
    run_id = make_served_run("tfidf")
    client = _client([run_id], limits=Limits(max_texts=3, max_chars=50, max_body_bytes=2_000))
    url = f"/v1/runs/{run_id}/predict"
    assert "limit is 3" in _refusal(client.post(url, json={"texts": ["a"] * 4}), 413, "too_many_texts")
    assert "texts[1]" in _refusal(client.post(url, json={"texts": ["ok", "x" * 51]}), 413, "text_too_long")
    _refusal(client.post(url, json={"texts": ["ok", "x " * 1_500]}), 413, "body_too_large")
    # A streamed body without Content-Length is counted as it arrives.
    chunks = iter([b'{"texts": ["', b"y" * 3_000, b'"]}'])
    _refusal(client.post(url, content=chunks, headers={"Content-Type": "application/json"}), 413, "body_too_large")
    assert "texts[0]" in _refusal(client.post(url, json={"texts": ["  "]}), 422, "empty_text")
    _refusal(client.post(url, json={"texts": []}), 422, "no_texts")
    assert "texts" in _refusal(client.post(url, json={"text": "hi"}), 422, "invalid_request")
    assert "JSON" in _refusal(client.post(url, content=b"{not json", headers={"Content-Type": "application/json"}),
                              422, "invalid_request")


def test_unknown_run_wrong_task_and_files_gone(make_served_run, interactions_dataset: int) -> None:
    text_run = make_served_run("tfidf")
    rec_run = completed_run(interactions_dataset, "popularity")
    gone = make_served_run("lstm")
    shutil.rmtree(run_dir(gone))
    client = _client()
    _refusal(client.post("/v1/runs/999/predict", json={"texts": ["hi"]}), 404, "unknown_run")
    detail = _refusal(client.post(f"/v1/runs/{rec_run}/predict", json={"texts": ["hi"]}), 400, "wrong_task")
    assert f"/v1/runs/{rec_run}/recommend" in detail
    _refusal(client.post(f"/v1/runs/{text_run}/recommend", json={"user": "u0"}), 400, "wrong_task")
    detail = _refusal(client.post(f"/v1/runs/{gone}/predict", json={"texts": ["hi"]}), 410, "files_gone")
    assert str(gone) in detail
    listed = {r["id"]: r for r in client.get("/v1/runs").json()["runs"]}
    assert listed[gone]["status"] == "unavailable" and "error" in listed[gone]
    only = _client([text_run])
    assert "serves runs" in _refusal(only.post(f"/v1/runs/{rec_run}/recommend", json={"user": "u0"}), 404,
                                     "unknown_run")


def test_serving_an_unknown_or_unfinished_run_is_refused_at_start(make_served_run) -> None:
    from core.errors import ProtolabError

    with pytest.raises(ProtolabError, match="no run with id 42"):
        ServedModels([42]).load()


# --- micro-batching -----------------------------------------------------------------------------

def test_concurrent_requests_are_scored_in_one_batch(make_served_run) -> None:
    """While one batch is being scored, the requests that arrive queue up and are scored together next."""
    run_id = make_served_run("lstm")
    models = ServedModels([run_id], batch=BatchConfig(workers=1))
    models.load()
    served = models.runs[run_id]
    batcher, real_score = served.batcher, served.model.score
    entered, release, calls = threading.Event(), threading.Event(), []

    def gated_score(texts: list[str], *args: Any) -> Any:
        calls.append(list(texts))
        entered.set()
        release.wait(30)  # hold the first batch so that the others queue behind it
        return real_score(texts, *args)

    batcher.score = gated_score
    app = create_app(models, require_key=False)
    texts = [f"{'love great ' * (i % 3 + 1)}number {i}" for i in range(9)]

    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            def post(text: str) -> Any:
                return asyncio.create_task(client.post(f"/v1/runs/{run_id}/predict", json={"texts": [text]}))

            first = post(texts[0])
            while not entered.is_set():
                await asyncio.sleep(0.01)
            rest = [post(t) for t in texts[1:]]
            while batcher.waiting < len(rest):  # all eight are queued behind the held batch
                await asyncio.sleep(0.01)
            release.set()
            return await asyncio.gather(first, *rest)

    responses = asyncio.run(main())
    assert [len(c) for c in calls] == [1, 8]
    assert list(batcher.stats.recent) == [1, 8] and batcher.stats.largest == 8
    # Each request got the answer for its own text, exactly as scoring it alone gives.
    alone = served.model.predict_proba(texts)
    for i, r in enumerate(responses):
        assert r.status_code == 200, r.text
        probs = r.json()["predictions"][0]["probabilities"]
        assert probs["positive"] == pytest.approx(alone[i][1], abs=1e-5)


def test_two_workers_score_two_batches_at_once_and_the_rest_queue(make_served_run) -> None:
    run_id = make_served_run("tfidf")
    models = ServedModels([run_id], batch=BatchConfig(workers=2))
    models.load()
    real_score = models.runs[run_id].model.score
    entered, release = threading.Semaphore(0), threading.Event()

    def gated_score(texts: list[str], *args: Any) -> Any:
        entered.release()
        release.wait(30)
        return real_score(texts, *args)

    batcher = MicroBatcher(gated_score, BatchConfig(workers=2))

    async def main() -> list[Any]:
        first = []
        for i in range(2):  # both workers busy, one request each
            first.append(asyncio.create_task(batcher.submit([f"love it {i}"])))
            while not entered.acquire(blocking=False):
                await asyncio.sleep(0.01)
        rest = [asyncio.create_task(batcher.submit([f"hate it {i}"])) for i in range(6)]
        while batcher.waiting < 6:
            await asyncio.sleep(0.01)
        release.set()
        return await asyncio.gather(*first, *rest)

    results = asyncio.run(main())
    assert list(batcher.stats.recent) == [1, 1, 6] and len(results) == 8


def test_batches_are_bounded(make_served_run) -> None:
    run_id = make_served_run("tfidf")
    models = ServedModels([run_id])
    models.load()
    model = models.runs[run_id].model
    batcher = MicroBatcher(model.score, BatchConfig(max_batch=4, max_wait_ms=50))

    async def main() -> list[Any]:
        return await asyncio.gather(*(batcher.submit([f"love it {i}", f"hate it {i}"]) for i in range(5)))

    results = asyncio.run(main())
    assert all(len(p) == 2 for p, _ in results)
    assert max(batcher.stats.recent) <= 4 and sum(batcher.stats.recent) == 10
    assert list(batcher.stats.recent) == [4, 4, 2]  # two requests of two texts per batch; none split
