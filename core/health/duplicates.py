"""Near-duplicate rows: the same text once normalised, or MiniLM embeddings closer than a cosine threshold.

The embedding search compares one block of rows with all rows at a time, so memory stays at
block_rows x N floats however large the dataset. Each group of duplicates keeps the row in the earliest
split (train, then validation, then test); the others point at it, and a duplicate in another split than
the row kept is leakage: the model is tested on what it trained on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

SIMILARITY = 0.95  # the cosine above which two texts are near-duplicates (the audit's default)

SPLIT_RANK = {"train": 0, "validation": 1, "test": 2}
URL_PATTERN = re.compile(r"https?://\S+|www\.\S+")
MENTION_PATTERN = re.compile(r"@\w+")
_NON_WORD = re.compile(r"[\W_]+")


def normalise_text(text: str) -> str:
    """Lower case, links and @mentions dropped, punctuation and spacing collapsed: "RT @a: Hi!! http://x" -> "rt hi"."""
    text = MENTION_PATTERN.sub(" ", URL_PATTERN.sub(" ", str(text).lower()))
    return " ".join(_NON_WORD.sub(" ", text).split())


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:  # path compression keeps later finds short
            self.parent[i], i = root, self.parent[i]
        return int(root)

    def union(self, i: int, j: int) -> None:
        a, b = self.find(i), self.find(j)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


def similar_pairs(embeddings: np.ndarray, threshold: float, block_rows: int = 1024) -> np.ndarray:
    """(P, 2) index pairs i < j whose cosine (dot product of unit vectors) is at least `threshold`."""
    n = len(embeddings)
    found = []
    for start in range(0, n, block_rows):
        block = embeddings[start:start + block_rows] @ embeddings[start:].T  # b, n - start
        i, j = np.nonzero(block >= threshold)
        i, j = i + start, j + start
        keep = j > i  # each pair once, never a row with itself
        found.append(np.stack([i[keep], j[keep]], axis=1))
    return np.concatenate(found) if found else np.zeros((0, 2), dtype=int)


def find_duplicates(texts: Sequence[str], splits: Sequence[str], embeddings: np.ndarray | None = None, *,
                    threshold: float = SIMILARITY, block_rows: int = 1024) -> pd.DataFrame:
    """One row per duplicate (not the row kept): row, split, duplicate_of, similarity, leak."""
    n = len(texts)
    uf = _UnionFind(n)
    first_of: dict[str, int] = {}
    for i, text in enumerate(texts):
        key = normalise_text(text)
        if key:  # empty-ish texts are oddities, not duplicates of each other
            uf.union(first_of.setdefault(key, i), i)
    if embeddings is not None and n:
        for i, j in similar_pairs(embeddings, threshold, block_rows):
            uf.union(int(i), int(j))
    roots = np.asarray([uf.find(i) for i in range(n)])
    splits_arr = np.asarray(splits, dtype=object)
    rank = np.asarray([SPLIT_RANK.get(s, 3) for s in splits_arr])
    rows, kept, sims = [], [], []
    for root in np.unique(roots[np.bincount(roots, minlength=n)[roots] > 1]) if n else []:
        members = np.flatnonzero(roots == root)
        keep = members[np.lexsort((members, rank[members]))[0]]
        for m in members[members != keep]:
            rows.append(int(m))
            kept.append(int(keep))
            sims.append(float(embeddings[m] @ embeddings[keep]) if embeddings is not None else 1.0)
    rows_arr, kept_arr = np.asarray(rows, dtype=int), np.asarray(kept, dtype=int)
    return pd.DataFrame({"row": rows_arr, "split": splits_arr[rows_arr] if rows else [],
                         "duplicate_of": kept_arr, "similarity": np.round(np.asarray(sims, dtype=float), 4),
                         "leak": splits_arr[rows_arr] != splits_arr[kept_arr] if rows else np.zeros(0, bool)})
