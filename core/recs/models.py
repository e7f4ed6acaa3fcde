"""Collaborative and content recommenders: popularity, item k-NN, EASE, BPR (PyTorch) and catalogue-text similarity.

Every model scores a UserBatch (known user indices, their histories as sparse rows and time-ordered
sequences) into a dense (users x items) array, and round-trips through plain NumPy arrays (no pickle).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from core.recs.config import (
    BprConfig,
    ContentConfig,
    EaseConfig,
    ItemKnnConfig,
    PopularityConfig,
    RecommenderError,
    check,
)
from core.runs.device import CpuThreadGovernor
from core.text.pretrained import resolve_model_path

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RecommenderError"]  # also raised from here, and imported from here by older code
EpochCallback = Callable[[int, float], None]  # (epoch, train loss)
Stop = Callable[[], bool]

# What each model class declares for training and estimates (core.recs.training, core.recs.estimate):
#   config          its settings dataclass (core.recs.config)
#   uses_catalogue  it reads the item catalogue (titles, genres, text)
#   fit_grows       how its fit time grows when the probe's sample grows to the dataset: "interactions"
#                   (linearly), "items_cubed" (a Gram-matrix inverse) or "catalogue" (embedding every item: fixed)
#   refits          True: its validation score comes from a fit without the validation part, then it is fitted
#                   again on all of train (closed-form kinds: a second fit is cheap); False: it is trained once,
#                   without the validation part (neural kinds, whose second training would double the run)
#   train(cfg, data, catalogue=, device=, on_epoch=, should_stop=)  fits it from encoded training interactions
#                   (data: a core.recs.encoding.Interactions, which imports this module, hence Any)


@dataclass
class UserBatch:
    """Who to score: users (index, or -1 for a new visitor), their histories and time-ordered sequences."""

    users: np.ndarray  # (B,) int
    rows: sp.csr_matrix  # (B, n_items) 1.0 where the user interacted
    sequences: list[np.ndarray]  # item indices, oldest first


def normalise_rows(scores: np.ndarray) -> np.ndarray:
    """Scale each row to max |score| = 1, so scores of different models can be blended."""
    scale = np.abs(scores).max(axis=1, keepdims=True)
    return scores / np.where(scale > 0, scale, 1.0)


class Popularity:
    kind = "popularity"
    config, uses_catalogue, fit_grows = PopularityConfig, False, "interactions"
    refits = True

    @classmethod
    def train(cls, cfg: PopularityConfig, data: Any, **_: Any) -> Popularity:
        return cls.fit(data.matrix)

    def __init__(self, counts: np.ndarray) -> None:
        self.counts = counts.astype(np.float32)

    @classmethod
    def fit(cls, train: sp.csr_matrix) -> Popularity:
        return cls(np.asarray(train.sum(axis=0)).ravel())

    def score(self, batch: UserBatch) -> np.ndarray:
        return np.tile(self.counts, (len(batch.users), 1))

    def arrays(self) -> dict[str, np.ndarray]:
        return {"counts": self.counts}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], params: dict[str, Any]) -> Popularity:
        return cls(arrays["counts"])


def cosine_item_similarity(train: sp.csr_matrix, neighbours: int, shrink: float = 0.0) -> sp.csr_matrix:
    """Item-item cosine similarity on the user-item matrix, keeping each item's `neighbours` best (sparse)."""
    x = sp.csc_matrix(train, dtype=np.float32)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
    co = (x.T @ x).tocsr().astype(np.float32)  # (items, items) co-occurrence counts
    co.setdiag(0)
    co.eliminate_zeros()
    co = co.tocoo()
    denom = norms[co.row] * norms[co.col] + shrink
    values = co.data / np.where(denom > 0, denom, 1.0)
    sim = sp.csr_matrix((values, (co.row, co.col)), shape=co.shape)
    return _keep_top_per_row(sim, neighbours)


