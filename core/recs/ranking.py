"""Ranking metrics at K for recommenders, implemented once: precision, recall, NDCG, MAP, hit rate, coverage.

Definitions follow the Microsoft Recommenders MovieLens benchmark: binary relevance, natural-log
discount, precision divided by K, recall and MAP divided by the user's number of relevant items.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from core.metric_keys import RANKING_METRICS

DEFAULT_KS = (1, 5, 10, 20)


def hits_matrix(top: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """hits[u, r] is True when the item ranked r-th for user u is relevant.

    top: (U, K) item indices, best first; relevant: (U, n_items) boolean.
    """
    return np.take_along_axis(relevant, top, axis=1)


def metrics_from_hits(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per-user metric arrays at cut-off k from a (U, >=k) hits matrix and each user's relevant count."""
    hits_k = hits[:, :k].astype(np.float64)
    n_rel = np.maximum(n_relevant.astype(np.float64), 1.0)  # callers score only users with >= 1 relevant item
    ranks = np.arange(1, hits_k.shape[1] + 1, dtype=np.float64)
    discount = 1.0 / np.log(ranks + 1.0)  # natural log; the base cancels out of NDCG anyway
    dcg = (hits_k * discount).sum(axis=1)
    ideal_len = np.minimum(n_relevant, hits_k.shape[1]).astype(int)
    ideal_cum = np.concatenate([[0.0], np.cumsum(discount)])
    idcg = ideal_cum[ideal_len]
    n_hits = hits_k.sum(axis=1)
    precision_at_rank = np.cumsum(hits_k, axis=1) / ranks
    return {
        "ndcg": np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0),
        "precision": n_hits / k,
        "recall": n_hits / n_rel,
        "map": (precision_at_rank * hits_k).sum(axis=1) / n_rel,
        "hit_rate": (n_hits > 0).astype(np.float64),
    }


class RankingAccumulator:
    """Collects top-K lists batch by batch and reports mean metrics per K (memory: O(users x max K))."""

    def __init__(self, ks: Iterable[int], n_catalogue: int, keep_k: int | None = None) -> None:
        self.ks = sorted({int(k) for k in ks})
        self.n_catalogue = max(int(n_catalogue), 1)
        # Every metric but coverage (the last), which has no per-user sum.
        self._sums = {k: dict.fromkeys(RANKING_METRICS[:-1], 0.0) for k in self.ks}
        self._items = {k: np.zeros(self.n_catalogue, dtype=bool) for k in self.ks}
        self.n_users = 0
        # Per-user values at one K, for bootstrap intervals (one float per user and metric)
        self.keep_k = keep_k if keep_k in self.ks else None
        self._per_user: dict[str, list[np.ndarray]] = {name: [] for name in RANKING_METRICS[:-1]}

    def add(self, top: np.ndarray, relevant: np.ndarray, n_relevant: np.ndarray | None = None) -> None:
        """top: (U, >=max K) ranked item indices; relevant: (U, n_items) boolean.

        n_relevant defaults to the row sums of `relevant`; pass it when some relevant items cannot be
        ranked (unknown to the model) but must still count. Users with no relevant item are skipped.
        """
        n_relevant = relevant.sum(axis=1) if n_relevant is None else np.asarray(n_relevant)
        keep = n_relevant > 0
        top, relevant, n_relevant = top[keep], relevant[keep], n_relevant[keep]
        if not len(top):
            return
        hits = hits_matrix(top, relevant)
        for k in self.ks:
            for name, values in metrics_from_hits(hits, n_relevant, k).items():
                self._sums[k][name] += float(values.sum())
                if k == self.keep_k:
                    self._per_user[name].append(np.asarray(values, dtype=float))
            self._items[k][top[:, :k].ravel()] = True
        self.n_users += len(top)

    def per_user(self) -> dict[str, np.ndarray]:
        """{metric: (users,)} at `keep_k` (empty without one)."""
        if self.keep_k is None:
            return {}
        return {name: np.concatenate(parts) if parts else np.zeros(0) for name, parts in self._per_user.items()}

    def result(self) -> dict[int, dict[str, float]]:
        out: dict[int, dict[str, float]] = {}
        for k in self.ks:
            row = {name: total / max(self.n_users, 1) for name, total in self._sums[k].items()}
            row["coverage"] = float(self._items[k].sum()) / self.n_catalogue
            out[k] = {name: row[name] for name in RANKING_METRICS}
        return out


def evaluate_lists(ranked: Sequence[Sequence[int]], relevant: Sequence[Iterable[int]], *, ks: Iterable[int],
                   n_catalogue: int) -> dict[int, dict[str, float]]:
    """Metrics for plain Python lists (one ranked list and one relevant set per user); handy for small cases."""
    ks = sorted({int(k) for k in ks})
    width = max(ks)
    n_items = max([n_catalogue, *(i + 1 for r in ranked for i in r), *(i + 1 for rel in relevant for i in rel)])
    top = np.zeros((len(ranked), width), dtype=np.int64)
    valid = np.zeros((len(ranked), width), dtype=bool)
    rel = np.zeros((len(ranked), n_items + 1), dtype=bool)
    for u, (items, wanted) in enumerate(zip(ranked, relevant, strict=True)):
        items = list(items)[:width]
        top[u, :len(items)], valid[u, :len(items)] = items, True
        top[u, len(items):] = n_items  # a padding column that is never relevant
        rel[u, list(wanted)] = True
    acc = RankingAccumulator(ks, n_catalogue)
    acc.add(top, rel)
    result = acc.result()
    for k in ks:  # padding must not count as a recommended catalogue item
        shown = {int(i) for row, ok in zip(top[:, :k], valid[:, :k], strict=True) for i in row[ok]}
        result[k]["coverage"] = len(shown) / max(n_catalogue, 1)
    return result
