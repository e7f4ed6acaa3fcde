"""Recommender runs: configs, split protocols, training, ranking evaluation, saving and serving.

`execute_run` is the worker's executor for interactions datasets; `load_recommender` reloads a
finished run's model (NumPy/safetensors + JSON, no pickle) for the demo page and the CLI.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from core.recs.config import RecommenderConfig, check, parse_config
from core.recs.encoding import Interactions, encode, index_train
from core.recs.models import Bpr, Content, Ease, ItemKnn, Popularity, RecommenderError, UserBatch
from core.recs.ranking import DEFAULT_KS, RankingAccumulator
from core.recs.splits import split_interactions

MODEL_FILE, META_FILE, HISTORY_FILE, ITEMS_FILE = "arrays.safetensors", "meta.json", "history.parquet", "items.parquet"
FORMAT_VERSION = 1


# --- training and evaluation ------------------------------------------------------------

def train_model(kind: str, cfg: RecommenderConfig, data: Interactions, *, catalogue: pd.DataFrame | None = None,
                device: str = "cpu", on_epoch: Callable[[int, float], None] = lambda e, loss: None,
                should_stop: Callable[[], bool] = lambda: False) -> Any:
    """Fit one model kind on encoded training interactions."""
    if kind == "popularity":
        return Popularity.fit(data.matrix)
    if kind == "itemknn":
        return ItemKnn.fit(data.matrix, cfg.neighbours, cfg.shrink)
    if kind == "ease":
        return Ease.fit(data.matrix, cfg.l2)
    if kind == "bpr":
        return Bpr.fit(data.matrix, factors=cfg.factors, epochs=cfg.epochs, batch_size=cfg.batch_size,
                       learning_rate=cfg.learning_rate, weight_decay=cfg.weight_decay, seed=cfg.seed,
                       device=device, on_epoch=on_epoch, should_stop=should_stop)
    if kind == "sequential":
        from core.recs.sequential import Sequential

        return Sequential.fit(data.sequences, len(data.item_ids), factors=cfg.factors, epochs=cfg.epochs,
                              batch_size=cfg.batch_size, learning_rate=cfg.learning_rate,
                              max_length=cfg.max_length, dropout=cfg.dropout, seed=cfg.seed, device=device,
                              on_epoch=on_epoch, should_stop=should_stop)
    if kind == "content":
        from core.recs.models import embed_texts, item_texts

        if catalogue is None:
            raise RecommenderError("the content recommender needs an item catalogue (titles, genres or text); "
                                   "this dataset has none: re-import it with an items file")
        embeddings = embed_texts(item_texts(data.item_ids, catalogue), cfg.model_id, device)
        knn = ItemKnn.fit(data.matrix, cfg.neighbours, 10.0)
        return Content(embeddings, knn, cfg.collaborative_weight)
    raise RecommenderError(f"unknown recommender {kind!r}")


def top_k(scores: np.ndarray, k: int, exclude: sp.csr_matrix | None = None) -> np.ndarray:
    """(B, k) item indices by descending score, with `exclude`d (seen) items pushed to the end."""
    scores = np.array(scores, dtype=np.float32, copy=True)
    if exclude is not None:
        rows, cols = exclude.nonzero()
        scores[rows, cols] = -np.inf
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def evaluate_model(model: Any, data: Interactions, test: pd.DataFrame, ks: Iterable[int],
                   batch_size: int = 1024) -> tuple[dict[int, dict[str, float]], int]:
    """Mean ranking metrics over users present in train and test; seen training items are excluded."""
    ks = sorted({int(k) for k in ks})
    uidx, iidx = data.user_index, data.item_index
    test = test.assign(_u=test["user"].astype(str).map(uidx), _i=test["item"].astype(str).map(iidx))
    test = test[test["_u"].notna()]
    # Test items the model never saw still count as relevant (they lower recall), as in the reference.
    n_relevant = test.groupby("_u")["item"].nunique()
    known = test[test["_i"].notna()].drop_duplicates(["_u", "_i"])
    users = np.sort(n_relevant.index.to_numpy(dtype=np.int64))
    acc = RankingAccumulator(ks, len(data.item_ids))
    rel = sp.csr_matrix((np.ones(len(known), dtype=bool), (known["_u"].astype(int), known["_i"].astype(int))),
                        shape=data.matrix.shape)
    for start in range(0, len(users), batch_size):
        chunk = users[start:start + batch_size]
        batch = data.batch(chunk)
        top = top_k(model.score(batch), max(ks), batch.rows)
        acc.add(top, rel[chunk].toarray(), n_relevant.loc[chunk].to_numpy())
    return acc.result(), acc.n_users


def metrics_dict(by_k: dict[int, dict[str, float]], k: int, **extra: Any) -> dict[str, Any]:
    """The Run.metrics shape: flat '<metric>@k' keys at the run's k, plus every K under by_k."""
    out: dict[str, Any] = {f"{name}@{k}": value for name, value in by_k[k].items() if name != "coverage"}
    out["coverage"] = by_k[k]["coverage"]
    out["k"] = k
    out["by_k"] = {str(kk): values for kk, values in sorted(by_k.items())}
    out.update(extra)
    return out


