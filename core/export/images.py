"""`protolab export --format onnx|onnx-int8` of an image classification run (each image kind's registry entry names
`export_image_run` as its exporter): the network as an ONNX graph from normalised pixels to logits, checked against
PyTorch on the run's own test images before it is kept, and the model card's image wording.

The graph takes `pixel_values` (batch, 3, S, S) float32, the image resized (shorter side to S), centre-cropped and
normalised with the mean and std that protolab.json records; the batch axis is dynamic. int8 is onnxruntime's
dynamic quantisation (weights int8): no calibration images needed.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.data.storage import load_split
from core.export.card import CardWords
from core.export.exporting import PARITY_TOLERANCE, ExportedModel, ExportError
from core.export.onnx import INFO_FILE, MODEL_FILE, OPSET, OnnxExportError, quantize_int8
from core.images import IMAGE
from core.images.serving import ImageClassifier, load_image_classifier
from core.images.store import load_image
from core.runs.files import RunFiles
from db import read_scope
from db import runs as run_queries

INPUT, OUTPUT = "pixel_values", "logits"
CHECK_IMAGES = 8  # the run's own images the export is checked on (test split first)


class _Logits(torch.nn.Module):
    """The graph's one output: logits, not the network's output object."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).logits


def export_image_run(run_id: int, fmt: str, folder: Path) -> ExportedModel:
    """model.onnx and protolab.json of image run `run_id` in `folder`: (labels, parity, the card's words)."""
    classifier = load_image_classifier(RunFiles.of(run_id), device="cpu")
    images = check_images(run_id)
    diff = write_image_onnx(classifier, folder, images, run_id=run_id, int8=fmt == "onnx-int8")
    return ExportedModel(list(classifier.labels), diff, image_card_words(classifier, len(images)))


def check_images(run_id: int, limit: int = CHECK_IMAGES) -> list[Any]:
    """Up to `limit` images of the run's dataset (test split first, then validation and train): real photos, so
    the parity check sees what the model will be given, not noise."""
    with read_scope() as s:
        run = run_queries.get_run(s, run_id)
        assert run is not None
        dataset = run.dataset
        keys: list[str] = []
        for split in ("test", "validation", "train"):
            keys += [k for k in load_split(dataset, split)[IMAGE].astype(str) if k not in keys][:limit - len(keys)]
            if len(keys) >= limit:
                break
        dataset_id = dataset.id
    return [load_image(dataset_id, key) for key in keys]


def export_onnx_graph(classifier: ImageClassifier, path: Path) -> None:
    """Write the classifier's network as an ONNX graph with a dynamic batch axis (TorchScript exporter, as the
    text export: see core.export.onnx)."""
    size = classifier.spec.size
    wrapper = _Logits(classifier.model.float().to("cpu")).eval()
    example = torch.zeros((2, 3, size, size), dtype=torch.float32)  # two rows: the batch axis is not a constant
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")  # the exporter's deprecation and tracer chatter
            torch.onnx.export(wrapper, (example,), str(path), input_names=[INPUT], output_names=[OUTPUT],
                              dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}}, opset_version=OPSET,
                              dynamo=False)
    except Exception as exc:
        raise OnnxExportError(f"could not export the {classifier.family} network to ONNX ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:300] if str(exc) else ''})") from exc


def onnx_session(path: Path) -> Any:
    import onnxruntime as ort  # imported where a graph is run: the export and the check only

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def onnx_proba(session: Any, pixels: np.ndarray) -> np.ndarray:
    logits = session.run([OUTPUT], {INPUT: pixels.astype(np.float32)})[0].astype(np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def write_image_onnx(classifier: ImageClassifier, folder: Path, images: list[Any], *, run_id: int | None,
                     int8: bool = False) -> float:
    """model.onnx + protolab.json in `folder`; the fp32 graph is first checked against PyTorch on `images`, one at
    a time and all together (so a batch axis traced as a constant fails here). Returns the largest probability
    difference; an int8 export must also give PyTorch's label on most of `images`."""
    if not images:
        raise ExportError("the run's dataset has no images left to check the export on")
    folder.mkdir(parents=True, exist_ok=True)
    fp32 = folder / MODEL_FILE
    export_onnx_graph(classifier, fp32)
    pixels = classifier.pixels(images)
    expected = classifier.proba_of_pixels(pixels)
    session = onnx_session(fp32)
    x = pixels.numpy()
    got = np.concatenate([onnx_proba(session, x), *(onnx_proba(session, x[i:i + 1]) for i in range(len(x)))])
    diff = float(np.abs(got - np.concatenate([expected, expected])).max())
    if diff > PARITY_TOLERANCE:
        raise ExportError(f"the ONNX export disagrees with the PyTorch model (largest probability difference "
                          f"{diff:.2g} > {PARITY_TOLERANCE} on {len(images)} of the run's images); not kept")
    precision = "fp32"
    if int8:
        quantized = folder / "model.int8.onnx"
        quantize_int8(fp32, quantized)
        agree = float((onnx_proba(onnx_session(quantized), x).argmax(1) == expected.argmax(1)).mean())
        if agree < 0.5:
            raise ExportError(f"the int8 export gives PyTorch's label on only {agree:.0%} of {len(images)} of the "
                              "run's images; use --format onnx")
        quantized.replace(fp32)
        precision = "int8"
    spec = classifier.spec
    info = {"family": classifier.family, "task": "images", "labels": list(classifier.labels), "precision": precision,
            "model_file": MODEL_FILE, "inputs": [INPUT], "output": OUTPUT, "opset": OPSET, "run_id": run_id,
            "image_size": spec.size, "mean": list(spec.mean), "std": list(spec.std),
            "resize": "shorter side to image_size (bilinear), centre crop to image_size x image_size, RGB"}
    (folder / INFO_FILE).write_text(json.dumps(info, indent=2))
    return diff


def image_card_words(classifier: ImageClassifier, checked: int) -> CardWords:
    """How the model card speaks of an image classifier and how its README loads the graph."""
    spec = classifier.spec
    mean, std = (", ".join(f"{v:.4g}" for v in values) for values in (spec.mean, spec.std))
    load = f"""```python
import json
import numpy as np
import onnxruntime as ort
from PIL import Image

labels = json.load(open("labels.json"))
session = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])

def pixels(path, size={spec.size}):  # what the model was trained on: shorter side to size, centre crop
    image = Image.open(path).convert("RGB")
    scale = size / min(image.size)
    w, h = max(size, round(image.width * scale)), max(size, round(image.height * scale))
    image = image.resize((w, h), Image.Resampling.BILINEAR)
    left, top = (w - size) // 2, (h - size) // 2
    x = np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.float32) / 255.0
    x = (x - np.array([{mean}])) / np.array([{std}])
    return x.transpose(2, 0, 1)[None].astype(np.float32)

logits = session.run(["logits"], {{"pixel_values": pixels("photo.jpg")}})[0]
print(labels[int(logits[0].argmax())])
```
Input `pixel_values` (float32, batch × 3 × {spec.size} × {spec.size}, batch dynamic); output `logits`
(batch × {len(classifier.labels)}), in the order of `labels.json`. Apply a softmax for probabilities. The fp32 graph
was checked against the PyTorch model on {checked} of the run's own images before it was kept."""
    return CardWords(noun="image classifier", subject="an image", reads=f"images at {spec.size}×{spec.size} pixels "
                     "(the shorter side resized to that, the centre cropped)",
                     use="Sorting photos like those in {dataset} (the same kind of camera, framing and classes)",
                     other="other kinds of photos (lighting, backgrounds, cameras)", how_to_load=load)