def _keep_top_per_row(matrix: sp.csr_matrix, n: int) -> sp.csr_matrix:
    rows, cols, vals = [], [], []
    for r in range(matrix.shape[0]):
        start, end = matrix.indptr[r], matrix.indptr[r + 1]
        if end == start:
            continue
        data, idx = matrix.data[start:end], matrix.indices[start:end]
        if end - start > n:
            best = np.argpartition(-data, n - 1)[:n]
            data, idx = data[best], idx[best]
        rows.append(np.full(len(idx), r)), cols.append(idx), vals.append(data)
    if not rows:
        return sp.csr_matrix(matrix.shape, dtype=np.float32)
    # Stored transposed: column j of the result holds the neighbours of item j, so rows @ sim scores items.
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(cols), np.concatenate(rows))),
                         shape=matrix.shape, dtype=np.float32)


class ItemKnn:
    kind = "itemknn"
    config, uses_catalogue, fit_grows = ItemKnnConfig, False, "interactions"
    refits = True

    @classmethod
    def train(cls, cfg: ItemKnnConfig, data: Any, **_: Any) -> ItemKnn:
        return cls.fit(data.matrix, cfg.neighbours, cfg.shrink)

    def __init__(self, sim: sp.csr_matrix) -> None:
        self.sim = sim

    @classmethod
    def fit(cls, train: sp.csr_matrix, neighbours: int, shrink: float) -> ItemKnn:
        return cls(cosine_item_similarity(train, neighbours, shrink))

    def score(self, batch: UserBatch) -> np.ndarray:
        return np.asarray((batch.rows @ self.sim).todense(), dtype=np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"sim_data": self.sim.data, "sim_indices": self.sim.indices, "sim_indptr": self.sim.indptr,
                "sim_shape": np.array(self.sim.shape)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], params: dict[str, Any]) -> ItemKnn:
        shape = tuple(int(v) for v in arrays["sim_shape"])
        return cls(sp.csr_matrix((arrays["sim_data"], arrays["sim_indices"], arrays["sim_indptr"]), shape=shape))


MAX_EASE_ITEMS = 20_000


class Ease:
    """EASE (Steck 2019): a closed-form item-item linear model, B = I - P / diag(P) with P = (X'X + l2 I)^-1."""

    kind = "ease"
    config, uses_catalogue, fit_grows = EaseConfig, False, "items_cubed"
    refits = True

    @classmethod
    def train(cls, cfg: EaseConfig, data: Any, **_: Any) -> Ease:
        return cls.fit(data.matrix, cfg.l2)

    def __init__(self, weights: np.ndarray) -> None:
        self.weights = weights.astype(np.float32)

    @classmethod
    def fit(cls, train: sp.csr_matrix, l2: float) -> Ease:
        n_items = train.shape[1]
        if n_items > MAX_EASE_ITEMS:
            raise RecommenderError(f"EASE inverts an items x items matrix; {n_items} items is more than "
                                   f"{MAX_EASE_ITEMS}: use bpr or itemknn for this catalogue")
        gram = np.asarray((train.T @ train).todense(), dtype=np.float64)
        gram[np.diag_indices(n_items)] += l2
        p = np.linalg.inv(gram)
        b = p / (-np.diag(p))
        b[np.diag_indices(n_items)] = 0.0
        return cls(b)

    def score(self, batch: UserBatch) -> np.ndarray:
        return np.asarray(batch.rows @ self.weights, dtype=np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], params: dict[str, Any]) -> Ease:
        return cls(arrays["weights"])