# --- the worker's executor ----------------------------------------------------------------

def execute_run(ctx: Any) -> dict[str, Any]:
    """Load, split, train, evaluate and save one recommender run (called by core.runs.worker)."""
    from core.data.storage import load_frame, load_items
    from core.runs.device import resolve_device

    cfg = parse_config(ctx.model_kind, ctx.config)
    kind = ctx.model_kind
    ctx.progress(0.02, "loading interactions", force=True)
    dataset = ctx.dataset()
    frame, catalogue = load_frame(dataset), load_items(dataset)
    check({"user", "item"} <= set(frame.columns), "an interactions dataset needs user and item columns")
    frame = frame.assign(user=frame["user"].astype(str), item=frame["item"].astype(str))
    if catalogue is not None:
        catalogue = catalogue.assign(item=catalogue["item"].astype(str))
    train, test = split_interactions(frame, cfg)
    data = index_train(train, catalogue, with_catalogue=kind == "content")
    try:
        device = resolve_device(cfg.device) if kind in ("bpr", "sequential", "content") else "cpu"
    except ValueError as exc:
        raise RecommenderError(str(exc)) from exc
    ctx.set_device(device)
    ctx.progress(0.05, f"training {kind} on {len(train):,} interactions ({device})", force=True)
    epochs = getattr(cfg, "epochs", 1)

    def on_epoch(epoch: int, loss: float) -> None:
        ctx.log_metric("train_loss", loss, step=epoch, epoch=float(epoch), split="train")
        ctx.progress(0.05 + 0.8 * epoch / epochs, f"epoch {epoch}/{epochs}: loss {loss:.4f}")

    start = time.perf_counter()
    model = train_model(kind, cfg, data, catalogue=catalogue, device=device, on_epoch=on_epoch,
                        should_stop=ctx.should_stop)
    train_time = time.perf_counter() - start
    ctx.raise_if_cancelled()
    ctx.progress(0.88, "evaluating on the test split", force=True)
    by_k, n_scored = evaluate_model(model, data, test, ks=sorted({*DEFAULT_KS, cfg.k}))
    check(n_scored > 0, "no user appears in both the train and the test split: nothing to evaluate")
    for k, values in by_k.items():
        for name, value in values.items():
            ctx.log_metric(f"{name}@{k}", value, step=0, split="test")
    ctx.progress(0.95, "saving the model", force=True)
    save_model(ctx.artifact_dir / "model", kind, cfg, model, data, frame, catalogue)
    return metrics_dict(by_k, cfg.k, n_users_scored=n_scored, train_time_s=round(train_time, 3),
                        protocol=cfg.split_protocol, n_train=len(train), n_test=len(test),
                        n_users=len(data.user_ids), n_items=len(data.item_ids))


# --- saving and serving ---------------------------------------------------------------------

MODEL_CLASSES = {"popularity": Popularity, "itemknn": ItemKnn, "ease": Ease, "bpr": Bpr, "content": Content}


