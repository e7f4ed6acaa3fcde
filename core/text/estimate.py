"""Pre-flight estimates of a classification run: time from a short measured probe on a sample of its data,
and peak GPU memory on CUDA.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.text.batching import TokenBatches, encode_texts
from core.text.config import TrainConfig, TrainingError, build_config, config_from_dict, replace_config
from core.text.executor import build_model
from core.text.loop import TrainingLoop, free_cuda_memory, resolve_train_device, seed_everything
from db.models import Dataset


@dataclass(frozen=True)
class Estimate:
    seconds: float
    peak_memory_bytes: int | None
    warning: str | None
    samples_per_s: float | None = None
    device: str = "cpu"


PROBE_STEPS = 3
GPU_MEMORY_HEADROOM = 0.9  # warn above this share of the card's memory


def estimate_run(dataset: Dataset | None, model_kind: str, config: dict[str, Any]) -> Estimate:
    """Time (and, on CUDA, peak memory) of a run on `dataset`, from a short measured probe on a sample of its data."""
    from core.data.storage import load_split

    cfg = config_from_dict(build_config(model_kind, {k: v for k, v in config.items() if k != "resume"}))
    if dataset is None:
        raise TrainingError("that dataset no longer exists")
    train = load_split(dataset, "train")
    n_train = len(train)
    n_eval = int(dataset.split_counts.get("validation", 0)) + int(dataset.split_counts.get("test", 0))
    if n_train == 0:
        raise TrainingError(f"dataset {dataset.name!r} has no training rows")
    if model_kind == "tfidf":
        return _estimate_tfidf(train, cfg, n_train)
    return _estimate_neural(train, cfg, model_kind, n_train, n_eval)


def _estimate_tfidf(train: pd.DataFrame, cfg: TrainConfig, n_train: int) -> Estimate:
    from core.text.tfidf import TfidfConfig, train_tfidf

    sample = train.sample(n=min(n_train, 2000), random_state=cfg.seed)
    if sample["label"].astype(str).nunique() < 2:
        raise TrainingError("the training split needs at least two different labels")
    start = time.perf_counter()
    train_tfidf(sample["text"].astype(str).tolist(), sample["label"].astype(str).tolist(),
                TfidfConfig.of_run(cfg))
    per_row = (time.perf_counter() - start) / len(sample)
    return Estimate(seconds=per_row * n_train * 1.2 + 1.0, peak_memory_bytes=None, warning=None,
                    samples_per_s=1.0 / max(per_row, 1e-9), device="cpu")


def _estimate_neural(train: pd.DataFrame, cfg: TrainConfig, family: str, n_train: int, n_eval: int) -> Estimate:
    import torch

    from core.runs.device import resolve_device

    device = resolve_train_device(cfg.device, resolve_device)
    labels = sorted(set(train["label"].astype(str)))
    start = time.perf_counter()
    seed_everything(cfg.seed)
    model, tokenizer = build_model(family, cfg, labels if len(labels) > 1 else [*labels, "other"])
    load_seconds = time.perf_counter() - start
    sample = train.sample(n=min(n_train, cfg.batch_size * (PROBE_STEPS + 1)), random_state=cfg.seed)
    ids = encode_texts(tokenizer, sample["text"].astype(str).tolist(), cfg.max_length)
    y = np.array([labels.index(v) for v in sample["label"].astype(str)])
    batches = TokenBatches(ids, y, tokenizer.pad_token_id or 0, cfg.batch_size, seed=cfg.seed)
    loop = TrainingLoop(model, batches, batches, replace_config(cfg, epochs=1, warmup_ratio=0.0), device,
                 lambda log: None, lambda log: None, lambda: False, None)
    index_batches = batches.index_batches(0)
    loop.model.train()
    _probe_step(loop, batches, index_batches[0])  # warm-up: allocations, kernel selection
    timed, seconds = 0, 0.0
    for idx in index_batches[1:PROBE_STEPS + 1]:
        tick = time.perf_counter()
        _probe_step(loop, batches, idx)
        seconds += time.perf_counter() - tick
        timed += len(idx)
    if not timed:  # a dataset smaller than one batch: time the warm-up batch again
        tick = time.perf_counter()
        _probe_step(loop, batches, index_batches[0])
        seconds, timed = time.perf_counter() - tick, len(index_batches[0])
    per_sample = seconds / timed
    # Evaluation has no backward pass (about a third of a training step) and runs each epoch.
    total = load_seconds + per_sample * (n_train * cfg.epochs + n_eval * cfg.epochs / 3) / max(1, cfg.gpus)
    peak, warning = None, None
    if device.startswith("cuda"):
        peak, warning = _probe_peak_memory(loop, tokenizer, cfg, device)
    del loop, model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return Estimate(seconds=total, peak_memory_bytes=peak, warning=warning, samples_per_s=1.0 / per_sample,
                    device=device)


def _probe_step(loop: TrainingLoop, batches: TokenBatches, idx: np.ndarray) -> None:
    batch = {k: v.to(loop.device) for k, v in batches.collate(idx).items()}
    loss = loop._loss(batch)
    (loop.scaler.scale(loss) if loop.scaler else loss).backward()
    loop._optimizer_step()


def _probe_peak_memory(loop: TrainingLoop, tokenizer: Any, cfg: TrainConfig, device: str) -> tuple[int, str | None]:
    """Peak memory of one step on a worst-case batch (batch_size × max_length) on a CUDA device."""
    import torch

    torch.cuda.reset_peak_memory_stats(device)
    worst = [[tokenizer.cls_token_id or 1] * cfg.max_length for _ in range(cfg.batch_size)]
    batches = TokenBatches(worst, np.zeros(cfg.batch_size, dtype=int), tokenizer.pad_token_id or 0, cfg.batch_size)
    try:
        _probe_step(loop, batches, np.arange(cfg.batch_size))
    except torch.cuda.OutOfMemoryError:
        free_cuda_memory()
        return torch.cuda.get_device_properties(device).total_memory, (
            f"batch size {cfg.batch_size} at max length {cfg.max_length} does not fit in GPU memory: the run "
            f"will retry with smaller batches (slower); lower batch size or max length to avoid that")
    peak = int(torch.cuda.max_memory_allocated(device))
    total = torch.cuda.get_device_properties(device).total_memory
    if peak > GPU_MEMORY_HEADROOM * total:
        return peak, (f"needs about {peak / 2**30:.1f} GiB of {total / 2**30:.1f} GiB GPU memory: it may run out; "
                      f"lower batch size or max length")
    return peak, None
