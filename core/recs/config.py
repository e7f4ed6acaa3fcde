"""Recommender settings: one frozen config dataclass per model kind, validated on construction.

build_config turns loose options (CLI, Train page) into the dict stored on the run; parse_config reads it back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from core.errors import ProtolabError
from core.metric_keys import DISPLAY_K
from core.runs import registry
from core.runs.device import is_device, unknown_device_text
from db.enums import TaskKind

PROTOCOLS = ("stratified_item", "leave_last_out", "dataset")
# What each protocol means for the user, said where a run is started and where it is evaluated: only
# "dataset" uses the split chosen at upload; the others re-split the interactions when the run starts.
PROTOCOL_TEXT = {
    "stratified_item": "a fresh 75/25 split per item (seed 42, comparable with published MovieLens figures), "
                       "not the split chosen at upload",
    "leave_last_out": "a fresh split holding out each user's last interaction (by time), not the split chosen "
                      "at upload",
    "dataset": "the split chosen at upload (its validation part scores the validation NDCG; closed-form kinds then "
               "train on it too)",
}


class RecommenderError(ProtolabError):
    """A recommender cannot be configured, trained or served as asked."""


def protocol_text(protocol: str) -> str:
    return PROTOCOL_TEXT.get(str(protocol), str(protocol))


@dataclass(frozen=True)
class RecommenderConfig:
    """Settings every recommender shares."""

    k: int = DISPLAY_K
    seed: int = 42
    split_protocol: str = "stratified_item"  # | "leave_last_out" | "dataset"
    train_ratio: float = 0.75
    device: str = "auto"

    def __post_init__(self) -> None:
        check(1 <= self.k <= 1000, f"k must be between 1 and 1000, got {self.k}")
        check(self.split_protocol in PROTOCOLS,
               f"unknown split_protocol {self.split_protocol!r}: use one of {', '.join(PROTOCOLS)}")
        check(0.0 < self.train_ratio < 1.0, f"train_ratio must be between 0 and 1, got {self.train_ratio}")
        check(is_device(self.device), unknown_device_text(self.device))


@dataclass(frozen=True)
class PopularityConfig(RecommenderConfig):
    pass


@dataclass(frozen=True)
class ItemKnnConfig(RecommenderConfig):
    neighbours: int = 200  # 200 / 10: best on the MovieLens-100K validation split (bench/movielens.py --tune)
    shrink: float = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.neighbours >= 1, f"neighbours must be at least 1, got {self.neighbours}")


@dataclass(frozen=True)
class EaseConfig(RecommenderConfig):
    l2: float = 1000.0  # best on the MovieLens-100K validation split (bench/movielens.py --tune)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.l2 > 0, f"l2 must be positive, got {self.l2}")


@dataclass(frozen=True)
class BprConfig(RecommenderConfig):
    # Picked on a validation split drawn from MovieLens-100K train (see BENCHMARKS.md), starting from
    # Cornac's settings (k=200, 100 iterations, lr 0.01, lambda 0.001); the fastest of the best.
    factors: int = 200
    epochs: int = 75
    batch_size: int = 1024
    learning_rate: float = 0.02
    weight_decay: float = 0.005

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_training(self)


@dataclass(frozen=True)
class SequentialConfig(RecommenderConfig):
    factors: int = 64
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 0.003
    max_length: int = 50
    dropout: float = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_training(self)
        check(2 <= self.max_length <= 1000, f"max_length must be between 2 and 1000, got {self.max_length}")
        check(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class ContentConfig(RecommenderConfig):
    model_id: str | None = None  # None = the bundled MiniLM sentence model
    collaborative_weight: float = 0.5  # blend with item k-NN; 0 = text only
    neighbours: int = 100

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0.0 <= self.collaborative_weight <= 1.0,
               f"collaborative_weight must be between 0 and 1, got {self.collaborative_weight}")


def check(ok: bool, message: str) -> None:
    """Raise a RecommenderError with `message` unless `ok` (the one way settings and runs refuse bad input)."""
    if not ok:
        raise RecommenderError(message)


def _check_training(cfg: Any) -> None:
    check(1 <= cfg.factors <= 4096, f"factors must be between 1 and 4096, got {cfg.factors}")
    check(1 <= cfg.epochs <= 10_000, f"epochs must be between 1 and 10000, got {cfg.epochs}")
    check(cfg.batch_size >= 1, f"batch_size must be at least 1, got {cfg.batch_size}")
    check(cfg.learning_rate > 0, f"learning_rate must be positive, got {cfg.learning_rate}")
    check(getattr(cfg, "weight_decay", 0) >= 0, "weight_decay must not be negative")


def build_config(model_kind: str, options: dict[str, Any]) -> dict[str, Any]:
    """The full config dict for a recommender from the options given; unknown or invalid ones raise."""
    cls = config_class(model_kind)
    options = dict(options)
    gpus = options.pop("gpus", None)
    check(gpus in (None, 1), "recommenders train on one device; --gpus must be 1")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise RecommenderError(f"option(s) {', '.join(unknown)} do not apply to the {model_kind} recommender "
                               f"(it takes {', '.join(known)})")
    typed = {}
    for name, value in options.items():
        typed[name] = _coerce(name, value, known[name].default)
    return asdict(cls(**typed))


def _coerce(name: str, value: Any, default: Any) -> Any:
    kind = type(default) if default is not None else str
    try:
        if kind is int and not (isinstance(value, float) and not value.is_integer()):
            return int(value)
        if kind in (float, str):
            return kind(value)
    except (TypeError, ValueError):
        pass
    raise RecommenderError(f"option {name} must be {kind.__name__}, got {value!r}")


def model_class(model_kind: str) -> Any:
    """The model class of a recommender kind (its registry entry names it); it names its config class."""
    kind = registry.find_kind(model_kind)
    if kind is None or kind.task is not TaskKind.INTERACTIONS or kind.model is None:
        known = [k.name for k in registry.all_kinds(TaskKind.INTERACTIONS) if k.model]
        raise RecommenderError(f"unknown recommender {model_kind!r}: use one of {', '.join(known)}")
    return kind.model_class()


def config_class(model_kind: str) -> type[RecommenderConfig]:
    return model_class(model_kind).config


def parse_config(model_kind: str, config: dict[str, Any]) -> RecommenderConfig:
    cls = config_class(model_kind)
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in config.items() if k in names})