def save_model(folder: Path, kind: str, cfg: RecommenderConfig, model: Any, data: Interactions,
               interactions: pd.DataFrame, catalogue: pd.DataFrame | None) -> None:
    """Arrays as safetensors, ids and settings as JSON, the full history and catalogue as Parquet."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in model.arrays().items()}, str(folder / MODEL_FILE))
    params = getattr(model, "params", {}) | {"collaborative_weight": getattr(model, "collaborative_weight", 0.0)}
    meta = {"format_version": FORMAT_VERSION, "kind": kind, "config": asdict(cfg), "params": params,
            "users": data.user_ids, "items": data.item_ids}
    (folder / META_FILE).write_text(json.dumps(meta))
    cols = [c for c in ("user", "item", "rating", "timestamp") if c in interactions.columns]
    interactions[cols].to_parquet(folder / HISTORY_FILE, index=False)
    if catalogue is not None:
        catalogue.to_parquet(folder / ITEMS_FILE, index=False)


def _model_class(kind: str) -> Any:
    if kind == "sequential":
        from core.recs.sequential import Sequential

        return Sequential
    if kind not in MODEL_CLASSES:
        raise RecommenderError(f"saved model has an unknown kind {kind!r}")
    return MODEL_CLASSES[kind]


class Recommender:
    """A loaded model plus the interactions it knows: recommend, explain, fold in new visitors."""

    def __init__(self, kind: str, model: Any, data: Interactions, history: pd.DataFrame,
                 catalogue: pd.DataFrame | None, config: dict[str, Any]) -> None:
        self.kind, self.model, self.data, self.config = kind, model, data, config
        self.history, self.catalogue = history, catalogue
        self._uidx, self._iidx = data.user_index, data.item_index
        x = sp.csc_matrix(data.matrix, dtype=np.float32)
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
        # Items as unit-norm rows over users: row slices are cheap, so explaining a list is one sparse product.
        self._cooc = sp.csr_matrix(x.multiply(1.0 / np.where(norms > 0, norms, 1.0)).T)
        vectors = model.item_vectors() if hasattr(model, "item_vectors") else None
        if vectors is not None:
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        self._vectors = vectors
        self._titles = _titles(catalogue)
        self._genres: dict[str, str] = {}
        if catalogue is not None and "genres" in catalogue.columns:
            self._genres = dict(zip(catalogue["item"].astype(str),
                                    catalogue["genres"].fillna("").astype(str).str.replace("|", ", "), strict=False))

    @property
    def users(self) -> list[str]:
        return self.data.user_ids

    @property
    def items(self) -> list[str]:
        return self.data.item_ids

    def title(self, item: str) -> str:
        return self._titles.get(item, item)

    def user_history(self, user: str) -> pd.DataFrame:
        """The user's interactions, newest first, with titles when there is a catalogue."""
        rows = self.history[self.history["user"] == str(user)].copy()
        if "timestamp" in rows.columns:
            rows = rows.sort_values("timestamp", ascending=False)
            rows["date"] = pd.to_datetime(rows["timestamp"], unit="s", errors="coerce")
        rows.insert(1, "title", rows["item"].map(self.title))
        return rows.drop(columns=[c for c in ("user", "timestamp") if c in rows.columns]).reset_index(drop=True)

    def recommend(self, user: str, k: int = 10, exclude_seen: bool = True) -> list[tuple[str, float, str | None]]:
        """Top-k (item, score, reason item) for a known user."""
        u = self._uidx.get(str(user))
        if u is None:
            raise RecommenderError(f"user {user!r} is not in this model's training data")
        return self._rank(self.data.batch(np.array([u])), k, exclude_seen)

    def recommend_for_likes(self, items: Iterable[str], k: int = 10) -> list[tuple[str, float, str | None]]:
        """Top-k for a new visitor who likes `items` (fold-in, no retraining); liked items are excluded."""
        liked = [self._iidx[str(i)] for i in dict.fromkeys(map(str, items)) if str(i) in self._iidx]
        if not liked:
            raise RecommenderError("none of the liked items is known to this model")
        rows = sp.csr_matrix((np.ones(len(liked), dtype=np.float32), ([0] * len(liked), liked)),
                             shape=(1, len(self.items)))
        return self._rank(UserBatch(np.array([-1]), rows, [np.array(liked)]), k, True)

    def similar_items(self, item: str, k: int = 10) -> list[tuple[str, float]]:
        """The k items nearest to `item` (embeddings or factors when the model has them, co-occurrence otherwise)."""
        i = self._iidx.get(str(item))
        if i is None:
            raise RecommenderError(f"item {item!r} is not known to this model")
        sims = self._similarity(np.array([i]), np.arange(len(self.items)))[0]
        sims[i] = -np.inf
        best = top_k(sims[None, :], k)[0]
        return [(self.items[j], float(sims[j])) for j in best if np.isfinite(sims[j])]

    def _similarity(self, items: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """(len(items), len(candidates)) cosine similarities."""
        if self._vectors is not None:
            return self._vectors[items] @ self._vectors[candidates].T
        return (self._cooc[items] @ self._cooc[candidates].T).toarray()

    def _rank(self, batch: UserBatch, k: int, exclude_seen: bool) -> list[tuple[str, float, str | None]]:
        scores = self.model.score(batch)
        best = top_k(scores, k, batch.rows if exclude_seen else None)[0]
        seen = batch.rows.indices
        # The reason for each pick: the history item most similar to it.
        sims = self._similarity(best, seen) if len(seen) else np.zeros((len(best), 0))
        out = []
        for row, j in enumerate(best):
            if not np.isfinite(scores[0, j]):
                continue
            reason = None
            if sims.shape[1] and sims[row].max() > 0:
                reason = self.items[int(seen[int(np.argmax(sims[row]))])]
            out.append((self.items[int(j)], float(scores[0, j]), reason))
        return out


    def table(self, recs: list[tuple[str, float, str | None]]) -> pd.DataFrame:
        """Recommendations as a display table: rank, title, item id, score, genres and the one-line reason."""
        rows = []
        for n, (item, score, reason) in enumerate(recs, start=1):
            row = {"#": n, "title": self.title(item), "item": item, "score": round(score, 4)}
            if self._genres:
                row["genres"] = self._genres.get(item, "")
            row["why"] = f"because you liked {self.title(reason)}" if reason else ""
            rows.append(row)
        return pd.DataFrame(rows)

    def similar_table(self, similar: list[tuple[str, float]]) -> pd.DataFrame:
        rows = [{"#": n, "title": self.title(item), "item": item, "similarity": round(sim, 4)}
                | ({"genres": self._genres.get(item, "")} if self._genres else {})
                for n, (item, sim) in enumerate(similar, start=1)]
        return pd.DataFrame(rows)

    def label(self, item: str) -> str:
        """How an item is named in pickers: its title and id, or the id alone without a catalogue."""
        title = self._titles.get(item)
        return f"{title} ({item})" if title else item


def _titles(catalogue: pd.DataFrame | None) -> dict[str, str]:
    if catalogue is None or "title" not in catalogue.columns:
        return {}
    return dict(zip(catalogue["item"].astype(str), catalogue["title"].astype(str), strict=False))


def load_recommender(source: int | str | Path) -> Recommender:
    """Reload a recommender from a run id or its artifact folder (the run's folder or its model/ subfolder).

    A damaged or half-written file is a RecommenderError naming the folder, never a raw library error.
    """
    folder = _model_folder(source)
    try:
        return _load_recommender_files(folder)
    except RecommenderError:
        raise
    except Exception as exc:  # safetensors, pyarrow and json each raise their own types for damage
        raise RecommenderError(f"the saved recommender in {folder} is damaged or incomplete "
                               f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}); "
                               "retrain the run") from exc


