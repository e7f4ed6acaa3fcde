"""Which texts to label next: diverse ones first, then the ones the current model is least sure of, or at random.

Diverse: the pool's MiniLM embeddings are clustered once (k-means); each pick is the text nearest the centre of
a cluster that has no labelled (or skipped) text yet, the largest such cluster first. Uncertain: the smallest
margin between the model's top two probabilities. Pure functions of arrays, shared by the Label page and the
simulated labelling session in bench/few_shot.py.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.text.fewshot import load_encoder

STRATEGIES = ("auto", "diverse", "uncertain", "random")
# Two labelling rounds (24 each) of diverse texts: on the tweets corpus one round of 24 clusters left the
# uncertainty phase starting from too weak a model (bench/few_shot.py: it trailed random in rounds 2-9); 48 reached
# random's final macro-F1 after 5 of 10 rounds.
DIVERSE_CLUSTERS = 48
EMBEDDINGS_FILE = "embeddings.npy"
UNCERTAIN_SHORTLIST = 5  # a batch of n uncertain texts is spread over clusters among the 5n least sure


@dataclass(frozen=True)
class Clusters:
    assignment: np.ndarray  # (n,) the cluster of each text
    distance: np.ndarray  # (n,) each text's distance to its cluster's centre
    sizes: np.ndarray  # (k,)


def cluster_pool(embeddings: np.ndarray, k: int = DIVERSE_CLUSTERS, seed: int = 0) -> Clusters:
    from sklearn.cluster import KMeans

    k = max(1, min(k, len(embeddings)))
    km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(embeddings)
    distance = np.linalg.norm(embeddings - km.cluster_centers_[km.labels_], axis=1)
    return Clusters(km.labels_, distance, np.bincount(km.labels_, minlength=k))


def pick_diverse(clusters: Clusters, done: Collection[int], n: int) -> list[int]:
    """Up to n texts, one per cluster not yet covered by `done`, the biggest clusters first."""
    covered = {int(clusters.assignment[i]) for i in done}
    done_mask = _mask(len(clusters.assignment), done)
    picks = []
    for cluster in np.argsort(-clusters.sizes, kind="stable"):
        if int(cluster) in covered:
            continue
        members = np.flatnonzero((clusters.assignment == cluster) & ~done_mask)
        if len(members):
            picks.append(int(members[np.argmin(clusters.distance[members])]))
        if len(picks) == n:
            break
    return picks


def margins(proba: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability per row: small = the model hesitates between two labels."""
    if proba.shape[1] < 2:
        return np.ones(len(proba))
    top = np.sort(proba, axis=1)
    return top[:, -1] - top[:, -2]


def pick_uncertain(proba: np.ndarray | None, done: Collection[int], n: int, rows: np.ndarray | None = None,
                   clusters: Clusters | None = None, margin: np.ndarray | None = None) -> list[int]:
    """Up to n rows with the smallest margin; `proba` row i scores pool row rows[i] (all rows when None). `margin`,
    when given, is each row's margin already (a tag-set model's: how near its threshold its closest tag is).

    With clusters, a batch is spread over them: among the UNCERTAIN_SHORTLIST × n least sure texts, the least
    sure of each cluster first, so a batch is not 24 near-copies of one confusing text.
    """
    margin = margins(proba) if margin is None else np.asarray(margin)
    rows = np.arange(len(margin)) if rows is None else np.asarray(rows)
    keep = ~np.isin(rows, np.fromiter(done, dtype=np.int64, count=len(done)))
    order = rows[keep][np.argsort(margin[keep], kind="stable")]
    if clusters is None or n == 1:
        return [int(r) for r in order[:n]]
    shortlist = order[:UNCERTAIN_SHORTLIST * n]
    picks, seen = [], set()
    for row in shortlist:
        cluster = int(clusters.assignment[row])
        if cluster not in seen or cluster < 0:
            picks.append(int(row))
            seen.add(cluster)
        if len(picks) == n:
            return picks
    chosen = set(picks)
    return picks + [int(r) for r in shortlist if int(r) not in chosen][:n - len(picks)]


def pick_random(n_rows: int, done: Collection[int], n: int, seed: int) -> list[int]:
    left = np.flatnonzero(~_mask(n_rows, done))
    rng = np.random.default_rng(seed)
    return [int(r) for r in rng.choice(left, size=min(n, len(left)), replace=False)]


def choose_next(strategy: str, *, n_rows: int, labelled: Collection[int], skipped: Collection[int], n: int,
                clusters: Clusters | None = None, proba: np.ndarray | None = None,
                proba_rows: np.ndarray | None = None, seed: int = 0, margin: np.ndarray | None = None
                ) -> tuple[list[int], str]:
    """(up to n row indices to label next, the strategy actually used).

    "auto" is diverse until every cluster has a label (or a skip), then uncertain once a model has scored
    the pool (its probabilities, or each row's `margin`), else random. A strategy that cannot apply (no
    embeddings, no model yet) falls back to random.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    done = set(labelled) | set(skipped)
    if strategy in ("auto", "diverse") and clusters is not None:
        picks = pick_diverse(clusters, done, n)
        if picks:
            return picks, "diverse"
    if strategy in ("auto", "uncertain") and (margin is not None or proba is not None):
        picks = pick_uncertain(proba, done, n, proba_rows, clusters, margin)
        if picks:
            return picks, "uncertain"
    return pick_random(n_rows, done, n, seed + len(done)), "random"


def embed_pool(texts: list[str], folder: Path | None = None, batch_size: int = 64) -> np.ndarray:
    """MiniLM embeddings (n, 384) of the pool's texts, cached as embeddings.npy in `folder` when given."""
    cache = Path(folder) / EMBEDDINGS_FILE if folder is not None else None
    if cache is not None and cache.exists():
        cached = np.load(cache)
        if len(cached) == len(texts):
            return cached

    encoder = load_encoder(None, "cpu")
    vectors = np.asarray(encoder.encode(texts, batch_size=batch_size, show_progress_bar=False,
                                        normalize_embeddings=True, convert_to_numpy=True), dtype=np.float32)
    if cache is not None:
        tmp = cache.with_suffix(".tmp.npy")
        np.save(tmp, vectors)
        tmp.replace(cache)  # atomic: a reader never sees half a file
    return vectors


def _mask(n: int, rows: Collection[int]) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    if rows:
        mask[np.fromiter(rows, dtype=np.int64, count=len(rows))] = True
    return mask


def pool_clusters(texts: list[str], folder: Path | None, k: int = DIVERSE_CLUSTERS, max_texts: int = 2000,
                  seed: int = 0) -> Clusters:
    """Clusters of the pool for the diverse strategy. Uses the whole pool's cached embeddings when a retrain has
    computed them; otherwise embeds a seeded sample of at most `max_texts` texts (the others are never picked as
    diverse, only as uncertain or random), so a first visit to a large pool takes seconds, not minutes."""
    n = len(texts)
    cache = Path(folder) / EMBEDDINGS_FILE if folder is not None else None
    if (cache is not None and cache.exists()) or n <= max_texts:
        return cluster_pool(embed_pool(texts, folder), k, seed)
    rows = np.sort(np.random.default_rng(seed).choice(n, size=max_texts, replace=False))
    sample = cluster_pool(embed_pool([texts[i] for i in rows]), k, seed)
    assignment = np.full(n, -1)
    distance = np.full(n, np.inf)
    assignment[rows], distance[rows] = sample.assignment, sample.distance
    return Clusters(assignment, distance, sample.sizes)
