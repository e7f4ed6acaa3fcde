"""Pre-flight estimate of a recommender run: the real pipeline (load, split, fit, rank, save) timed on a sample
of users, then scaled to the whole dataset, plus the worker's start-up.

How each part scales with the sample: epoch-based models (BPR, GRU) and item k-NN linearly with the
interactions; EASE with the cube of the items (its Gram-matrix inverse); ranking with users × items.
bench/estimates.py checks the result against real runs.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.data.storage import load_frame, load_items
from core.recs.config import check, model_class, parse_config
from core.recs.encoding import index_train
from core.recs.ranking import DEFAULT_KS
from core.recs.splits import split_interactions
from core.recs.training import evaluate_model, save_model, train_model
from core.runs import registry
from core.runs.device import resolve_device
from core.runs.timing import preload, startup_seconds
from core.text.estimate import Estimate, estimate_from_parts

PROBE_INTERACTIONS = 20_000  # training interactions the probe fits on (all of them in smaller datasets)
PROBE_EPOCHS = 3  # the first epoch also pays set-up costs; the quickest of the later ones is the epoch time


def estimate_recommender(dataset: Any, model_kind: str, config: dict[str, Any]) -> Estimate:
    """Time of a recommender run on `dataset` with `config` (as stored on the run), measured on a user sample."""

    cfg = parse_config(model_kind, config)
    check(dataset is not None, "that dataset no longer exists")
    parts = {"start-up": startup_seconds(model_kind)}
    preload(model_kind)
    start = time.perf_counter()
    frame, catalogue = load_frame(dataset), load_items(dataset)
    frame = frame.assign(user=frame["user"].astype(str), item=frame["item"].astype(str))
    if catalogue is not None:
        catalogue = catalogue.assign(item=catalogue["item"].astype(str))
    train, test = split_interactions(frame, cfg)
    kind, cls = registry.get_kind(model_kind), model_class(model_kind)
    full = index_train(train, catalogue, with_catalogue=cls.uses_catalogue)
    parts["loading data"] = time.perf_counter() - start

    n_train, users = len(train), train["user"].unique()
    if n_train > PROBE_INTERACTIONS:
        size = max(1, int(len(users) * PROBE_INTERACTIONS / n_train))
        keep = set(np.random.default_rng(cfg.seed).choice(users, size=size, replace=False))
        train, test = train[train["user"].isin(keep)], test[test["user"].isin(keep)]
    share = len(train) / max(1, n_train)
    data = index_train(train, catalogue, with_catalogue=cls.uses_catalogue) if share < 1.0 else full
    items_scale = len(full.item_ids) / max(1, len(data.item_ids))
    device = resolve_device(getattr(cfg, "device", "auto")) if kind.uses_gpu else "cpu"

    epochs = int(getattr(cfg, "epochs", 1))
    probe_cfg = dataclasses.replace(cfg, epochs=min(epochs, PROBE_EPOCHS)) if kind.has_epochs else cfg
    ticks: list[float] = []
    start = time.perf_counter()
    model = train_model(model_kind, probe_cfg, data, catalogue=catalogue, device=device,
                        on_epoch=lambda epoch, loss: ticks.append(time.perf_counter()))
    fit = time.perf_counter() - start
    parts["training"] = _scale_fit(kind.has_epochs, cls.fit_grows, fit, start, ticks, epochs, share, items_scale)
    if cls.refits:  # scored on validation by a first fit of nine tenths, then fitted on all of train
        parts["validation"] = 0.9 * parts["training"]

    start = time.perf_counter()
    evaluate_model(model, data, test, ks=sorted({*DEFAULT_KS, cfg.k}))
    parts["evaluation"] = (time.perf_counter() - start) / share * items_scale
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        save_model(Path(folder), model_kind, cfg, model, data, frame, catalogue)
        parts["saving"] = (time.perf_counter() - start) * items_scale
    return estimate_from_parts(parts, peak_memory_bytes=None, warning=None,
                     samples_per_s=len(train) * min(epochs, PROBE_EPOCHS) / max(fit, 1e-9), device=device)


def _scale_fit(has_epochs: bool, grows: str, fit: float, start: float, ticks: list[float], epochs: int,
               share: float, items_scale: float) -> float:
    if has_epochs and len(ticks) >= 2:
        # The quickest epoch: on a shared machine a burst of someone else's work inflates single epochs 3x.
        per_epoch = min(b - a for a, b in zip(ticks, ticks[1:], strict=False))
        setup = ticks[0] - start - per_epoch  # tensors, negative-sampling tables, the first epoch's warm-up
        return (max(0.0, setup) + per_epoch * epochs) / share
    if has_epochs:  # one epoch asked for
        return fit / share
    if grows == "items_cubed":
        return fit * items_scale**3
    if grows == "catalogue":  # embedding the catalogue dominates, and the probe already embeds all of it
        return fit
    return fit / share