class Bpr:
    """BPR matrix factorisation: score(u, i) = <p_u, q_i> + b_i, trained on (user, seen, unseen) triples."""

    kind = "bpr"
    config, uses_catalogue, fit_grows = BprConfig, False, "interactions"
    refits = False

    @classmethod
    def train(cls, cfg: BprConfig, data: Any, *, device: str = "cpu",
              on_epoch: EpochCallback = lambda e, loss: None, should_stop: Stop = lambda: False, **_: Any) -> Bpr:
        return cls.fit(data.matrix, factors=cfg.factors, epochs=cfg.epochs, batch_size=cfg.batch_size,
                       learning_rate=cfg.learning_rate, weight_decay=cfg.weight_decay, seed=cfg.seed, device=device,
                       on_epoch=on_epoch, should_stop=should_stop)

    def __init__(self, users: np.ndarray, items: np.ndarray, bias: np.ndarray) -> None:
        self.users, self.items, self.bias = users.astype(np.float32), items.astype(np.float32), bias.astype(np.float32)

    @classmethod
    def fit(cls, train: sp.csr_matrix, *, factors: int, epochs: int, batch_size: int, learning_rate: float,
            weight_decay: float, seed: int, device: str, on_epoch: EpochCallback,
            should_stop: Callable[[], bool]) -> Bpr:
        import torch


        torch.manual_seed(seed)
        gen = torch.Generator(device="cpu").manual_seed(seed)
        n_users, n_items = train.shape
        coo = train.tocoo()
        pos_u = torch.as_tensor(coo.row, dtype=torch.long, device=device)
        pos_i = torch.as_tensor(coo.col, dtype=torch.long, device=device)
        # Cornac's update rule, vectorised: closed-form BPR gradients applied with index_add_, so a
        # batch touches only its own rows (no autograd, no dense gradient of the whole tables).
        users = (torch.randn(n_users, factors, generator=gen) * 0.01).to(device)
        items = (torch.randn(n_items, factors, generator=gen) * 0.01).to(device)
        bias = torch.zeros(n_items, device=device)
        lr, reg = learning_rate, weight_decay
        n = len(pos_u)
        seen_keys = pos_u * n_items + pos_i  # sorted: coo of a csr matrix is in row-major order
        with CpuThreadGovernor(device) as cpu_threads:
            for epoch in range(1, epochs + 1):
                order = torch.randperm(n, generator=gen).to(device)
                negatives = _sample_negatives(pos_u, seen_keys, n_items, gen)
                total = torch.zeros((), device=device)  # summed on the device: no sync per batch on CUDA
                for start in range(0, n, batch_size):
                    idx = order[start:start + batch_size]
                    u, i, j = pos_u[idx], pos_i[idx], negatives[idx]
                    pu, qi, qj = users[u], items[i], items[j]  # (B, F) each
                    x = (pu * (qi - qj)).sum(dim=1) + bias[i] - bias[j]  # (B,) preference of i over j
                    z = torch.sigmoid(-x)[:, None]  # d(-log sigmoid x)/dx = -z
                    users.index_add_(0, u, lr * (z * (qi - qj) - reg * pu))
                    items.index_add_(0, i, lr * (z * pu - reg * qi))
                    items.index_add_(0, j, lr * (-z * pu - reg * qj))
                    bias.index_add_(0, i, lr * (z[:, 0] - reg * bias[i]))
                    bias.index_add_(0, j, lr * (-z[:, 0] - reg * bias[j]))
                    total += torch.nn.functional.softplus(-x).sum()
                    cpu_threads.poll()
                on_epoch(epoch, float(total) / n)
                if should_stop():
                    break
        return cls(users.cpu().numpy(), items.cpu().numpy(), bias.cpu().numpy())

    def score(self, batch: UserBatch) -> np.ndarray:
        known = batch.users >= 0
        vectors = np.zeros((len(batch.users), self.items.shape[1]), dtype=np.float32)
        vectors[known] = self.users[batch.users[known]]
        if (~known).any():  # fold-in: a new visitor is the mean of the items they liked
            rows = batch.rows[np.flatnonzero(~known)]
            counts = np.maximum(np.asarray(rows.sum(axis=1)).ravel(), 1.0)
            vectors[~known] = np.asarray(rows @ self.items) / counts[:, None]
        return vectors @ self.items.T + self.bias

    def item_vectors(self) -> np.ndarray:
        return self.items

    def arrays(self) -> dict[str, np.ndarray]:
        return {"users": self.users, "items": self.items, "bias": self.bias}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], params: dict[str, Any]) -> Bpr:
        return cls(arrays["users"], arrays["items"], arrays["bias"])


