"""Serving a finished recommender run: reload its saved model, recommend, explain, and list the runs to serve.

load_recommender accepts a run id or its artifact folder; a damaged file is a RecommenderError, never a raw one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from core.evaluation.demo_choice import DemoStanding, demo_standing, order_for_demo
from core.metric_keys import DISPLAY_K, at_k
from core.recs.encoding import Interactions, encode
from core.recs.models import RecommenderError, UserBatch
from core.recs.similarity import item_correlation
from core.recs.training import (
    FORMAT_VERSION,
    HISTORY_FILE,
    INDEX_FILE,
    ITEMS_FILE,
    LEGACY_INDEX_FILE,
    MODEL_FILE,
    model_class,
    top_k,
)
from core.runs import registry
from core.runs.files import RunFiles
from core.tasks import Headline
from db import runs as run_queries
from db.enums import RunStatus, TaskKind

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


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

    def recommend(self, user: str, k: int = DISPLAY_K,
                  exclude_seen: bool = True) -> list[tuple[str, float, str | None]]:
        """Top-k (item, score, reason item) for a known user."""
        u = self._uidx.get(str(user))
        if u is None:
            raise RecommenderError(f"user {user!r} is not in this model's training data")
        return self._rank(self.data.batch(np.array([u])), k, exclude_seen)

    def recommend_for_likes(self, items: Iterable[str], k: int = DISPLAY_K) -> list[tuple[str, float, str | None]]:
        """Top-k for a new visitor who likes `items` (fold-in, no retraining); liked items are excluded."""
        liked = [self._iidx[str(i)] for i in dict.fromkeys(map(str, items)) if str(i) in self._iidx]
        if not liked:
            raise RecommenderError("none of the liked items is known to this model")
        rows = sp.csr_matrix((np.ones(len(liked), dtype=np.float32), ([0] * len(liked), liked)),
                             shape=(1, len(self.items)))
        return self._rank(UserBatch(np.array([-1]), rows, [np.array(liked)]), k, True)

    def similar_items(self, item: str, k: int = DISPLAY_K, damped: bool = False) -> list[tuple[str, float]]:
        """The k items nearest to `item`: by the model (embeddings or factors when it has them, co-occurrence
        cosine otherwise) or, `damped`, by how much more often they go together than popularity predicts
        (the correlation of core.recs.similarity)."""
        i = self._iidx.get(str(item))
        if i is None:
            raise RecommenderError(f"item {item!r} is not known to this model")
        if damped:
            sims = item_correlation(self.data.matrix, np.array([i]))[0]
            sims[sims <= 0] = -np.inf  # no more often together than chance: not similar, however the list is padded
        else:
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
        seen = batch.rows.indices
        best = top_k(scores, k, batch.rows if exclude_seen else None)[0]
        # top_k pushes seen items to the end of its own copy of the scores; when fewer than k unseen items are
        # left they still fill the list, so they are dropped here: fewer items, never one the user has.
        keep = np.isfinite(scores[0, best])
        if exclude_seen:
            keep &= ~np.isin(best, seen)
        best = best[keep]
        # The reason for each pick: the history item most similar to it.
        sims = self._similarity(best, seen) if len(seen) else np.zeros((len(best), 0))
        out = []
        for row, j in enumerate(best):
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


def load_run_model(files: RunFiles, device: str = "cpu") -> Recommender:
    """The recommender kinds' loader in the registry (the model is NumPy arrays: served on the CPU)."""
    return load_recommender(files.root)


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

    meta = json.loads(_index_file(folder).read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise RecommenderError(f"saved model in {folder} has format {meta.get('format_version')}; "
                               f"this Protolab reads format {FORMAT_VERSION}")
    model = model_class(meta["kind"]).from_arrays(load_file(str(folder / MODEL_FILE)), meta.get("params", {}))
    history = pd.read_parquet(folder / HISTORY_FILE)
    history = history.assign(user=history["user"].astype(str), item=history["item"].astype(str))
    catalogue = pd.read_parquet(folder / ITEMS_FILE) if (folder / ITEMS_FILE).exists() else None
    data = encode(history, meta["users"], meta["items"])
    return Recommender(meta["kind"], model, data, history, catalogue, meta["config"])


def _model_folder(source: int | str | Path) -> Path:
    if isinstance(source, int) or (isinstance(source, str) and source.isdigit()):
        folder = RunFiles.of(int(source)).model
    else:
        folder = Path(source)
        if _index_file(RunFiles(folder).model).exists():
            folder = RunFiles(folder).model
    if not _index_file(folder).exists():
        raise RecommenderError(f"no saved recommender in {folder} (did the run complete?)")
    return folder


def _index_file(model_folder: Path) -> Path:
    """The model's ids and settings; runs saved before the shared run layout named it meta.json."""
    index = model_folder / INDEX_FILE
    legacy = model_folder / LEGACY_INDEX_FILE
    return legacy if not index.exists() and legacy.exists() else index


# --- runs the demo page can serve ------------------------------------------------------------

@dataclass(frozen=True)
class RecommenderRun:
    """A completed recommender run as the demo page lists it."""

    run_id: int
    model_kind: str
    dataset_name: str
    k: int
    ndcg: float | None  # NDCG at the display K when measured, else NDCG at the run's K
    finished_at: Any
    metrics: dict[str, Any]
    standing: DemoStanding | None = None  # pinned, weak, lower bound: the demo order

    @property
    def hit_rate(self) -> float | None:
        """Hit rate at the display K (what the audience reads: "1 in N users finds ..."), else None."""
        return Headline(at_k("hit_rate"), f"hit rate@{DISPLAY_K}").value(self.metrics)

    @property
    def title(self) -> str:
        score = f"NDCG@{DISPLAY_K} {self.ndcg:.3f}" if self.ndcg is not None else "not evaluated"
        weak = self.standing is not None and self.standing.weakness.weak
        pinned = self.standing is not None and self.standing.pinned
        marks = (" · 📌 pinned for demos" if pinned else "") + (" · ⚠ weak" if weak else "")
        return f"#{self.run_id} {self.model_kind} on {self.dataset_name} ({score}){marks}"


def recommender_runs(s: Session, *, present: bool = False) -> list[RecommenderRun]:
    """Completed recommender runs that saved a model, in demo order (pinned, then the best lower bound of
    NDCG among runs above the popularity baseline; weak runs last, or left out in presentation mode)."""

    found = []
    for run in run_queries.list_runs(s, task=TaskKind.INTERACTIONS, statuses=[RunStatus.COMPLETED]):
        if not _index_file(RunFiles.of(run.id).model).exists():
            continue
        metrics = dict(run.metrics or {})
        ndcg = registry.headline_of(run.model_kind, run.task, metrics)[1]
        found.append(RecommenderRun(run.id, run.model_kind, run.dataset.name, int(metrics.get("k", DISPLAY_K)),
                                    ndcg, run.finished_at, metrics, demo_standing(run, s)))
    found.sort(key=lambda r: (r.ndcg is None, -(r.ndcg or 0.0), -r.run_id))
    return order_for_demo(found, {r.run_id: r.standing for r in found}, lambda r: r.run_id, present=present)
