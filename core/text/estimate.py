"""Pre-flight estimates of a classification run: time from a short measured probe on a sample of its data,
and peak GPU memory on CUDA.

The time is the whole run as the user waits for it: the worker's start-up (Python and imports, measured by
launching one), loading the model, tokenising every split, the training steps, evaluation on the validation
split after each epoch and on validation and test at the end, and saving. Each part is measured on a sample
and scaled to the dataset; `parts` says how the total splits, and bench/estimates.py checks it against runs.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.data.storage import load_split
from core.runs import calibration, registry
from core.runs.device import CpuThreadGovernor, resolve_device
from core.runs.timing import cold_start, format_eta, imports_pending, measuring, preload, startup_seconds
from core.text.batching import TokenBatches, encode_texts
from core.text.config import TrainConfig, TrainingError, build_config, config_from_dict, replace_config
from core.text.executor import EVAL_BATCH_FACTOR, build_model
from core.text.loop import (
    TrainingLoop,
    free_cuda_memory,
    predict_proba,
    resolve_train_device,
    seed_everything,
    training_precision,
)
from core.text.tfidf import TfidfConfig, save_tfidf, train_tfidf
from db.models import Dataset


@dataclass(frozen=True)
class Estimate:
    seconds: float
    peak_memory_bytes: int | None
    warning: str | None
    samples_per_s: float | None = None
    device: str = "cpu"
    parts: dict[str, float] = field(default_factory=dict)  # "start-up", "training", ...: seconds each
    # What the parts were scaled to, so a time budget's plan (core.runs.budget_plan) can scale them again:
    # rows of each split, and the token length of each probed text (at most max_length).
    sizes: dict[str, int] = field(default_factory=dict)
    token_lengths: tuple[int, ...] = ()

    def breakdown(self) -> str:
        """'start-up 11s · training 40s · evaluation <1s': where the time goes, in the run's order."""

        return " · ".join(f"{name} {format_eta(sec) if sec >= 1 else '<1s'}" for name, sec in self.parts.items())


def estimate_from_parts(parts: dict[str, float], **kwargs: Any) -> Estimate:
    return Estimate(seconds=sum(parts.values()), parts={k: round(v, 3) for k, v in parts.items()}, **kwargs)


PROBE_STEPS = 3
PROBE_GOVERNOR_S = 0.25  # the probe's steps take seconds, not the run's minutes: its thread count is set sooner
GPU_MEMORY_HEADROOM = 0.9  # warn above this share of the card's memory


def estimate_run(dataset: Dataset | None, model_kind: str, config: dict[str, Any]) -> Estimate:
    """Time (and, on CUDA, peak memory) of a neural run on `dataset`, from a short measured probe on a sample of
    its data."""
    # Before this estimate imports anything of the kind: where some of it is still to import, the probe's model
    # load below is cold, as the worker's is; where all of it is imported, it is warm (0.07 s for MiniLM against
    # several seconds in the worker) and the cold load is timed in a fresh process instead.
    cold_here = imports_pending(model_kind)
    if dataset is None:
        raise TrainingError("that dataset no longer exists")
    cfg = config_from_dict(build_config(model_kind, {k: v for k, v in config.items() if k != "resume"}))
    load_s = kept_load_seconds(model_kind, cfg)
    if load_s is None and not cold_here:  # before the start-up is measured: one launch times both
        load_s = cold_load_seconds(model_kind, cfg)
    cfg, train, n_train, (n_val, n_test), parts = _read_train(dataset, model_kind, config)
    return _estimate_neural(train, cfg, model_kind, n_train, (n_val, n_test), parts, load_s, cold_here)


def kept_load_seconds(family: str, cfg: TrainConfig) -> float | None:
    """Seconds a worker takes to build this run's model: what the last real run took, else a cold load measured
    on this machine; None before either."""
    kept = calibration.lookup(calibration.load_key(family, cfg)) or {}
    value = kept.get(calibration.REAL_LOAD, kept.get(calibration.COLD_LOAD))
    return None if value is None else float(value)


