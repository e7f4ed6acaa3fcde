"""Recommender training: fit a model kind, rank and score it at K, save it; execute_run is the worker's executor.

Saved models are NumPy/safetensors arrays plus JSON and Parquet (no pickle); core.recs.serving reads them back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from core.data.storage import load_frame, load_items
from core.evaluation.uncertainty import mean_interval
from core.metric_keys import DISPLAY_K
from core.recs.config import RecommenderConfig, check, model_class, parse_config
from core.recs.encoding import Interactions, index_train
from core.recs.models import Popularity, RecommenderError
from core.recs.ranking import DEFAULT_KS, RankingAccumulator
from core.recs.splits import split_interactions, validation_split
from core.runs import registry
from core.runs.context import RunContext
from core.runs.device import resolve_device
from core.runs.timing import format_eta, remaining_seconds

# Inside the run's model/ folder. INDEX_FILE was "meta.json" before runs kept one meta.json at their top.
MODEL_FILE, INDEX_FILE, LEGACY_INDEX_FILE = "arrays.safetensors", "index.json", "meta.json"
HISTORY_FILE, ITEMS_FILE = "history.parquet", "items.parquet"
FORMAT_VERSION = 1


# --- training and evaluation ------------------------------------------------------------

def train_model(kind: str, cfg: RecommenderConfig, data: Interactions, *, catalogue: pd.DataFrame | None = None,
                device: str = "cpu", on_epoch: Callable[[int, float], None] = lambda e, loss: None,
                should_stop: Callable[[], bool] = lambda: False) -> Any:
    """Fit one model kind on encoded training interactions (the model class its registry entry names)."""
    return model_class(kind).train(cfg, data, catalogue=catalogue, device=device, on_epoch=on_epoch,
                                   should_stop=should_stop)


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
                   batch_size: int = 1024, per_user: dict[str, np.ndarray] | None = None,
                   per_user_k: int | None = None,
                   also_seen: pd.DataFrame | None = None) -> tuple[dict[int, dict[str, float]], int]:
    """Mean ranking metrics over users present in train and test; seen training items are excluded, and so are
    `also_seen` interactions (a validation part the model was trained without, which the user still has).

    With a `per_user` dict, it is filled with each user's metrics at `per_user_k` (for intervals)."""
    ks = sorted({int(k) for k in ks})
    uidx, iidx = data.user_index, data.item_index
    seen = data.matrix
    if also_seen is not None and len(also_seen):
        extra = also_seen.assign(_u=also_seen["user"].astype(str).map(uidx),
                                 _i=also_seen["item"].astype(str).map(iidx)).dropna(subset=["_u", "_i"])
        seen = (seen + sp.csr_matrix((np.ones(len(extra), dtype=np.float32),
                                      (extra["_u"].astype(int), extra["_i"].astype(int))), shape=seen.shape)).tocsr()
    test = test.assign(_u=test["user"].astype(str).map(uidx), _i=test["item"].astype(str).map(iidx))
    test = test[test["_u"].notna()]
    # Test items the model never saw still count as relevant (they lower recall), as in the reference.
    n_relevant = test.groupby("_u")["item"].nunique()
    known = test[test["_i"].notna()].drop_duplicates(["_u", "_i"])
    users = np.sort(n_relevant.index.to_numpy(dtype=np.int64))
    acc = RankingAccumulator(ks, len(data.item_ids), keep_k=per_user_k if per_user is not None else None)
    rel = sp.csr_matrix((np.ones(len(known), dtype=bool), (known["_u"].astype(int), known["_i"].astype(int))),
                        shape=data.matrix.shape)
    for start in range(0, len(users), batch_size):
        chunk = users[start:start + batch_size]
        batch = data.batch(chunk)
        top = top_k(model.score(batch), max(ks), seen[chunk] if seen is not data.matrix else batch.rows)
        acc.add(top, rel[chunk].toarray(), n_relevant.loc[chunk].to_numpy())
    if per_user is not None:
        per_user.update(acc.per_user())
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

