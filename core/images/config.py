"""An image classification run's settings: the ImageConfig dataclass, per-kind defaults and validation.

The Train page, the CLI and the worker build configs here, so a bad value is refused before a run starts. The
field names the shared training loop reads (epochs, batch_size, learning_rate, warmup_ratio ...) mean what they
mean in core.text.config.TrainConfig.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from core.text.config import LoopConfig, TrainingError, check_training_numbers, kind_values

BUILD_CONFIG = "core.images.config:build_config"  # the kinds whose entries name this function are the image kinds
MAX_IMAGE_SIZE = 1024


@dataclass(frozen=True)
class ImageConfig(LoopConfig):
    epochs: int = 5
    batch_size: int = 32  # per process; the effective batch is batch_size × gpus × grad_accum_steps
    learning_rate: float = 1e-3  # build_config picks the kind's default (its registry entry's learning_rate)
    image_size: int = 160  # the square side the model sees (kinds set their own default)
    augment: bool = True  # random resized crop + horizontal flip of the training images
    model_id: str | None = None  # None = the bundled EfficientNet-Lite0 (ImageNet); else a Hugging Face id/folder
    auto_batch_size: bool = False  # read by the shared loop's callers; image kinds keep the batch they are given
    probe_c: float = 1.0  # linear probe: inverse L2 strength of the logistic regression
    cnn_width: int = 32  # cnn: channels of the first block (doubled per block)


def build_config(model_kind: str, options: dict[str, Any]) -> dict[str, Any]:
    """The full, validated config dict of an image classification run from the options a user gave."""
    # The entry's defaults (image size, epochs ...) go under what the user gave: each image kind sets its own.
    values = kind_values(model_kind, options, ImageConfig, BUILD_CONFIG, noun="image model", entry_defaults=True)
    cfg = ImageConfig(**values)
    validate(cfg)
    return asdict(cfg)


def config_from_dict(config: dict[str, Any]) -> ImageConfig:
    known = {f.name for f in fields(ImageConfig)}
    return ImageConfig(**{k: v for k, v in config.items() if k in known})


def validate(cfg: ImageConfig) -> None:
    check_training_numbers(cfg, counts=("epochs", "batch_size", "grad_accum_steps", "gpus", "image_size", "cnn_width"),
                           positive=("learning_rate", "max_grad_norm", "probe_c"))
    if not 8 <= cfg.image_size <= MAX_IMAGE_SIZE:
        raise TrainingError(f"image_size must be between 8 and {MAX_IMAGE_SIZE} pixels, got {cfg.image_size}")
