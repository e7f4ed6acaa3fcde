"""The demo's "less obvious picks" (core.recs.similarity.item_correlation): an item everybody saw is similar to
nothing in particular, however often it co-occurs; an item seen with the query more often than chance is."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from core.recs.similarity import DAMPED_ALPHA, DAMPED_SHRINK, item_correlation, item_similarity

QUERY, BLOCKBUSTER, NICHE = 0, 1, 2


def _matrix() -> sp.csr_matrix:
    """1,000 users: the blockbuster seen by 990 (99 of the query's 100 viewers: exactly chance), the niche item by
    40 (10 of the query's viewers, 2.5 times chance)."""
    rows = np.zeros((1000, 3), dtype=np.float32)
    rows[:100, QUERY] = 1
    rows[1:991, BLOCKBUSTER] = 1  # 99 of the query's viewers
    rows[90:100, NICHE] = 1  # 10 of the query's viewers
    rows[500:530, NICHE] = 1  # and 30 others
    return sp.csr_matrix(rows)


def test_the_correlation_ranks_the_niche_item_above_the_blockbuster() -> None:
    sims = item_correlation(_matrix(), np.array([QUERY]))[0]
    assert sims[NICHE] > 0 >= sims[BLOCKBUSTER]
    # the damping the demo used before still put the blockbuster first here
    damped = item_similarity(_matrix(), np.array([QUERY]), DAMPED_ALPHA, DAMPED_SHRINK)[0]
    assert damped[BLOCKBUSTER] > damped[NICHE]


def test_the_correlation_of_identical_columns_is_one_and_is_symmetric() -> None:
    x = sp.csr_matrix(np.array([[1, 1, 0], [0, 0, 1], [1, 1, 1], [0, 0, 0]], dtype=np.float32))
    sims = item_correlation(x, np.arange(3), shrink=0.0)
    assert np.isclose(sims[0, 1], 1.0) and np.allclose(sims, sims.T)
