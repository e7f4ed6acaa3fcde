"""Item-to-item similarity from co-occurrence, with optional popularity damping ("people who liked X also liked").

Plain cosine divides the co-occurrence count by sqrt(n_i * n_j), which still lets blockbusters that everybody
saw top every list. The asymmetric cosine of Aiolli (2013) divides by n_i^(1-a) * n_j^a: a = 0.5 is cosine,
a larger `a` charges the candidate j more for its own popularity. Damping alone promotes items two people
shared by chance, so it is paired with a shrinkage cooc / (cooc + s) that trusts a pair only with support.
The demo's "less obvious picks" use neither: the correlation of the two items' 0/1 columns (the phi coefficient),
which subtracts the co-occurrence popularity alone predicts (n_i n_j / N), so an item everybody saw is similar to
nothing in particular. bench/similar_items.py chose it on MovieLens 100K by held-out lift (BENCHMARKS.md).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

COSINE = 0.5
# The asymmetric cosine the demo damped with before the correlation won (bench/similar_items.py, BENCHMARKS.md).
DAMPED_ALPHA, DAMPED_SHRINK = 0.8, 50.0
# The correlation's support shrinkage: the best held-out lift on MovieLens 100K of 0, 10 and 20 (BENCHMARKS.md).
CORRELATION_SHRINK = 10.0
DEFAULT_DAMPED = True  # the demo's default: the debiased list, because it won on the held-out criterion


def item_similarity(matrix: sp.spmatrix, items: np.ndarray, alpha: float = COSINE, shrink: float = 0.0) -> np.ndarray:
    """(len(items), n_items) similarities of `items` to every item, from a (users, items) 0/1 matrix."""
    x = sp.csc_matrix(matrix, dtype=np.float32)
    x.data[:] = 1.0
    counts = np.asarray(x.sum(axis=0)).ravel()  # n_j: users who interacted with each item
    cooc = (x[:, items].T @ x).toarray()  # len(items), n_items
    query = np.power(np.maximum(counts[items], 1.0), 1.0 - alpha)[:, None]
    candidate = np.power(np.maximum(counts, 1.0), alpha)[None, :]
    support = cooc / (cooc + shrink) if shrink > 0 else 1.0
    return support * cooc / (query * candidate)


def item_correlation(matrix: sp.spmatrix, items: np.ndarray, shrink: float = CORRELATION_SHRINK) -> np.ndarray:
    """(len(items), n_items) phi coefficients of `items` with every item, from a (users, items) 0/1 matrix,
    times the support cooc / (cooc + shrink). 0 for two items seen together exactly as often as chance predicts."""
    x = sp.csc_matrix(matrix, dtype=np.float32)
    x.data[:] = 1.0
    n = x.shape[0]
    counts = np.asarray(x.sum(axis=0)).ravel().astype(np.float64)
    cooc = (x[:, items].T @ x).toarray().astype(np.float64)  # len(items), n_items
    expected = counts[items][:, None] * counts[None, :] / n  # what popularity alone predicts
    spread = np.sqrt(np.maximum(counts * (n - counts), 1.0)) / np.sqrt(n)  # sqrt of n_j (1 - n_j / N)
    support = cooc / (cooc + shrink) if shrink > 0 else 1.0
    return support * (cooc - expected) / (spread[items][:, None] * spread[None, :])
