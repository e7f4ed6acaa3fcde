"""Serving an image classification run: its network from the run's own folder, probabilities and labelled
predictions for PIL images, and occlusion heatmaps that explain them.

Predictions are core.text.serving.Prediction objects (label, confidence, probabilities), so the CLI, the API and
the demo print an image's answer exactly as a text's.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from core.images import TASK
from core.images.nets import load_net
from core.images.pixels import normalise, to_square_tensor
from core.runs.device import resolve_device
from core.runs.files import RunFiles
from core.runs.jobs import completed_run
from core.runs.registry import get_kind
from core.text.serving import ArtifactError, Prediction, configure_torch_threads

log = logging.getLogger(__name__)
BATCH_SIZE = 32
MAX_IMAGES = 256  # one predict call (CLI, API) at most
OCCLUSION_GRID = 8  # the heatmap's cells per side
OCCLUSION_FILL = 0.5  # the patch colour (mid grey in [0, 1]): "nothing here"


class ImageClassifier:
    """A run's network on one device: probabilities in `.labels` order, predictions and explanations."""

    runtime = "torch"
    precision = "fp32"

    def __init__(self, model: Any, labels: list[str], spec: Any, device: str, family: str) -> None:
        self.model, self.labels, self.spec, self.device, self.family = model, labels, spec, device, family

    @property
    def reads(self) -> str:
        return f"reads images at {self.spec.size}×{self.spec.size} pixels"

    def pixels(self, images: Sequence[Image.Image]) -> Any:
        """(B, 3, S, S) normalised float tensor of PIL images (centre-cropped square, as in evaluation)."""
        import torch

        raw = torch.stack([to_square_tensor(im, self.spec.size) for im in images])
        return normalise(raw, self.spec.mean, self.spec.std)

    def proba_of_pixels(self, pixels: Any, batch_size: int = BATCH_SIZE) -> np.ndarray:
        import torch

        parts = []
        with torch.inference_mode():
            for start in range(0, len(pixels), batch_size):
                logits = self.model(pixel_values=pixels[start:start + batch_size].to(self.device)).logits
                parts.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
        return np.concatenate(parts) if parts else np.zeros((0, len(self.labels)))

    def predict_proba(self, images: Sequence[Image.Image], batch_size: int = BATCH_SIZE) -> np.ndarray:
        return self.proba_of_pixels(self.pixels(list(images)), batch_size) if images else \
            np.zeros((0, len(self.labels)))

    def predict(self, images: Sequence[Image.Image], batch_size: int = BATCH_SIZE) -> list[Prediction]:
        out = []
        for row in self.predict_proba(images, batch_size):
            best = int(row.argmax())
            out.append(Prediction(label=self.labels[best], confidence=float(row[best]),
                                  probabilities={lab: float(p) for lab, p in zip(self.labels, row, strict=True)},
                                  truncated=False))
        return out

    def occlusion(self, image: Image.Image, label: str | None = None, grid: int = OCCLUSION_GRID) -> np.ndarray:
        """(grid, grid) drop in the probability of `label` (default: the predicted one) when each cell of the
        image is covered by a grey patch: high = the model looked there.

        Occlusion rather than Grad-CAM: it needs only forward passes, so it explains every kind the same way,
        the linear probe (whose backbone is frozen) and a Hugging Face model included, with no hooks into layers.
        """
        x = self.pixels([image])  # (1, 3, S, S)
        base = self.proba_of_pixels(x)[0]
        target = self.labels.index(label) if label is not None else int(base.argmax())
        size = self.spec.size
        edges = np.linspace(0, size, grid + 1).round().astype(int)
        fill = normalise_value(OCCLUSION_FILL, self.spec)
        covered = x.repeat(grid * grid, 1, 1, 1)
        for r in range(grid):
            for c in range(grid):
                covered[r * grid + c, :, edges[r]:edges[r + 1], edges[c]:edges[c + 1]] = fill
        drop = base[target] - self.proba_of_pixels(covered)[:, target]
        return drop.reshape(grid, grid)


def normalise_value(value: float, spec: Any) -> Any:
    """A grey of `value` (in [0, 1]) in the network's normalised units, per channel: (3, 1, 1)."""
    import torch

    mean = torch.tensor(spec.mean).view(3, 1, 1)
    std = torch.tensor(spec.std).view(3, 1, 1)
    return (value - mean) / std


def load_image_classifier(files: RunFiles, device: str = "auto") -> ImageClassifier:
    """The image kinds' loader: the saved network, on the GPU when there is one (`device` "auto")."""

    configure_torch_threads()
    meta = files.read_meta()
    try:
        model, labels, spec = load_net(files.model)
    except FileNotFoundError as exc:
        raise ArtifactError(f"run files incomplete: {exc.filename} is missing") from exc
    device = resolve_device(device)
    return ImageClassifier(model.to(device), labels, spec, device, str(meta.get("kind")))


def load_run_classifier(s: Any, run_id: int, device: str = "auto") -> ImageClassifier:
    """The served model of completed image run `run_id` (a JobError says why a run cannot predict; `s` a read
    session)."""
    run = completed_run(s, run_id, TASK, "predict")
    files = RunFiles.of(run.id)
    if not files.has_model():
        raise ArtifactError(f"run {run_id} has no saved model (expected {files.model})")
    return get_kind(run.model_kind).loader()(files, device)
