"""Image models: the offline EfficientNet-Lite0 weights, the pixel pipeline, and each image kind (vision,
linear_probe, cnn) trained in-process on 40 generated 32x32 images, saved, served and explained; stop and resume.

tests/test_image_cli.py covers the same through `protolab train --wait` and `protolab predict` (the worker process).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from core.cli import main
from core.images import IMAGE
from core.images.lite0 import MEAN, STD, EfficientNetLite0, load_pretrained
from core.images.nets import load_net
from core.images.pixels import ImageBatches, normalise, random_resized_crop, to_square_tensor
from core.images.serving import load_image_classifier
from core.images.training import execute_cnn_run, execute_probe_run, execute_vision_run, fit_probe
from core.runs import registry
from core.runs.files import RunFiles
from core.runs.worker import RunCancelled
from db import datasets as dataset_queries
from db import session_scope
from tests.test_training import RecordingContext

COLOURS = {"red": 0, "blue": 2}  # the channel each class is bright in: learnable in one epoch, flips keep it


def coloured(channel: int, seed: int, size: int = 32) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 90, (size, size, 3), dtype=np.uint8)
    pixels[..., channel] += 150
    return Image.fromarray(pixels)


def pictures_zip(path: Path, per_class: dict[str, int] | None = None) -> Path:
    """train/val/test folders of red and blue noise pictures (12/4/4 a class)."""
    seed = 0
    with zipfile.ZipFile(path, "w") as archive:
        for split, n in (per_class or {"train": 12, "val": 4, "test": 4}).items():
            for label, channel in COLOURS.items():
                for i in range(n):
                    out = io.BytesIO()
                    coloured(channel, seed).save(out, "PNG")
                    archive.writestr(f"{split}/{label}/{i}.png", out.getvalue())
                    seed += 1
    return path


@pytest.fixture
def pictures(tmp_path: Path) -> int:
    assert main(["datasets", "add", str(pictures_zip(tmp_path / "pics.zip")), "--task", "images",
                 "--name", "pics"]) == 0
    with session_scope() as s:
        return dataset_queries.get_dataset_by_name(s, "pics").id


def make_ctx(tmp_path: Path, dataset_id: int, kind: str, **options: object) -> RecordingContext:
    config = registry.get_kind(kind).make_config({"image_size": 32, "epochs": 1, "batch_size": 8, **options})
    return RecordingContext(model_kind=kind, config=config, dataset_id=dataset_id, artifact_dir=tmp_path / kind,
                            task="images")


def test_the_offline_default_weights_load_strictly_and_know_imagenet() -> None:
    from sklearn.datasets import load_sample_image

    model = load_pretrained().eval()  # strict: every tensor of the checkpoint has its place, none is missing
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(4.65e6, rel=0.01)
    flower = Image.fromarray(load_sample_image("flower.jpg"))
    with torch.no_grad():
        logits = model(normalise(to_square_tensor(flower, 224)[None], MEAN, STD))
    assert int(logits.argmax()) == 985  # ImageNet's "daisy": the right weights, padding and normalisation
    with pytest.raises(RuntimeError):  # a network that is not Lite0's shape cannot take them
        EfficientNetLite0().load_state_dict({"_fc.weight": torch.zeros(3, 3)}, strict=True)


def test_augmentation_crops_and_flips_deterministically_per_seed() -> None:
    pixels = torch.stack([to_square_tensor(coloured(0, i, 40), 32) for i in range(4)])
    assert pixels.shape == (4, 3, 32, 32) and pixels.dtype == torch.uint8
    a = random_resized_crop(pixels, torch.Generator().manual_seed(1))
    b = random_resized_crop(pixels, torch.Generator().manual_seed(1))
    c = random_resized_crop(pixels, torch.Generator().manual_seed(2))
    assert a.shape == pixels.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert a[:, 0].mean() > a[:, 2].mean() + 100  # a crop of a red picture stays red
    batches = ImageBatches(labels=np.array([0, 1, 0, 1]), batch_size=3, size=32, mean=MEAN, std=STD,
                           pixels=pixels, augment=True)
    idx = batches.index_batches(0)
    assert sorted(np.concatenate(idx).tolist()) == [0, 1, 2, 3] and len(batches) == 2
    batch = batches.collate(idx[0])
    assert batch["pixel_values"].shape == (3, 3, 32, 32) and batch["labels"].tolist() == [0, 1, 0, 1][:0] + \
        [int(i % 2) for i in idx[0]]


def test_the_probe_head_folds_the_standardisation_in() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (20, 5)), rng.normal(3, 1, (20, 5))]) * 50 + 7
    y = np.array([0] * 20 + [1] * 20)
    weight, bias = fit_probe(x, y, 3, c=1.0, seed=0)  # label 2 never seen: never predicted
    pred = (x @ weight.T + bias).argmax(axis=1)
    assert (pred == y).mean() == 1.0 and weight.shape == (3, 5)


@pytest.mark.parametrize(("kind", "run"), [("cnn", execute_cnn_run), ("linear_probe", execute_probe_run),
                                           ("vision", execute_vision_run)])
def test_each_kind_trains_saves_and_serves(kind: str, run, pictures: int, tmp_path: Path) -> None:  # noqa: ANN001
    ctx = make_ctx(tmp_path, pictures, kind, **({"learning_rate": 3e-3} if kind == "vision" else {}))
    metrics = run(ctx)
    assert metrics["labels"] == ["blue", "red"] and metrics["test_set"]["rows"] == 8
    assert ctx.device and metrics["device"] == ctx.device  # whatever the machine has: never assumed "cpu"
    if kind == "linear_probe":  # ImageNet features separate red from blue without any training
        assert metrics["accuracy"] == 1.0
    else:
        assert [m for m in ctx.metrics if m["name"] == "train_loss"]  # live curves through the shared reporter
    predictions = pd.read_parquet(ctx.files.predictions("test"))
    assert predictions[IMAGE].str.fullmatch(r"[0-9a-f]{64}\.png").all()
    assert predictions["text"].str.startswith("test/").all()  # the path in the upload: the tables' caption
    classifier = load_image_classifier(RunFiles(ctx.artifact_dir), "auto")
    answer = classifier.predict([coloured(0, 999), coloured(2, 998)])
    assert set(answer[0].probabilities) == {"blue", "red"}
    assert sum(answer[0].probabilities.values()) == pytest.approx(1.0)
    if kind == "linear_probe":
        assert [a.label for a in answer] == ["red", "blue"]
    heat = classifier.occlusion(coloured(0, 5), grid=4)
    assert heat.shape == (4, 4) and np.isfinite(heat).all()
    model, labels, spec = load_net(ctx.files.model)
    assert labels == ["blue", "red"] and spec.size == 32


def test_a_stopped_cnn_run_resumes_from_its_checkpoint(pictures: int, tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, pictures, "cnn", epochs=2, batch_size=4)
    ctx.stop_after_progress = 3
    with pytest.raises(RunCancelled):
        execute_cnn_run(ctx)
    assert ctx.files.has_checkpoint()
    resumed = make_ctx(tmp_path, pictures, "cnn", epochs=2, batch_size=4)
    resumed.config["resume"] = True
    metrics = resumed_metrics = execute_cnn_run(resumed)
    assert any(e["event"] == "resumed" for e in resumed.events)
    steps = [m["step"] for m in resumed.metrics if m["name"] == "train_loss"]
    assert steps and min(steps) > 3  # it continued the count, it did not start again
    assert metrics is resumed_metrics and metrics["best_epoch"] >= 1


def test_bad_image_options_are_refused_before_a_run() -> None:
    from core.text.config import TrainingError

    with pytest.raises(TrainingError, match="image_size"):
        registry.get_kind("cnn").make_config({"image_size": 4})
    with pytest.raises(TrainingError, match="max_length"):
        registry.get_kind("vision").make_config({"max_length": 64})
