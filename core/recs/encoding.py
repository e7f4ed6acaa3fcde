"""Interactions encoded for the models: users and items mapped to 0..n-1, a sparse matrix and per-user sequences.

The same encoding serves training, evaluation and a reloaded model, so ids map to the same rows and columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from core.recs.models import UserBatch


@dataclass
class Interactions:
    """Interactions with users and items mapped to 0..n-1 (the order the model's arrays use)."""

    user_ids: list[str]
    item_ids: list[str]
    matrix: sp.csr_matrix  # (users, items) 1.0 where seen
    sequences: list[np.ndarray]  # per user, item indices oldest first

    @property
    def user_index(self) -> dict[str, int]:
        return {u: i for i, u in enumerate(self.user_ids)}

    @property
    def item_index(self) -> dict[str, int]:
        return {u: i for i, u in enumerate(self.item_ids)}

    def batch(self, users: np.ndarray) -> UserBatch:
        return UserBatch(users=users, rows=self.matrix[users], sequences=[self.sequences[u] for u in users])


def encode(frame: pd.DataFrame, user_ids: list[str], item_ids: list[str]) -> Interactions:
    """Encode a frame of (user, item[, timestamp]) rows; rows naming unknown users or items are dropped."""
    uidx, iidx = {u: i for i, u in enumerate(user_ids)}, {u: i for i, u in enumerate(item_ids)}
    users = frame["user"].astype(str).map(uidx)
    items = frame["item"].astype(str).map(iidx)
    keep = users.notna() & items.notna()
    u, i = users[keep].to_numpy(dtype=np.int64), items[keep].to_numpy(dtype=np.int64)
    matrix = sp.csr_matrix((np.ones(len(u), dtype=np.float32), (u, i)), shape=(len(user_ids), len(item_ids)))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0  # implicit feedback: a repeat interaction counts once
    when = frame["timestamp"][keep].to_numpy() if "timestamp" in frame.columns else np.arange(len(u))
    order = np.lexsort((np.arange(len(u)), when, u))
    bounds = np.searchsorted(u[order], np.arange(len(user_ids) + 1))
    sequences = [i[order[bounds[r]:bounds[r + 1]]] for r in range(len(user_ids))]
    return Interactions(list(user_ids), list(item_ids), matrix, sequences)


def index_train(train: pd.DataFrame, catalogue: pd.DataFrame | None, *, with_catalogue: bool) -> Interactions:
    """Users and items known at training time (the content model also knows catalogue-only items)."""
    users = sorted(train["user"].astype(str).unique())
    items = list(dict.fromkeys(sorted(train["item"].astype(str).unique())))
    if with_catalogue and catalogue is not None:
        extra = sorted(set(catalogue["item"].astype(str)) - set(items))
        items += extra
    return encode(train, users, items)