def cold_load_seconds(family: str, cfg: TrainConfig) -> float | None:
    """Build the model in a fresh worker-like process (timing.cold_start, which keeps the start-up too) and keep
    the seconds; None when that process could not build it (the probe then says why)."""
    with measuring:  # the server's pass at start may be measuring this very load: wait for it, then look
        kept = kept_load_seconds(family, cfg)
        if kept is not None:
            return kept
        load_s = cold_start(family, "core.text.estimate:build_cold", json.dumps([family, asdict(cfg)])).load_s
        if load_s is not None:
            calibration.remember(calibration.load_key(family, cfg), **{calibration.COLD_LOAD: load_s})
        return load_s


def measure_cold(model_kind: str) -> None:
    """For the server's pass at start (core.runs.estimates.measure_cold_starts): the worker's start-up and, for a
    neural kind, the cold load of its default model, kept, so that the first estimate launches no process."""
    if registry.get_kind(model_kind).model is not None:
        cfg = config_from_dict(build_config(model_kind, {}))
        if kept_load_seconds(model_kind, cfg) is None:
            cold_load_seconds(model_kind, cfg)
    startup_seconds(model_kind)


def build_cold(spec: str) -> None:
    """The load timed by cold_load_seconds, in its fresh process: the run's model built as the executor builds it."""
    family, config = json.loads(spec)
    build_model(family, config_from_dict(config), ["negative", "positive"])


def estimate_tfidf_run(dataset: Dataset | None, model_kind: str, config: dict[str, Any]) -> Estimate:
    """The TF-IDF kind's estimate: a fit on a sample, scaled to the training split."""
    cfg, train, n_train, (n_val, n_test), parts = _read_train(dataset, model_kind, config)
    return _estimate_tfidf(train, cfg, n_train, n_val + n_test, parts)


