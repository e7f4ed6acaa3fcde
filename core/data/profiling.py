"""Profiles of stored datasets: the numbers behind the Datasets page charts.

Pure functions over the canonical frames of core.data.storage; token counts come from the caller's counter
(core.text.pretrained.default_token_counter on the Datasets page).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

TOKEN_SAMPLE = 2000  # tokenizing every row of a large set would keep the page waiting
SAMPLE_CLASSES = 8  # example texts for this many of the largest classes (31 classes made a 7,000 px page)
SAMPLE_CHARS = 200  # each example cut to this many characters


def _shorten(text: str) -> str:
    return text if len(text) <= SAMPLE_CHARS else text[:SAMPLE_CHARS].rstrip() + "…"


def classification_profile(frame: pd.DataFrame, count_tokens: Callable[[list[str]], list[int]] | None = None,
                           samples_per_class: int = 3, seed: int = 0) -> dict[str, Any]:
    """Rows, class balance, text lengths (characters; tokens on a sample), duplicates, sample rows per class."""
    classes = {str(k): int(v) for k, v in frame["label"].value_counts().items()}
    chars = frame["text"].str.len().to_numpy()
    sample = frame["text"].sample(min(TOKEN_SAMPLE, len(frame)), random_state=seed).tolist()
    tokens = np.asarray(count_tokens(sample), dtype=int) if count_tokens and sample else None
    # A page of examples, not of reviews: the largest classes only, each example cut short.
    shown = list(classes)[:SAMPLE_CLASSES]
    groups = {str(k): g for k, g in frame.sample(frac=1.0, random_state=seed).groupby("label")}
    samples = {label: [_shorten(t) for t in groups[label].head(samples_per_class)["text"]]
               for label in shown if label in groups}
    ratio = max(classes.values()) / min(classes.values()) if classes else 1.0
    return {"rows": len(frame), "classes": classes, "imbalance_ratio": round(ratio, 2),
            "imbalanced": ratio >= 3, "chars": chars, "tokens": tokens,
            "duplicates": int(frame["text"].duplicated().sum()), "samples": samples}


def interactions_profile(frame: pd.DataFrame) -> dict[str, Any]:
    """Users, items, interactions, sparsity, ratings and the long tails per user and per item."""
    per_user = frame["user"].value_counts()
    per_item = frame["item"].value_counts()
    n_users, n_items = len(per_user), len(per_item)
    return {"users": n_users, "items": n_items, "interactions": len(frame),
            "sparsity": 1 - len(frame) / (n_users * n_items) if n_users and n_items else 1.0,
            "ratings": frame["rating"].to_numpy() if "rating" in frame else None,
            "per_user": per_user.to_numpy(), "per_item": per_item.to_numpy(),
            "single_users": int((per_user == 1).sum()), "single_items": int((per_item == 1).sum())}


def long_tail_share(counts: Sequence[int], top_fraction: float = 0.2) -> float:
    """Share of all interactions held by the top `top_fraction` of users/items (0.8 = a steep long tail)."""
    ordered = np.sort(np.asarray(counts))[::-1]
    if ordered.size == 0 or ordered.sum() == 0:
        return 0.0
    top = max(1, int(round(ordered.size * top_fraction)))
    return float(ordered[:top].sum() / ordered.sum())
