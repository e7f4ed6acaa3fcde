"""The zero-label baseline: each text gets the label whose name (or one-line description) its MiniLM embedding
is closest to. No training, so it says what a team would get with no labels at all."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from core.evaluation.metrics import classification_report
from core.metric_keys import CLASSIFICATION_METRICS

EVALUATED_SPLITS = ("validation", "test")
TEMPERATURE = 0.05  # cosines are close together; a low temperature turns them into usable probabilities


def label_prompts(labels: Sequence[str], descriptions: Mapping[str, str] | None = None) -> list[str]:
    """The text embedded for each label: its description when one is given, else its name."""
    descriptions = descriptions or {}
    return [str(descriptions.get(label) or "").strip() or str(label) for label in labels]


def zero_label_proba(text_embeddings: np.ndarray, label_embeddings: np.ndarray) -> np.ndarray:
    """(N, C) probabilities from cosine similarity (both inputs are unit vectors), softmax with TEMPERATURE."""
    logits = text_embeddings @ label_embeddings.T / TEMPERATURE  # N, C
    logits -= logits.max(axis=1, keepdims=True)
    expo = np.exp(logits)
    return expo / expo.sum(axis=1, keepdims=True)


def zero_label_report(text_embeddings: np.ndarray, labels: np.ndarray, splits: np.ndarray, names: Sequence[str],
                      descriptions: Mapping[str, str] | None, encoder: Any) -> dict[str, Any]:
    """Headline metrics of the zero-label baseline per evaluated split, and the prompts it used."""
    prompts = label_prompts(names, descriptions)
    proba = zero_label_proba(text_embeddings, encoder.encode(prompts))
    return score_splits(proba, labels, splits, names, prompts)


def score_splits(proba: np.ndarray, labels: np.ndarray, splits: np.ndarray, names: Sequence[str],
                 prompts: Sequence[str]) -> dict[str, Any]:
    names = list(names)
    pred = np.asarray(names, dtype=object)[proba.argmax(axis=1)]
    reports = {}
    for split in EVALUATED_SPLITS:
        mask = np.asarray(splits) == split
        if mask.any():
            report = classification_report(list(labels[mask]), list(pred[mask]), names)
            reports[split] = {k: report[k] for k in CLASSIFICATION_METRICS}
    return {"prompts": dict(zip(names, prompts, strict=True)), "reports": reports}
