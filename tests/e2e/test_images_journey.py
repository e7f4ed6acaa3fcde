"""An image dataset's journey in Chromium (issue 25's done-when), against a real `streamlit run app.py`:

upload a ZIP of class folders on the Datasets page → train the small CNN on the Train page and watch it finish →
Evaluate with the gallery of its mistakes → the Image classifier demo answers a dropped picture; then, in the same
data folder, the other two kinds through `protolab train --wait --json`, a call of the image endpoint of a real
`protolab serve` with a real key, and `protolab export --format onnx` with its parity check.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, Server, free_port, wait_for_text
from tests.e2e.test_journeys import click, no_errors, settle, train_on_page, type_into, upload
from tests.test_image_models import COLOURS, coloured

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def pictures_with_mistakes(path: Path) -> Path:
    """train/val/test folders of red and blue noise pictures; two red ones filed under blue in test (the mistakes
    the gallery must show)."""
    seed = 0
    with zipfile.ZipFile(path, "w") as archive:
        for split, n in (("train", 10), ("val", 3), ("test", 3)):
            for label, channel in COLOURS.items():
                for i in range(n + (2 if split == "test" and label == "blue" else 0)):
                    wrong = split == "test" and label == "blue" and i >= n
                    out = io.BytesIO()
                    coloured(COLOURS["red"] if wrong else channel, seed).save(out, "PNG")
                    archive.writestr(f"{split}/{label}/{i}.png", out.getvalue())
                    seed += 1
    return path


def cli(server: Server, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "core.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **server.env, "PYTHONPATH": str(ROOT)}, timeout=timeout)
    assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-3000:])
    return proc


def png_b64(channel: int, seed: int) -> str:
    out = io.BytesIO()
    coloured(channel, seed).save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode()


def classify(url: str, secret: str, images: list[str], timeout_s: float = 120) -> dict:
    request = urllib.request.Request(url, data=json.dumps({"images": images}).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {secret}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout_s) as resp:
        return json.loads(resp.read())


def wait_healthy(proc: subprocess.Popen, url: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"protolab serve exited with {proc.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"protolab serve did not answer {url} in {timeout_s:.0f} s")


def test_images_upload_train_evaluate_demo_serve_and_export(server: Server, page, tmp_path: Path) -> None:  # noqa: ANN001
    archive = pictures_with_mistakes(tmp_path / "parcels.zip")

    # 1. Datasets: the ZIP is recognised as images (class folders, split folders), named and saved.
    page.goto(server.url)
    wait_for_text(page, "Turn a dataset into a demo")
    page.goto(server.url + "/datasets")
    wait_for_text(page, "Upload your own")
    upload(page, archive)
    wait_for_text(page, "Checks passed")
    type_into(page, "Dataset name", "journey parcels")
    click(page, "Save dataset")
    wait_for_text(page, "Saved 'journey parcels'")
    no_errors(page, server)

    # 2. Train: the small CNN from scratch at 32 pixels, two epochs (red vs blue noise is learnt in one or two).
    train_on_page(page, server, "journey parcels", "Small CNN (from scratch)",
                  {"Image size (pixels)": "32", "Epochs": "2"})

    # 3. Evaluate: the classification views, then the gallery: the two red pictures filed under blue are test
    # mistakes whatever the CNN learnt (it cannot be right about both a picture and its wrong label).
    page.goto(server.url + "/evaluate")
    wait_for_text(page, "Per-class precision, recall and F1", timeout_ms=60_000)
    wait_for_text(page, "Mistakes as pictures", timeout_ms=60_000)
    # Error analysis opens on validation mistakes (those can be fixed); the planted ones are in test.
    page.locator('[data-testid="stRadio"]').filter(has_text="Mistakes from").get_by_text("test", exact=True).click()
    settle(page)
    wait_for_text(page, "most confident test mistakes")
    thumbnails = page.locator('[data-testid="stImage"]:visible')
    thumbnails.first.wait_for(state="visible")
    assert thumbnails.count() >= 1
    no_errors(page, server)

    # 4. The other two kinds through the CLI, into the same data folder and database.
    runs = {"cnn": 1}
    for kind in ("linear_probe", "vision"):
        out = cli(server, "train", "--dataset", "journey parcels", "--model", kind, "--image-size", "32",
                  "--epochs", "1", "--wait", "--json")
        run = json.loads(out.stdout)
        assert run["status"] == "completed" and run["task"] == "images", run.get("error")
        runs[kind] = run["run_id"]
    assert len(set(runs.values())) == 3

    # 5. Image classifier demo: drop a red picture on the linear probe's run (the most accurate on colours).
    page.goto(server.url + "/image_classifier")
    wait_for_text(page, "Image classifier")
    model_box = page.get_by_role("combobox", name="Model", exact=True)
    model_box.wait_for()
    red = tmp_path / "red.png"
    coloured(COLOURS["red"], 9001).save(red)
    page.locator('[data-testid="stFileUploader"] input[type="file"]').first.set_input_files(str(red))
    settle(page, timeout_ms=120_000)
    wait_for_text(page, "Where the model looked", timeout_ms=120_000)
    prediction = page.locator('[data-testid="stMetric"]').first.inner_text()
    assert "red" in prediction or "blue" in prediction, prediction  # one of the dataset's classes, named
    no_errors(page, server)

    # 6. The API: a key scoped to the probe's run, `protolab serve` on a free port, two pictures classified.
    key = json.loads(cli(server, "keys", "create", "--name", "journey", "--runs", str(runs["linear_probe"]),
                         "--json").stdout)
    secret = key["key"]
    port = free_port()
    serve = subprocess.Popen([sys.executable, "-m", "core.cli", "serve", "--run", str(runs["linear_probe"]),
                              "--port", str(port)], cwd=ROOT, env={**os.environ, **server.env,
                                                                   "PYTHONPATH": str(ROOT)},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_healthy(serve, base + "/healthz")
        body = classify(f"{base}/v1/runs/{runs['linear_probe']}/classify", secret,
                        [png_b64(COLOURS["red"], 9002), png_b64(COLOURS["blue"], 9003)])
        assert [p["label"] for p in body["predictions"]] == ["red", "blue"], body
    finally:
        serve.terminate()
        serve.wait(30)

    # 7. ONNX export of the CNN with the parity check and the model card.
    out_dir = tmp_path / "cnn-onnx"
    cli(server, "export", "--run", str(runs["cnn"]), "--format", "onnx", "-o", str(out_dir))
    assert any(p.suffix == ".onnx" for p in out_dir.rglob("*")), sorted(out_dir.rglob("*"))
    assert (out_dir / "README.md").is_file(), sorted(p.name for p in out_dir.rglob("*"))  # the model card
