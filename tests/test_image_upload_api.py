"""The image endpoint's multipart form (POST /v1/runs/{id}/classify/files) under TestClient: several files in one
request scored in one forward pass, the key and its scope checked, a non-image refused 400 naming it, too many
files and too big an upload refused 413 saying the limit, and all of it in the OpenAPI schema."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from core.api.app import Limits, create_app
from core.api.keys import create_key
from core.api.served import ServedModels
from db import session_scope
from tests.test_image_models import coloured
from tests.test_page_evaluate_images import probe_run_with_mistakes


def png(channel: int, seed: int) -> bytes:
    out = io.BytesIO()
    coloured(channel, seed).save(out, "PNG")
    return out.getvalue()


def test_uploaded_images_are_classified_in_one_pass_and_bad_uploads_refused(tmp_path: Path) -> None:
    run_id = probe_run_with_mistakes(tmp_path)
    models = ServedModels([run_id])
    models.load()
    net, passes = models.runs[run_id].model.model, []

    def counted(**kwargs: Any) -> Any:
        passes.append(len(kwargs["pixel_values"]))
        return net(**kwargs)

    models.runs[run_id].model.model = counted
    with session_scope() as s:
        secret = create_key(s, "app")[1]
        other = create_key(s, "other", run_ids=[run_id])[1]
    app = create_app(models, require_key=True, limits=Limits(max_body_bytes=200_000))
    client = TestClient(app)
    url = f"/v1/runs/{run_id}/classify/files"
    files = [("files", ("red.png", png(0, 1), "image/png")), ("files", ("blue.png", png(2, 2), "image/png")),
             ("files", ("red2.png", png(0, 3), "image/png"))]
    assert client.post(url, files=files).json()["error"] == "missing_key"
    auth = {"Authorization": f"Bearer {secret}"}
    r = client.post(url, files=files, headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["labels"] == ["blue", "red"] and [p["label"] for p in body["predictions"]] == ["red", "blue", "red"]
    assert set(body["predictions"][0]) == {"label", "confidence", "probabilities", "low_confidence"}
    assert passes == [3]  # micro-batched: the request's three images in one forward pass

    r = client.post(url, files=[files[0], ("files", ("notes.txt", b"not a picture", "text/plain"))], headers=auth)
    assert r.status_code == 400 and r.json()["error"] == "not_an_image", r.text
    assert "files[1] ('notes.txt')" in r.json()["detail"]
    r = client.post(url, files=[("files", (f"{i}.png", b"x", "image/png")) for i in range(65)], headers=auth)
    assert r.status_code == 413 and "the limit is 64" in r.json()["detail"], r.text
    r = client.post(url, files=[("files", ("big.png", png(0, 4) * 80, "image/png"))], headers=auth)
    assert r.status_code == 413 and "200,000 bytes" in r.json()["detail"] and "files" in r.json()["detail"], r.text
    r = client.post(url, content=b"--x\r\nnonsense", headers={**auth, "Content-Type": "multipart/form-data; "
                                                                   "boundary=x"})
    assert r.status_code == 422 and set(r.json()) == {"error", "detail"}, r.text

    # A key for another run is refused before the upload is read.
    r = client.post(f"/v1/runs/{run_id + 1}/classify/files", files=files, headers={"Authorization": f"Bearer {other}"})
    assert r.status_code == 403 and r.json()["error"] == "run_out_of_scope", r.text

    schema = app.openapi()
    post = schema["paths"]["/v1/runs/{run_id}/classify/files"]["post"]
    assert "multipart/form-data" in post["requestBody"]["content"]
    assert {"400", "401", "403", "413", "422"} <= set(post["responses"])
