"""A model kind that lives outside core/: always the training split's biggest class.

Loaded through PROTOLAB_MODEL_KINDS=tests.toy_kind, it shows that adding a model kind is one registry entry plus
its module: the CLI, the Train page, the worker and serving pick it up without another file changing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from core.data.storage import load_split
from core.errors import ProtolabError
from core.runs.files import RunFiles
from core.runs.registry import ModelKind, Option, register
from core.text.serving import TextClassifier, read_meta
from db.enums import TaskKind

NAME = "toy-majority"


# Its options: the Train form draws them and `protolab train` gets a flag for each, from this schema alone.
OPTIONS = (Option("seed", int, "Seed", "same seed, same run", low=0, high=1000),
           Option("smoothing", float, "Toy smoothing", "how much the toy hedges its one answer", low=0.0,
                  high=1.0, step=0.05))


def build_config(name: str, options: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - {o.name for o in OPTIONS})
    if unknown:
        raise ProtolabError(f"option(s) {', '.join(unknown)} do not apply to the {name} model")
    return {"seed": int(options.get("seed", 0)), "smoothing": float(options.get("smoothing", 0.1))}


def execute(ctx: Any) -> dict[str, Any]:
    train = load_split(ctx.dataset(), "train")
    labels = sorted(train["label"].astype(str).unique())
    majority = str(train["label"].astype(str).value_counts().idxmax())
    ctx.files.model.mkdir(parents=True, exist_ok=True)
    (ctx.files.model / "majority.json").write_text(json.dumps({"label": majority}))
    ctx.files.write_meta({"kind": NAME, "task": "classification", "labels": labels, "max_length": 128,
                          "dataset_id": ctx.dataset_id})
    ctx.log_metric("train_loss", 0.0, step=1)
    return {"macro_f1": 0.5, "accuracy": 0.5, "labels": labels}


class MajorityClassifier(TextClassifier):
    family = NAME

    def __init__(self, labels: list[str], majority: str) -> None:
        self.labels, self.max_length, self.majority = labels, 128, majority

    def score(self, texts: Sequence[str], batch_size: int = 64) -> tuple[np.ndarray, list[bool]]:
        proba = np.zeros((len(texts), len(self.labels)))
        proba[:, self.labels.index(self.majority)] = 1.0
        return proba, [False] * len(texts)


def load(files: RunFiles, device: str = "cpu") -> MajorityClassifier:
    majority = json.loads((files.model / "majority.json").read_text())["label"]
    return MajorityClassifier(read_meta(files).labels, majority)


register(ModelKind(NAME, TaskKind.CLASSIFICATION, "Toy majority", "always the biggest class of the training split",
                   "tests.toy_kind:build_config", "tests.toy_kind:execute", "tests.toy_kind:load", options=OPTIONS))
