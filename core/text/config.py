"""A classification run's settings: the TrainConfig dataclass, per-model defaults and validation.

The Train page, the CLI and the worker all build configs here, so a bad value is refused before a run starts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from core.errors import ProtolabError
from core.runs import registry
from core.runs.device import is_device, unknown_device_text

BUILD_CONFIG = "core.text.config:build_config"  # the kinds whose entries name this function are the text kinds


class TrainingError(ProtolabError):
    """Settings or data that cannot be trained on: a bad value, one label only, no memory even at batch 1."""


@dataclass(frozen=True)
class LoopConfig:
    """The settings the shared training loop (core.text.loop) reads from every neural kind, text or image."""

    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    grad_accum_steps: int = 1
    max_grad_norm: float = 1.0
    patience: int = 2  # epochs without a better validation macro-F1 before stopping; 0 = never stop early
    class_weights: bool = False
    seed: int = 42
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N" | "mps"
    gpus: int = 1


@dataclass(frozen=True)
class TrainConfig(LoopConfig):
    epochs: int = 3
    batch_size: int = 32  # per process; the effective batch is batch_size × gpus × grad_accum_steps
    learning_rate: float = 1e-4  # build_config picks the kind's default (its registry entry's learning_rate)
    max_length: int = 128
    model_id: str | None = None  # None = the bundled MiniLM
    auto_batch_size: bool = False  # on CUDA: batch_size is the base; the run picks a bigger one from a memory probe
    init_embeddings: bool = True  # LSTM: start from the pretrained model's word embeddings
    lstm_dropout: float = 0.2  # LSTM: 0 makes a run deterministic enough to compare DDP with one process
    tfidf_ngram_max: int = 2
    tfidf_min_df: int = 1
    tfidf_max_features: int = 200_000
    tfidf_c: float = 4.0
    minutes: float | None = None  # time budget of the whole run: training stops in time, keeping the best weights
    train_rows: int | None = None  # a stratified sample of the training split this size (a budget's plan); None: all


def kind_values(model_kind: str, options: dict[str, Any], config_type: type, build_config: str, *,
                noun: str = "model", entry_defaults: bool = False) -> dict[str, Any]:
    """The config values a user's options give one model kind whose entry builds with `build_config`: unknown
    kinds and options refused with what there is; `entry_defaults`: the entry's option defaults under the user's;
    the kind's learning rate unless one was given."""
    kind = registry.find_kind(model_kind)
    if kind is None or kind.build_config != build_config:
        known = [k.name for k in registry.all_kinds() if k.build_config == build_config]
        raise TrainingError(f"unknown {noun} {model_kind!r}: use one of {', '.join(known)}")
    known = {f.name for f in fields(config_type)}
    values = {k: v for k, v in options.items() if v is not None and k != "resume"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise TrainingError(f"option(s) {', '.join(unknown)} do not apply to the {model_kind} model")
    if entry_defaults:
        for option in kind.options:
            if option.default is not None and option.name in known:
                values.setdefault(option.name, option.default)
    if kind.learning_rate is not None:
        values.setdefault("learning_rate", kind.learning_rate)
    return values


def build_config(model_kind: str, options: dict[str, Any]) -> dict[str, Any]:
    """The full, validated config dict of a classification run from the options a user gave."""
    values = kind_values(model_kind, options, TrainConfig, BUILD_CONFIG)
    cfg = TrainConfig(**values)
    _validate(cfg)
    return asdict(cfg)


def config_from_dict(config: dict[str, Any]) -> TrainConfig:
    known = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in config.items() if k in known})


def check_training_numbers(cfg: Any, *, counts: tuple[str, ...], positive: tuple[str, ...]) -> None:
    """The checks every neural config shares (text and image kinds): `counts` are whole numbers ≥ 1, `positive`
    numbers > 0; patience and seed whole numbers ≥ 0; the warm-up ratio, weight decay and device as they must be."""
    for name in counts:
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise TrainingError(f"{name} must be a positive whole number, got {value!r}")
    for name in ("patience", "seed"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise TrainingError(f"{name} must be a whole number ≥ 0, got {value!r}")
    for name in positive:
        if not is_number(getattr(cfg, name)) or getattr(cfg, name) <= 0:
            raise TrainingError(f"{name} must be a number > 0, got {getattr(cfg, name)!r}")
    if not is_number(cfg.warmup_ratio) or not 0 <= cfg.warmup_ratio < 1:
        raise TrainingError(f"warmup_ratio must be in [0, 1), got {cfg.warmup_ratio!r}")
    if not is_number(cfg.weight_decay) or cfg.weight_decay < 0:
        raise TrainingError(f"weight_decay must be ≥ 0, got {cfg.weight_decay!r}")
    if not is_device(cfg.device):
        raise TrainingError(unknown_device_text(cfg.device))


def _validate(cfg: TrainConfig) -> None:
    check_training_numbers(cfg, counts=("epochs", "batch_size", "max_length", "grad_accum_steps", "gpus",
                                        "tfidf_ngram_max", "tfidf_min_df", "tfidf_max_features"),
                           positive=("learning_rate", "max_grad_norm", "tfidf_c"))
    if cfg.minutes is not None and (not is_number(cfg.minutes) or cfg.minutes <= 0):
        raise TrainingError(f"minutes (the time budget) must be a number > 0, got {cfg.minutes!r}")
    if cfg.train_rows is not None and (isinstance(cfg.train_rows, bool) or not isinstance(cfg.train_rows, int)
                                       or cfg.train_rows < 1):
        raise TrainingError(f"train_rows must be a positive whole number, got {cfg.train_rows!r}")
    if cfg.max_length > 8192:
        raise TrainingError(f"max_length {cfg.max_length} is beyond what any bundled model reads (8192)")


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def replace_config(cfg: TrainConfig, **changes: Any) -> TrainConfig:
    from dataclasses import replace

    return replace(cfg, **changes)