def _read_train(dataset: Dataset | None, model_kind: str, config: dict[str, Any]
                ) -> tuple[TrainConfig, pd.DataFrame, int, tuple[int, int], dict[str, float]]:
    """The run's config, its training split and split sizes, and the start-up and loading parts measured."""
    cfg = config_from_dict(build_config(model_kind, {k: v for k, v in config.items() if k != "resume"}))
    if dataset is None:
        raise TrainingError("that dataset no longer exists")
    parts = {"start-up": startup_seconds(model_kind)}
    preload(model_kind)
    start = time.perf_counter()
    train = load_split(dataset, "train")
    n_train = len(train)
    n_val, n_test = (int(dataset.split_counts.get(k, 0)) for k in ("validation", "test"))
    if n_val == 0:  # the executor cuts a tenth of train for validation, and tests on it when there is no test
        n_val, n_train = max(1, n_train // 10), n_train - max(1, n_train // 10)
    n_test = n_test or n_val
    if n_train <= 0:
        raise TrainingError(f"dataset {dataset.name!r} has no training rows")
    # Reading all three splits takes about three times reading train (one Parquet file, filtered).
    parts["loading data"] = 3 * (time.perf_counter() - start)
    return cfg, train, n_train, (n_val, n_test), parts


def _estimate_tfidf(train: pd.DataFrame, cfg: TrainConfig, n_train: int, n_eval: int,
                    parts: dict[str, float]) -> Estimate:
    sample = train.sample(n=min(n_train, 2000), random_state=cfg.seed)
    if sample["label"].astype(str).nunique() < 2:
        raise TrainingError("the training split needs at least two different labels")
    texts = sample["text"].astype(str).tolist()
    start = time.perf_counter()
    model = train_tfidf(texts, sample["label"].astype(str).tolist(), TfidfConfig.of_run(cfg))
    per_row = (time.perf_counter() - start) / len(sample)
    start = time.perf_counter()
    model.predict_proba(texts)
    per_eval_row = (time.perf_counter() - start) / len(sample)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        save_tfidf(model, Path(folder))
        save_seconds = time.perf_counter() - start
    # Fitting grows a little faster than the rows (a larger vocabulary, more solver iterations): the 1.2.
    parts |= {"training": per_row * n_train * 1.2, "evaluation": per_eval_row * n_eval,
              "saving": save_seconds * max(1.0, n_train / len(sample)) ** 0.5}
    return estimate_from_parts(parts, peak_memory_bytes=None, warning=None, samples_per_s=1.0 / max(per_row, 1e-9),
                     device="cpu")


def _estimate_neural(train: pd.DataFrame, cfg: TrainConfig, family: str, n_train: int, n_eval: tuple[int, int],
                     parts: dict[str, float], load_s: float | None = None, cold_here: bool = False) -> Estimate:
    """The probe's rates (from this machine's calibration when a probe of the same kind, model, length, batch,
    device and threads ran before; a real run's seconds per example when one completed since) scaled to the run."""
    import torch

    device = resolve_train_device(cfg.device, resolve_device)
    key = calibration.key_of(family, cfg, device, torch.get_num_threads())
    rates = calibration.lookup(key)
    peak, warning = None, None
    # A run may have written its real rate before any probe did (started from the CLI): the probe's parts are
    # still needed then. CUDA probes every time: the memory peak needs the model anyway.
    probed = None
    if rates is None or "token_lengths" not in rates or device.startswith("cuda"):
        probed, peak, warning = _probe_rates(train, cfg, family, n_train, device, cold_here)
        calibration.remember(key, **probed)
        rates = {**(rates or {}), **probed}
    if load_s is None and probed is not None and probed["loading_model_cold"]:  # a cold load, as the worker's
        load_s = probed["loading_model_s"]
        calibration.remember(calibration.load_key(family, cfg), **{calibration.COLD_LOAD: load_s})
    elif load_s is None and cold_here:  # no probe ran (rates kept), or its load was warm after all
        load_s = cold_load_seconds(family, cfg)
    real = rates.get(calibration.REAL)  # a real run's rate already holds its one-off costs of new widths
    per_sample, per_width = (float(real), 0.0) if real else (rates["train_s_per_example"], rates["new_width_s"])
    lengths = rates["token_lengths"]
    steps = -(-n_train // cfg.batch_size) * cfg.epochs
    new_widths = min(steps, cfg.max_length, 2 * len(set(lengths)))  # the sample sees about half the widths
    n_val, n_test = n_eval
    # Validation after every epoch, then validation and test once more for the prediction files.
    eval_samples = n_val * (cfg.epochs + 1) + n_test
    parts["loading the model"] = rates["loading_model_s"] if load_s is None else load_s
    parts["tokenising"] = rates["tokenise_s_per_example"] * (n_train + sum(n_eval))
    parts["training"] = (per_sample * n_train * cfg.epochs + per_width * new_widths) / max(1, cfg.gpus)
    parts["evaluation"] = rates["eval_s_per_example"] * eval_samples
    parts["saving"] = rates["save_s"]
    return estimate_from_parts(parts, peak_memory_bytes=peak, warning=warning, samples_per_s=1.0 / per_sample,
                               device=device, sizes={"train": n_train, "validation": n_val, "test": n_test},
                               token_lengths=tuple(lengths))


def _probe_rates(train: pd.DataFrame, cfg: TrainConfig, family: str, n_train: int, device: str,
                 cold_here: bool = False) -> tuple[dict[str, Any], int | None, str | None]:
    """A few measured steps on a sample: seconds per example of each part, whether its model load was cold, and
    (CUDA) the peak memory."""
    import torch

    labels = sorted(set(train["label"].astype(str)))
    # The run trains with as many threads as the other programs leave cores (core.runs.device): a probe on all of
    # them while others run times OpenMP threads spinning for a lost core, 3-9x the run's rate on a loaded 2-core
    # box (issue 28, bench/estimates.py at load average 3-5). Started before the load, so it has a sample by the
    # first step.
    governor = CpuThreadGovernor(device, every_s=PROBE_GOVERNOR_S)
    start, modules = time.perf_counter(), set(sys.modules)
    seed_everything(cfg.seed)
    model, tokenizer = build_model(family, cfg, labels if len(labels) > 1 else [*labels, "other"])
    loading = time.perf_counter() - start
    # Cold when the build had libraries' modules to import (the model's own, lazily: what the worker's build pays)
    # and the estimate found the kind's libraries still to import; a build that imported none of them was warm.
    cold = cold_here and any(not name.startswith("core.") for name in set(sys.modules) - modules)
    sample = train.sample(n=min(n_train, cfg.batch_size * (PROBE_STEPS + 1)), random_state=cfg.seed)
    start = time.perf_counter()
    ids = encode_texts(tokenizer, sample["text"].astype(str).tolist(), cfg.max_length)
    tokenise = (time.perf_counter() - start) / len(sample)
    y = np.array([labels.index(v) for v in sample["label"].astype(str)])
    batches = TokenBatches(ids, y, tokenizer.pad_token_id or 0, cfg.batch_size, seed=cfg.seed)
    loop = TrainingLoop(model, batches, batches, replace_config(cfg, epochs=1, warmup_ratio=0.0), device,
                 lambda log: None, lambda log: None, lambda: False, None)
    loop.cpu_threads = governor
    index_batches = batches.index_batches(0)
    loop.model.train()
    probe = index_batches[:PROBE_STEPS]
    with governor:  # the thread count is restored however the probe ends
        _probe_step(loop, batches, probe[0])  # the first step allocates the optimizer's state
        # Each new batch width pays a one-off kernel selection (oneDNN on CPUs, cuDNN): timed once on new
        # widths, then again on the same (cached) widths. A run pays the first for each distinct width it meets
        # and the second for every other step; timing only one or the other was 1.5-4x off on small runs.
        first, second = (_time_steps(loop, batches, probe) for _ in range(2))
        rates = {"loading_model_s": loading, "loading_model_cold": cold, "tokenise_s_per_example": tokenise,
                 "train_s_per_example": second / sum(len(idx) for idx in probe),
                 "new_width_s": max(0.0, first - second) / max(1, len(probe) - 1),  # probe[0] is no longer new
                 "eval_s_per_example": _eval_seconds_per_sample(loop, batches, cfg, device),
                 "save_s": _save_seconds(loop.model), "token_lengths": [len(x) for x in ids]}
    peak, warning = None, None
    if device.startswith("cuda"):
        peak, warning = _probe_peak_memory(loop, tokenizer, cfg, device)
    del loop, model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return rates, peak, warning


def _time_steps(loop: TrainingLoop, batches: TokenBatches, probe: list[np.ndarray]) -> float:
    start = time.perf_counter()
    for idx in probe:
        _probe_step(loop, batches, idx)
    return time.perf_counter() - start


def _eval_seconds_per_sample(loop: TrainingLoop, batches: TokenBatches, cfg: TrainConfig, device: str) -> float:
    """Seconds per example of evaluation, timed as the executor runs it: no gradients, batches twice as big."""

    probe = TokenBatches(batches.ids, None, batches.pad_id, cfg.batch_size * EVAL_BATCH_FACTOR, shuffle=False)
    dtype = training_precision(device)[0]
    predict_proba(loop.model, probe, device, dtype)  # warm-up: inference kernels differ from training's
    start = time.perf_counter()
    predict_proba(loop.model, probe, device, dtype)
    return (time.perf_counter() - start) / max(1, probe.num_examples)


SAVE_BYTES_PER_S = 200e6  # safetensors to a local disk, with the tokenizer and config beside it


def _save_seconds(model: Any) -> float:
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    return 0.5 + size / SAVE_BYTES_PER_S


def _probe_step(loop: TrainingLoop, batches: TokenBatches, idx: np.ndarray) -> None:
    loop.cpu_threads.poll()  # between steps, as the run's loop does
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
