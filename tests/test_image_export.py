"""`protolab export --format onnx|onnx-int8` of image runs: the graph matches PyTorch on the run's own images at any
batch size, int8 keeps the labels, and the model card's loading snippet, run as written, labels a photo."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from core.cli import main
from core.export.exporting import ExportError, check_format, export_run
from core.images.serving import load_image_classifier
from core.images.training import execute_cnn_run, execute_vision_run
from core.runs import registry
from core.runs.files import RunFiles
from core.settings import run_dir
from db import datasets as dataset_queries
from db import runs as run_queries
from db import session_scope
from db.enums import RunStatus
from db.models import utcnow
from tests.test_image_models import coloured, pictures_zip
from tests.test_training import RecordingContext


def finished_image_run(dataset_id: int, kind: str, execute: object, **options: object) -> int:
    """A completed run of image kind `kind` on `dataset_id`, trained in-process by its executor `execute`."""
    config = registry.get_kind(kind).make_config(options)
    with session_scope() as s:
        run_id = run_queries.create_run(s, dataset_id=dataset_id, task="images", model_kind=kind, config=config,
                                        name=kind, device="cpu").id
    metrics = execute(RecordingContext(model_kind=kind, config=config, dataset_id=dataset_id,  # type: ignore[operator]
                                       artifact_dir=run_dir(run_id), run_id=run_id, task="images"))
    with session_scope() as s:
        run = run_queries.get_run(s, run_id)
        run.status, run.metrics, run.progress = RunStatus.COMPLETED, metrics, 1.0
        run.started_at = run.finished_at = utcnow()
    return run_id


@pytest.fixture
def cnn_run(tmp_path: Path) -> int:
    assert main(["datasets", "add", str(pictures_zip(tmp_path / "pics.zip", {"train": 8, "val": 2, "test": 3})),
                 "--task", "images", "--name", "pics"]) == 0
    with session_scope() as s:
        dataset_id = dataset_queries.get_dataset_by_name(s, "pics").id
    return finished_image_run(dataset_id, "cnn", execute_cnn_run, image_size=16, epochs=1, batch_size=8,
                              cnn_width=8, augment=False)


def test_an_image_run_exports_to_onnx_and_its_card_loads_it(cnn_run: int, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "onnx"
    assert main(["export", "--run", str(cnn_run), "--format", "onnx", "-o", str(out), "--json"]) == 0
    said = json.loads(capsys.readouterr().out)
    assert set(said["files"]) == {"model.onnx", "protolab.json", "labels.json", "README.md"}
    assert said["onnx_max_probability_difference"] < 1e-4
    info = json.loads((out / "protolab.json").read_text())
    assert (info["image_size"], info["inputs"], info["precision"]) == (16, ["pixel_values"], "fp32")
    labels = json.loads((out / "labels.json").read_text())
    # The graph against PyTorch on new photos, at a batch size the export was not traced with.
    classifier = load_image_classifier(RunFiles.of(cnn_run), device="cpu")
    photos = [coloured(channel, 900 + i) for i, channel in enumerate((0, 2, 0, 2, 0))]
    pixels = classifier.pixels(photos).numpy()
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(["logits"], {"pixel_values": pixels})[0]
    assert np.allclose(logits, classifier.model(pixel_values=classifier.pixels(photos)).logits.detach().numpy(),
                       atol=1e-4)
    card = (out / "README.md").read_text()
    assert card.startswith("# cnn: image classifier (Small CNN") and "It labels an image as one of" in card
    assert "Linear probe baseline" in card and "16×16 pixels" in card
    # The card's snippet, run as a reader would run it, on a photo saved to disk.
    snippet = re.search(r"```python\n(.*?)```", card, re.S).group(1)  # type: ignore[union-attr]
    photo = tmp_path / "photo.png"
    photos[1].save(photo)
    printed: list[str] = []
    exec(snippet.replace("photo.jpg", str(photo)).replace('open("labels.json")', f'open("{out / "labels.json"}")')
         .replace('"model.onnx"', f'"{out / "model.onnx"}"'), {"print": printed.append})
    assert printed == [labels[int(classifier.predict_proba([photos[1]])[0].argmax())]]


def test_an_image_run_exports_to_int8_and_refuses_other_formats(cnn_run: int, tmp_path: Path) -> None:
    result = export_run(cnn_run, "onnx-int8", tmp_path / "int8")
    info = json.loads((tmp_path / "int8" / "protolab.json").read_text())
    assert info["precision"] == "int8" and result.max_abs_diff is not None
    assert "int8 quantisation" in (tmp_path / "int8" / "README.md").read_text()
    session = ort.InferenceSession(str(tmp_path / "int8" / "model.onnx"), providers=["CPUExecutionProvider"])
    classifier = load_image_classifier(RunFiles.of(cnn_run), device="cpu")
    photos = [coloured(channel, 700 + i) for i, channel in enumerate((0, 2, 2, 0))]
    got = session.run(["logits"], {"pixel_values": classifier.pixels(photos).numpy()})[0].argmax(1)
    assert list(got) == list(classifier.predict_proba(photos).argmax(1))
    for kind in ("vision", "linear_probe", "cnn"):
        with pytest.raises(ExportError, match="use --format onnx or onnx-int8"):
            check_format(kind, "hf")


def tiny_vit_folder(folder: Path) -> Path:
    """A two-layer random-init ViT with its image processor, saved as a Hugging Face folder (no hub)."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessorPil

    config = ViTConfig(image_size=16, patch_size=8, num_channels=3, hidden_size=16, num_hidden_layers=2,
                       num_attention_heads=2, intermediate_size=32, num_labels=3)
    ViTForImageClassification(config).save_pretrained(folder)
    ViTImageProcessorPil(size={"height": 16, "width": 16}, image_mean=[0.4, 0.4, 0.4],
                         image_std=[0.3, 0.3, 0.3]).save_pretrained(folder)
    return folder


def test_a_local_hugging_face_image_model_fine_tunes_serves_and_exports(tmp_path: Path) -> None:
    assert main(["datasets", "add", str(pictures_zip(tmp_path / "pics.zip", {"train": 6, "val": 2, "test": 2})),
                 "--task", "images", "--name", "hfpics"]) == 0
    with session_scope() as s:
        dataset_id = dataset_queries.get_dataset_by_name(s, "hfpics").id
    run_id = finished_image_run(dataset_id, "vision", execute_vision_run, model_id=str(tiny_vit_folder(
        tmp_path / "vit")), epochs=1, batch_size=4, image_size=16)
    classifier = load_image_classifier(RunFiles.of(run_id), device="cpu")
    # Two labels, not the saved model's three: a fresh head; the processor's size and normalisation are kept.
    assert classifier.labels == ["blue", "red"] and classifier.family == "vision"
    assert (classifier.spec.size, classifier.spec.mean) == (16, (0.4, 0.4, 0.4))
    assert classifier.model.model.config.num_hidden_layers == 2
    proba = classifier.predict_proba([coloured(0, 1), coloured(2, 2)])
    assert proba.shape == (2, 2) and np.allclose(proba.sum(1), 1.0)
    result = export_run(run_id, "onnx", tmp_path / "vit-onnx")
    assert result.max_abs_diff is not None and result.max_abs_diff < 1e-3
