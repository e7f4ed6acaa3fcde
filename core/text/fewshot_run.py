"""The worker's executor for SetFit runs, and the serving loader of their models.

A labelled dataset trains like any classification run (train split; validation and test predictions, metrics).
On a dataset still being labelled SetFit runs as the Label page's retrain job instead (core.labelling.retrain).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from core.evaluation.metrics import validation_scores
from core.runs.context import RunContext
from core.runs.device import resolve_device
from core.runs.files import RunFiles
from core.text.executor import finish_run, label_order, load_splits
from core.text.fewshot import FewShotModel, config_from_dict, load_fewshot, resolve, save_fewshot, train_on
from core.text.serving import DEFAULT_BATCH_SIZE, ArtifactError, TextClassifier, configure_torch_threads, read_meta


def execute_run(ctx: RunContext) -> dict[str, Any]:
    """Train one SetFit run for core.runs.worker; returns the run's final metrics."""
    cfg = config_from_dict(ctx.config)
    ctx.progress(0.0, "loading data", force=True)
    splits = load_splits(ctx.dataset(), seed=cfg.seed)
    labels = label_order(splits)
    device = resolve(cfg.device)
    ctx.set_device(device)
    model, train_time = train_on(ctx, cfg, splits["train"]["text"].tolist(), splits["train"]["label"].tolist(),
                                 labels, device)
    ctx.progress(0.9, "predicting validation and test sets", force=True)
    probas = {split: model.predict_proba(splits[split]["text"].tolist()) for split in ("validation", "test")}

    y_val = np.array([labels.index(v) for v in splits["validation"]["label"]])
    for name, value in validation_scores(y_val, probas["validation"]).items():
        ctx.log_metric(name, value, step=1, epoch=1.0, split="validation")
    save_fewshot(model, ctx.files.model)
    return finish_run(ctx, cfg, splits, labels, probas, best_epoch=1,
                   samples_per_s=len(splits["train"]) / max(train_time, 1e-9), train_time_s=train_time, device=device)


class SetFitClassifier(TextClassifier):
    family = "setfit"

    def __init__(self, model: FewShotModel, device: str) -> None:
        self.model, self.labels, self.max_length, self.device = model, list(model.labels), model.max_length, device

    def score(self, texts: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE) -> tuple[np.ndarray, list[bool]]:
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, len(self.labels))), []
        return self.model.predict_proba(texts, batch_size), self.model.truncated(texts)


def load_setfit_classifier(files: RunFiles, device: str = "auto") -> SetFitClassifier:
    """The SetFit kind's loader."""

    meta = read_meta(files)
    configure_torch_threads()
    device = resolve_device(device)
    model = load_fewshot(files.model, device)
    if model.labels != meta.labels:
        raise ArtifactError(f"{files.model}: the model's labels {model.labels} do not match meta.json's "
                            f"{meta.labels}")
    return SetFitClassifier(model, device)
