"""The image endpoint of `protolab serve` under TestClient: base64 images answered like texts, the key checked,
bad bodies and bad images refused with 4xx JSON naming what is wrong."""

from __future__ import annotations

import base64
import io
from pathlib import Path

from fastapi.testclient import TestClient

from core.api.app import Limits, create_app
from core.api.keys import create_key
from core.api.served import ServedModels
from db import session_scope
from tests.test_image_models import coloured
from tests.test_page_evaluate_images import probe_run_with_mistakes


def b64(channel: int, seed: int) -> str:
    out = io.BytesIO()
    coloured(channel, seed).save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode()


def test_images_are_classified_and_bad_ones_refused(tmp_path: Path) -> None:
    run_id = probe_run_with_mistakes(tmp_path)
    models = ServedModels([run_id])
    models.load()
    with session_scope() as s:
        secret = create_key(s, "app")[1]
    client = TestClient(create_app(models, require_key=True, limits=Limits(max_body_bytes=200_000)))
    url = f"/v1/runs/{run_id}/classify"
    assert client.post(url, json={"images": [b64(0, 1)]}).status_code == 401  # no key
    auth = {"Authorization": f"Bearer {secret}"}
    r = client.post(url, json={"images": [b64(0, 1), "data:image/png;base64," + b64(2, 2)]}, headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["labels"] == ["blue", "red"] and [p["label"] for p in body["predictions"]] == ["red", "blue"]
    assert set(body["predictions"][0]) == {"label", "confidence", "probabilities", "low_confidence"}
    for images, says in ((["%%%"], "images[0] is not base64"),
                         ([base64.b64encode(b"not a picture").decode()], "images[0]"), ([], "images")):
        r = client.post(url, json={"images": images}, headers=auth)
        assert r.status_code == 422 and says in r.json()["detail"], r.text
    r = client.post(url, json={"images": [b64(0, 3)] * 60}, headers=auth)  # past the body limit
    assert r.status_code == 413, r.text
    text = client.post(f"/v1/runs/{run_id}/predict", json={"texts": ["hello"]}, headers=auth)
    assert text.status_code == 400 and "/classify" in text.json()["detail"]