def _sample_negatives(pos_u, seen_keys, n_items: int, gen, tries: int = 5):
    """One uniformly drawn item per positive pair, redrawn (a few times) where the user has seen it."""
    import torch

    device = pos_u.device
    negatives = torch.randint(0, n_items, (len(pos_u),), generator=gen).to(device)
    for _ in range(tries):
        clash = torch.isin(pos_u * n_items + negatives, seen_keys)
        if not bool(clash.any()):
            break
        redraw = torch.randint(0, n_items, (int(clash.sum()),), generator=gen).to(device)
        negatives[clash] = redraw
    return negatives


def item_texts(item_ids: list[str], catalogue: Any) -> list[str]:
    """One text per item from the catalogue (title, genres, text); the bare id when the item has no entry."""
    by_id: dict[str, str] = {}
    if catalogue is not None:
        cols = [c for c in ("title", "genres", "text", "description") if c in catalogue.columns]
        for row in catalogue[["item", *cols]].itertuples(index=False):
            parts = [str(v).replace("|", ", ") for v in row[1:] if isinstance(v, str) and v.strip()]
            by_id[str(row[0])] = ". ".join(parts)
    return [by_id.get(i) or f"item {i}" for i in item_ids]


def embed_texts(texts: list[str], model_id: str | None, device: str) -> np.ndarray:
    """Mean-pooled, L2-normalised sentence embeddings (bundled MiniLM by default; never downloads it)."""
    from sentence_transformers import SentenceTransformer


    model = SentenceTransformer(resolve_model_path(model_id), device=device)
    return model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
                        show_progress_bar=False).astype(np.float32)


class Content:
    """Catalogue-text similarity (works for items nobody has interacted with yet), blended with item k-NN."""

    kind = "content"
    config, uses_catalogue, fit_grows = ContentConfig, True, "catalogue"
    refits = True

    @classmethod
    def train(cls, cfg: ContentConfig, data: Any, *, catalogue: pd.DataFrame | None = None,
              device: str = "cpu", **_: Any) -> Content:
        check(catalogue is not None, "the content recommender needs an item catalogue (titles, genres or text); "
                                     "this dataset has none: re-import it with an items file")
        embeddings = embed_texts(item_texts(data.item_ids, catalogue), cfg.model_id, device)
        return cls(embeddings, ItemKnn.fit(data.matrix, cfg.neighbours, 10.0), cfg.collaborative_weight)

    def __init__(self, embeddings: np.ndarray, knn: ItemKnn, collaborative_weight: float) -> None:
        self.embeddings, self.knn, self.collaborative_weight = embeddings, knn, collaborative_weight

    def score(self, batch: UserBatch) -> np.ndarray:
        counts = np.maximum(np.asarray(batch.rows.sum(axis=1)).ravel(), 1.0)
        profiles = np.asarray(batch.rows @ self.embeddings) / counts[:, None]  # (B, D) mean of liked items
        content = profiles @ self.embeddings.T
        if self.collaborative_weight <= 0:
            return content
        w = self.collaborative_weight
        return (1 - w) * normalise_rows(content) + w * normalise_rows(self.knn.score(batch))

    def item_vectors(self) -> np.ndarray:
        return self.embeddings

    def arrays(self) -> dict[str, np.ndarray]:
        return {"embeddings": self.embeddings, **self.knn.arrays()}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], params: dict[str, Any]) -> Content:
        return cls(arrays["embeddings"], ItemKnn.from_arrays(arrays, params),
                   float(params.get("collaborative_weight", 0.0)))


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start
