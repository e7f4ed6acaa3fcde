"""What the training loop optimises and reports: by default a softmax over classes with cross-entropy. Another
objective (core.multilabel: a sigmoid per tag, binary cross-entropy) offers the same four methods."""

from __future__ import annotations

from typing import Any

import numpy as np

from core.evaluation.metrics import validation_scores
from core.text.batching import TokenBatches


class SingleLabel:
    """What the loop optimises and reports by default: a softmax over the classes, cross-entropy, and validation
    loss/accuracy/macro-F1 of the argmax. Another objective (core.multilabel: a sigmoid per tag) offers the same
    four methods."""

    def loss(self, logits: Any, labels: Any, weight: Any) -> Any:
        import torch.nn.functional as F

        return F.cross_entropy(logits, labels, weight=weight)

    def proba(self, logits: Any) -> Any:
        import torch

        return torch.softmax(logits, dim=-1)

    def scores(self, y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
        return validation_scores(y, proba)

    def weights(self, batches: TokenBatches, n_labels: int) -> Any:
        return class_weights(batches, n_labels)


SINGLE_LABEL = SingleLabel()


def class_weights(batches: TokenBatches, n_labels: int) -> Any:
    import torch

    counts = np.bincount(np.asarray(batches.labels), minlength=n_labels).astype(np.float64)
    weights = len(batches.labels) / (n_labels * np.maximum(counts, 1.0))
    return torch.tensor(weights, dtype=torch.float32)
