"""Train/validation/test assignment for classification rows: per-label shuffles with fixed row counts.

Interactions split per user instead (core.data.interactions.per_user_split).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from core.data.types import DatasetError, SplitConfig

# The splits a run predicts (and so the ones its errors, and changes made from them, come from): training rows
# are never predicted. Users and the CLI may write "val" for validation.
PREDICTION_SPLIT_ALIASES = {"val": "validation", "valid": "validation", "validation": "validation", "test": "test"}


def parse_fractions(text: str) -> tuple[float, float, float]:
    """'0.8,0.1,0.1' -> (0.8, 0.1, 0.1), checked."""
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError as exc:
        raise DatasetError(f"--split must look like 0.8,0.1,0.1, got {text!r}") from exc
    if len(parts) != 3:
        raise DatasetError(f"--split needs three fractions (train,validation,test), got {text!r}")
    return SplitConfig(fractions=parts).fractions  # type: ignore[arg-type]


def split_by_label(labels: pd.Series, fractions: Sequence[float], seed: int) -> np.ndarray:
    """Per class: shuffle with `seed`, then give each non-empty split at least one row."""
    rng = np.random.default_rng(seed)
    codes, uniques = pd.factorize(labels, sort=True)
    out = np.full(len(labels), "train", dtype=object)
    for c in range(len(uniques)):
        idx = np.flatnonzero(codes == c)
        rng.shuffle(idx)
        n_train, n_val, _ = allocate(len(idx), fractions)
        out[idx[n_train:n_train + n_val]] = "validation"
        out[idx[n_train + n_val:]] = "test"
    return out


def allocate(n: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    """Row counts (train, validation, test) for `n` rows; non-zero fractions get >= 1 row when n allows."""
    n_val = max(1, round(n * fractions[1])) if fractions[1] > 0 else 0
    n_test = max(1, round(n * fractions[2])) if fractions[2] > 0 else 0
    while n - n_val - n_test < 1 and (n_val or n_test):
        if n_val >= n_test:
            n_val -= 1
        else:
            n_test -= 1
    return n - n_val - n_test, n_val, n_test


def canonical_prediction_split(name: str) -> str | None:
    """"validation" or "test" for any way of writing them, None for anything else."""
    return PREDICTION_SPLIT_ALIASES.get(str(name).lower())
