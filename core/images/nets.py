"""The image kinds' networks and how a run saves and reloads them: EfficientNet-Lite0 (fine-tuned, or frozen with a
logistic-regression head for the linear probe), any Hugging Face image classifier, and a small CNN from scratch.

Every network takes `pixel_values` (B, 3, S, S) normalised as its `ImageSpec` says and returns an object with
`.logits` (B, C), as a Hugging Face model does, so core.text.loop trains and scores it unchanged. A run's model
folder holds `net.json` (architecture, labels, image spec) and the weights as safetensors (no pickle).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.images.lite0 import FEATURES, MEAN, STD, EfficientNetLite0, Lite0Config, load_pretrained

NET_FILE, WEIGHTS_FILE = "net.json", "model.safetensors"
LITE0, CNN, HF = "lite0", "cnn", "hf"  # net.json's "arch"


@dataclass(frozen=True)
class ImageSpec:
    """What a network expects of its input: a square side and the per-channel mean and std of pixels in [0, 1]."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


@dataclass(frozen=True)
class Logits:
    logits: torch.Tensor


class Lite0Classifier(nn.Module):
    """EfficientNet-Lite0 with a head for the run's labels."""

    def __init__(self, num_labels: int, pretrained: bool = True) -> None:
        super().__init__()
        cfg = Lite0Config(num_classes=num_labels)
        self.net = load_pretrained(cfg) if pretrained else EfficientNetLite0(cfg)
        self.num_labels = num_labels

    def forward(self, pixel_values: torch.Tensor) -> Logits:
        return Logits(self.net(pixel_values))

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 1280) pooled features: what the linear probe and near-duplicate search read."""
        return self.net.features(pixel_values)

    def set_head(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """Put a fitted linear model (the probe's logistic regression) in as the head."""
        self.net._fc = nn.Linear(FEATURES, weight.shape[0])
        with torch.no_grad():
            self.net._fc.weight.copy_(weight)
            self.net._fc.bias.copy_(bias)


class SmallCnn(nn.Module):
    """The classic from-scratch baseline: three conv-BN-ReLU x2 + max-pool blocks (width w, 2w, 4w), global average
    pooling, dropout, a linear head. Any input size from 8 pixels."""

    def __init__(self, num_labels: int, width: int = 32, dropout: float = 0.3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for c_out in (width, width * 2, width * 4):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                       nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(c_in, num_labels))
        self.num_labels, self.width = num_labels, width

    def forward(self, pixel_values: torch.Tensor) -> Logits:
        x = self.features(pixel_values)  # (B, 4w, S/8, S/8)
        return Logits(self.head(x.mean(dim=(2, 3))))


class HfImageClassifier(nn.Module):
    """A Hugging Face image-classification model behind the same `pixel_values -> .logits` call."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model
        self.config = model.config

    def forward(self, pixel_values: torch.Tensor) -> Any:
        return self.model(pixel_values=pixel_values)


CNN_MEAN_STD = ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def build_lite0(labels: Sequence[str], size: int, pretrained: bool = True) -> tuple[Lite0Classifier, ImageSpec]:
    return Lite0Classifier(len(labels), pretrained=pretrained), ImageSpec(size, MEAN, STD)


def build_cnn(labels: Sequence[str], size: int, width: int) -> tuple[SmallCnn, ImageSpec]:
    return SmallCnn(len(labels), width), ImageSpec(size, *CNN_MEAN_STD)


def build_hf(model_id: str, labels: Sequence[str], size: int | None) -> tuple[HfImageClassifier, ImageSpec]:
    """A Hugging Face image classifier with a fresh head for `labels`; its processor gives the normalisation and
    (unless `size` says otherwise) the input size. Offline users get a clear error from the loader."""
    from transformers import AutoImageProcessor, AutoModelForImageClassification  # heavy: off the pages' path

    from core.text.pretrained import ModelNotAvailable

    id2label = dict(enumerate(labels))
    try:
        processor = AutoImageProcessor.from_pretrained(model_id, use_fast=False)  # slow = PIL, no torchvision
        model = AutoModelForImageClassification.from_pretrained(
            model_id, num_labels=len(labels), id2label=id2label, label2id={v: k for k, v in id2label.items()},
            ignore_mismatched_sizes=True)
    except (OSError, ValueError) as exc:
        raise ModelNotAvailable(f"could not load image model {model_id!r}: {str(exc).splitlines()[0][:200]}") from exc
    return HfImageClassifier(model), ImageSpec(size or _processor_size(processor), _triple(processor.image_mean),
                                               _triple(processor.image_std))


def _processor_size(processor: Any) -> int:
    size = getattr(processor, "crop_size", None) or getattr(processor, "size", None) or {}
    if isinstance(size, int):
        return size
    return int(size.get("height") or size.get("shortest_edge") or 224)


def _triple(values: Any) -> tuple[float, float, float]:
    values = list(values) if isinstance(values, (list, tuple)) else [float(values)] * 3
    return (float(values[0]), float(values[1]), float(values[2]))


# --- saving and reloading a run's network --------------------------------------------------------------------
def save_net(model: nn.Module, labels: Sequence[str], spec: ImageSpec, folder: Path) -> None:
    """The network in the run's model folder: net.json + safetensors (a Hugging Face model: its own save)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {"labels": list(labels), "spec": asdict(spec)}
    if isinstance(model, HfImageClassifier):
        info["arch"] = HF
        model.model.config.id2label = dict(enumerate(labels))
        model.model.config.label2id = {label: i for i, label in enumerate(labels)}
        model.model.save_pretrained(folder, safe_serialization=True)
    else:
        info["arch"] = CNN if isinstance(model, SmallCnn) else LITE0
        if isinstance(model, SmallCnn):
            info["width"] = model.width
        state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(folder / WEIGHTS_FILE))
    (folder / NET_FILE).write_text(json.dumps(info, indent=1))


def load_net(folder: Path) -> tuple[nn.Module, list[str], ImageSpec]:
    """(network in eval mode on the CPU, labels, input spec) of a saved run."""
    from safetensors.torch import load_file

    info = json.loads((folder / NET_FILE).read_text())
    labels = [str(x) for x in info["labels"]]
    spec = ImageSpec(int(info["spec"]["size"]), _triple(info["spec"]["mean"]), _triple(info["spec"]["std"]))
    if info["arch"] == HF:
        from transformers import AutoModelForImageClassification

        model: nn.Module = HfImageClassifier(AutoModelForImageClassification.from_pretrained(folder))
    else:
        model = (SmallCnn(len(labels), int(info.get("width", 32))) if info["arch"] == CNN
                 else Lite0Classifier(len(labels), pretrained=False))
        model.load_state_dict(load_file(str(folder / WEIGHTS_FILE), device="cpu"), strict=True)
    return model.eval(), labels, spec