def execute_run(ctx: RunContext) -> dict[str, Any]:
    """Load, split, train, evaluate and save one recommender run (called by core.runs.worker)."""

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
    fit, validation = validation_split(frame, train, cfg)
    refits = model_class(kind).refits
    # A model that is not fitted again learns from the fit part only: validation stays out of what it saw.
    data = index_train(train if refits or validation is None else fit, catalogue,
                       with_catalogue=model_class(kind).uses_catalogue)
    try:
        device = resolve_device(cfg.device) if registry.get_kind(kind).uses_gpu else "cpu"
    except ValueError as exc:
        raise RecommenderError(str(exc)) from exc
    ctx.set_device(device)
    ctx.progress(0.05, f"training {kind} on {len(train):,} interactions ({device})", force=True)
    epochs = getattr(cfg, "epochs", 1)

    def on_epoch(epoch: int, loss: float) -> None:
        ctx.log_metric("train_loss", loss, step=epoch, epoch=float(epoch), split="train")
        left = remaining_seconds(epoch, epochs, time.perf_counter() - start)
        eta = f" · ETA {format_eta(left)} (then evaluation)" if left is not None and epoch < epochs else ""
        ctx.progress(0.05 + 0.8 * epoch / epochs, f"epoch {epoch}/{epochs}: loss {loss:.4f}{eta}")

    start = time.perf_counter()
    validated: dict[int, dict[str, float]] = {}
    if validation is not None and refits:  # scored on a fit without validation, then fitted again on all of train
        fit_data = index_train(fit, catalogue, with_catalogue=model_class(kind).uses_catalogue)
        scored = train_model(kind, cfg, fit_data, catalogue=catalogue, device=device, should_stop=ctx.should_stop)
        validated = evaluate_model(scored, fit_data, validation, ks={DISPLAY_K, cfg.k})[0]
        ctx.progress(0.05, f"validation NDCG@{cfg.k} {validated[cfg.k]['ndcg']:.4f}; fitting on all "
                           f"{len(train):,} training interactions", force=True)
    model = train_model(kind, cfg, data, catalogue=catalogue, device=device, on_epoch=on_epoch,
                        should_stop=ctx.should_stop)
    if validation is not None and not refits:
        validated = evaluate_model(model, data, validation, ks={DISPLAY_K, cfg.k})[0]
    train_time = time.perf_counter() - start
    ctx.raise_if_cancelled()
    for k, values in validated.items():  # what a search optimises (core.search.driver reads these points)
        for name, value in values.items():
            ctx.log_metric(f"{name}@{k}", value, step=epochs, epoch=float(epochs), split="validation")
    ctx.progress(0.88, "evaluating on the test split", force=True)
    per_user: dict[str, np.ndarray] = {}
    held_out = validation if validation is not None and not refits else None
    by_k, n_scored = evaluate_model(model, data, test, ks=sorted({*DEFAULT_KS, cfg.k}), per_user=per_user,
                                    per_user_k=cfg.k, also_seen=held_out)
    # 95 % bootstrap intervals over the test users (issue 24), at the run's K
    intervals = {f"{name}@{cfg.k}": iv.as_dict() for name, values in per_user.items()
                 if (iv := mean_interval(values)) is not None}
    check(n_scored > 0, "no user appears in both the train and the test split: nothing to evaluate")
    for k, values in by_k.items():
        for name, value in values.items():
            ctx.log_metric(f"{name}@{k}", value, step=0, split="test")
    # The bar every recommender must clear, on the very same split (as classification runs show the majority
    # class): recommending the most popular unseen items to everyone. Cheap: one count per item.
    baseline = by_k if model_class(kind) is Popularity else evaluate_model(Popularity.fit(data.matrix), data, test,
                                                                ks=sorted(by_k), also_seen=held_out)[0]
    ctx.progress(0.95, "saving the model", force=True)
    save_model(ctx.files.model, kind, cfg, model, data, frame, catalogue)
    ctx.files.write_meta({"kind": kind, "task": str(ctx.task), "dataset_id": ctx.dataset_id,
                          "format_version": FORMAT_VERSION})
    return metrics_dict(by_k, cfg.k, n_users_scored=n_scored, train_time_s=round(train_time, 3),
                        protocol=cfg.split_protocol, n_train=len(train), n_test=len(test),
                        baseline={"kind": "popularity", "by_k": {str(k): v for k, v in sorted(baseline.items())}},
                        n_users=len(data.user_ids), n_items=len(data.item_ids), intervals={"test": intervals},
                        validation={f"{name}@{k}": v for k, values in sorted(validated.items())
                                    for name, v in values.items()},
                        n_validation=0 if validation is None else len(validation))


# --- saving (the model class of each kind reloads it: core.recs.serving) -------------

def save_model(folder: Path, kind: str, cfg: RecommenderConfig, model: Any, data: Interactions,
               interactions: pd.DataFrame, catalogue: pd.DataFrame | None) -> None:
    """Arrays as safetensors, ids and settings as JSON, the full history and catalogue as Parquet."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in model.arrays().items()}, str(folder / MODEL_FILE))
    params = getattr(model, "params", {}) | {"collaborative_weight": getattr(model, "collaborative_weight", 0.0)}
    meta = {"format_version": FORMAT_VERSION, "kind": kind, "config": asdict(cfg), "params": params,
            "users": data.user_ids, "items": data.item_ids}
    (folder / INDEX_FILE).write_text(json.dumps(meta))
    cols = [c for c in ("user", "item", "rating", "timestamp") if c in interactions.columns]
    interactions[cols].to_parquet(folder / HISTORY_FILE, index=False)
    if catalogue is not None:
        catalogue.to_parquet(folder / ITEMS_FILE, index=False)
