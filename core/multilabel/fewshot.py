"""SetFit on tag sets: setfit's one-vs-rest multi-target strategy (pairs that share a tag are positives), then one
logistic regression per tag on the fine-tuned embeddings. Saved without pickle, as the single-label SetFit is."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.runs.context import RunContext
from core.runs.device import one_blas_thread
from core.text.config import TrainingError
from core.text.executor import stop_if_cancelled
from core.text.fewshot import (
    HEAD_TRUSTED_TYPES,
    TRAIN_SHARE,
    FewShotModel,
    SetFitConfig,
    load_encoder,
    load_fewshot,
    save_fewshot,
)

TAGS_HEAD_TRUSTED = [*HEAD_TRUSTED_TYPES, "sklearn.multiclass.OneVsRestClassifier",
                     "sklearn.preprocessing._label.LabelBinarizer"]


class SetFitTags(FewShotModel):
    """The encoder and a one-vs-rest head: probabilities per tag, in `.labels` order."""

    device = "cpu"

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        if not len(texts):
            return np.zeros((0, len(self.labels)))
        return np.asarray(self.head.predict_proba(self.embed(texts, batch_size)), dtype=np.float64)


def train_setfit_tags(ctx: RunContext, texts: Sequence[str], y: np.ndarray, tags: Sequence[str], cfg: SetFitConfig,
                      device: str) -> SetFitTags:
    """Contrastive fine-tuning on tag-sharing pairs, then the per-tag heads; progress and cancel through `ctx`."""
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from transformers import TrainerCallback

    if (y.sum(0) > 0).sum() < 2:
        raise TrainingError("SetFit needs examples of at least two different tags")
    ctx.progress(0.02, f"loading the sentence encoder · {len(texts)} examples", force=True)
    body = load_encoder(cfg.model_id, device, cfg.max_length)
    head = OneVsRestClassifier(LogisticRegression(max_iter=1000, class_weight="balanced" if cfg.class_weights
                                                  else None))
    model = SetFitModel(model_body=body, model_head=head, multi_target_strategy="one-vs-rest")
    pairs = min(cfg.max_pairs, 2 * cfg.num_iterations * len(y))
    max_steps = max(1, math.ceil(pairs / cfg.batch_size) * cfg.epochs)
    args = TrainingArguments(batch_size=cfg.batch_size, num_epochs=cfg.epochs, num_iterations=cfg.num_iterations,
                             max_steps=max_steps, body_learning_rate=cfg.learning_rate, max_length=cfg.max_length,
                             seed=cfg.seed, report_to="none", show_progress_bar=False, save_strategy="no",
                             logging_steps=5, output_dir=str(Path(tempfile.gettempdir()) / "protolab-setfit"))

    class _Progress(TrainerCallback):
        def on_step_end(self, _args, state, control, **_kw):  # noqa: ANN001, ANN202
            total = state.max_steps or max_steps
            ctx.progress(0.05 + (TRAIN_SHARE - 0.05) * state.global_step / max(1, total),
                         f"contrastive pairs · step {state.global_step}/{total}")
            if ctx.should_stop():
                control.should_training_stop = True

    dataset = Dataset.from_dict({"text": [str(t) for t in texts], "label": [row.tolist() for row in y.astype(int)]})
    trainer = Trainer(model=model, args=args, train_dataset=dataset, callbacks=[_Progress()])
    with one_blas_thread():
        trainer.train()
    stop_if_cancelled(ctx)
    tagger = SetFitTags(model.model_body, model.model_head, tags, cfg.max_length)
    tagger.device = device
    return tagger


def save_setfit_tagger(model: SetFitTags, folder: Path) -> None:
    save_fewshot(model, folder)  # the encoder as safetensors, the one-vs-rest head with skops


def load_setfit_tags(folder: Path, device: str = "cpu") -> SetFitTags:
    """Load a saved multi-label SetFit model, refusing a head with types outside TAGS_HEAD_TRUSTED."""
    model = load_fewshot(folder, device, TAGS_HEAD_TRUSTED, SetFitTags)
    model.device = device
    return model