def _load_recommender_files(folder: Path) -> Recommender:
    from safetensors.numpy import load_file

    meta = json.loads((folder / META_FILE).read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise RecommenderError(f"saved model in {folder} has format {meta.get('format_version')}; "
                               f"this Protolab reads format {FORMAT_VERSION}")
    model = _model_class(meta["kind"]).from_arrays(load_file(str(folder / MODEL_FILE)), meta.get("params", {}))
    history = pd.read_parquet(folder / HISTORY_FILE)
    history = history.assign(user=history["user"].astype(str), item=history["item"].astype(str))
    catalogue = pd.read_parquet(folder / ITEMS_FILE) if (folder / ITEMS_FILE).exists() else None
    data = encode(history, meta["users"], meta["items"])
    return Recommender(meta["kind"], model, data, history, catalogue, meta["config"])


def _model_folder(source: int | str | Path) -> Path:
    from core.settings import run_dir

    if isinstance(source, int) or (isinstance(source, str) and source.isdigit()):
        folder = run_dir(int(source)) / "model"
    else:
        folder = Path(source)
        if (folder / "model" / META_FILE).exists():
            folder = folder / "model"
    if not (folder / META_FILE).exists():
        raise RecommenderError(f"no saved recommender in {folder} (did the run complete?)")
    return folder


# --- runs the demo page can serve ------------------------------------------------------------

@dataclass(frozen=True)
class RecommenderRun:
    """A completed recommender run as the demo page lists it."""

    run_id: int
    model_kind: str
    dataset_name: str
    k: int
    ndcg: float | None  # NDCG@10 when measured, else NDCG at the run's K
    finished_at: Any
    metrics: dict[str, Any]

    @property
    def title(self) -> str:
        score = f"NDCG@10 {self.ndcg:.3f}" if self.ndcg is not None else "not evaluated"
        return f"#{self.run_id} {self.model_kind} on {self.dataset_name} ({score})"


def recommender_runs() -> list[RecommenderRun]:
    """Completed recommender runs that saved a model, best NDCG@10 first."""
    from core.settings import run_dir
    from db import runs as run_queries
    from db import session_scope
    from db.enums import RunStatus, TaskKind

    found = []
    with session_scope() as s:
        for run in run_queries.list_runs(s, task=TaskKind.INTERACTIONS, statuses=[RunStatus.COMPLETED]):
            if not (run_dir(run.id) / "model" / META_FILE).exists():
                continue
            metrics = dict(run.metrics or {})
            ndcg = (metrics.get("by_k") or {}).get("10", {}).get("ndcg", metrics.get(f"ndcg@{metrics.get('k', 10)}"))
            found.append(RecommenderRun(run.id, run.model_kind, run.dataset.name, int(metrics.get("k", 10)),
                                        float(ndcg) if ndcg is not None else None, run.finished_at, metrics))
    return sorted(found, key=lambda r: (r.ndcg is None, -(r.ndcg or 0.0), -r.run_id))
