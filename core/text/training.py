"""Training classifiers: configs, the explicit loop shared by the Transformer and the LSTM, and the run executor.

`execute_run` (called by core.runs.worker) loads a dataset's splits, trains one family, saves the model,
the predictions and the metrics; `train_classifier` is the loop itself, usable from tests and benchmarks.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import ProtolabError
from core.runs import distributed
from core.text.batching import TokenBatches, encode_texts

FAMILIES = ("transformer", "lstm", "tfidf")
# 1e-4 for the Transformer, not BERT-base's usual 5e-5: MiniLM-L6 with a fresh head learns little in the
# few dozen steps of a small dataset at 5e-5 (demo reviews, 3 epochs: macro-F1 0.32 vs 1.00 at 1e-4 / 2e-4).
DEFAULT_LEARNING_RATE = {"transformer": 1e-4, "lstm": 2e-3, "tfidf": 5e-5}
DEVICES = ("auto", "cpu", "cuda", "mps")
# bf16 autocast on the CPU: None = where the CPU multiplies bf16 in hardware (AVX512-BF16/AMX). Measured on
# the team's 2-core box (quiet): MiniLM 125 vs 65 samples/s, same held-out macro-F1 (BENCHMARKS.md); an
# earlier probe under heavy load looked slower. PROTOLAB_TRAIN_PRECISION=fp32|bf16 forces one.
CPU_BF16: bool | None = None
LOG_EVERY_STEPS = 5
EVAL_BATCH_FACTOR = 2  # evaluation has no backward pass, so it affords bigger batches
CHECKPOINT_DIR, MODEL_DIR, PREDICTIONS_DIR, META_FILE = "checkpoint", "model", "predictions", "meta.json"
_WEIGHTS, _BEST_WEIGHTS, _TRAINER_STATE = "model.safetensors", "best.safetensors", "trainer_state.pt"


class TrainingError(ProtolabError):
    """Settings or data that cannot be trained on: a bad value, one label only, no memory even at batch 1."""


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 3
    batch_size: int = 32  # per process; the effective batch is batch_size × gpus × grad_accum_steps
    learning_rate: float = 1e-4  # build_config picks the family's default (DEFAULT_LEARNING_RATE)
    max_length: int = 128
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    grad_accum_steps: int = 1
    max_grad_norm: float = 1.0
    patience: int = 2  # epochs without a better validation macro-F1 before stopping; 0 = never stop early
    class_weights: bool = False
    seed: int = 42
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N" | "mps"
    gpus: int = 1
    model_id: str | None = None  # None = the bundled MiniLM
    init_embeddings: bool = True  # LSTM: start from the pretrained model's word embeddings
    tfidf_ngram_max: int = 2
    tfidf_min_df: int = 1
    tfidf_max_features: int = 200_000
    tfidf_c: float = 4.0


@dataclass
class TrainState:
    """Where training stands; saved in every checkpoint so a resumed run continues the count."""

    epoch: int = 0  # completed epochs
    step: int = 0  # optimizer steps taken
    best_metric: float = -1.0
    best_epoch: int = 0
    bad_epochs: int = 0
    samples: int = 0
    train_seconds: float = 0.0


@dataclass(frozen=True)
class StepLog:
    step: int
    total_steps: int
    epoch: int  # 0-based
    epoch_float: float
    loss: float
    learning_rate: float
    samples_per_s: float
    eta_s: float


@dataclass(frozen=True)
class EpochLog:
    epoch: int  # 1-based, completed
    step: int
    loss: float
    accuracy: float
    macro_f1: float
    improved: bool


@dataclass(frozen=True)
class TrainResult:
    state: TrainState
    history: list[EpochLog]
    stopped: bool
    samples_per_s: float
    train_time_s: float
    batch_size: int
    grad_accum_steps: int


@dataclass(frozen=True)
class Estimate:
    seconds: float
    peak_memory_bytes: int | None
    warning: str | None
    samples_per_s: float | None = None
    device: str = "cpu"


# --- configs ---------------------------------------------------------------------------------------

def build_config(model_kind: str, options: dict[str, Any]) -> dict[str, Any]:
    """The full, validated config dict of a classification run from the options a user gave."""
    if model_kind not in FAMILIES:
        raise TrainingError(f"unknown model {model_kind!r}: use one of {', '.join(FAMILIES)}")
    known = {f.name for f in fields(TrainConfig)}
    values = {k: v for k, v in options.items() if v is not None and k != "resume"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise TrainingError(f"option(s) {', '.join(unknown)} do not apply to the {model_kind} model")
    values.setdefault("learning_rate", DEFAULT_LEARNING_RATE[model_kind])
    cfg = TrainConfig(**values)
    _validate(cfg)
    return asdict(cfg)


def config_from_dict(config: dict[str, Any]) -> TrainConfig:
    known = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in config.items() if k in known})


def _validate(cfg: TrainConfig) -> None:
    for name in ("epochs", "batch_size", "max_length", "grad_accum_steps", "gpus", "tfidf_ngram_max",
                 "tfidf_min_df", "tfidf_max_features"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise TrainingError(f"{name} must be a positive whole number, got {value!r}")
    for name in ("patience", "seed"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise TrainingError(f"{name} must be a whole number ≥ 0, got {value!r}")
    for name in ("learning_rate", "max_grad_norm", "tfidf_c"):
        if not _is_number(getattr(cfg, name)) or getattr(cfg, name) <= 0:
            raise TrainingError(f"{name} must be a number > 0, got {getattr(cfg, name)!r}")
    if not _is_number(cfg.warmup_ratio) or not 0 <= cfg.warmup_ratio < 1:
        raise TrainingError(f"warmup_ratio must be in [0, 1), got {cfg.warmup_ratio!r}")
    if not _is_number(cfg.weight_decay) or cfg.weight_decay < 0:
        raise TrainingError(f"weight_decay must be ≥ 0, got {cfg.weight_decay!r}")
    device = str(cfg.device).lower()
    if device not in DEVICES and not (device.startswith("cuda:") and device[5:].isdigit()):
        raise TrainingError(f"unknown device {cfg.device!r}: use auto, cpu, cuda, cuda:N or mps")
    if cfg.max_length > 8192:
        raise TrainingError(f"max_length {cfg.max_length} is beyond what any bundled model reads (8192)")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# --- the training loop -----------------------------------------------------------------------------

def train_classifier(
    model: Any, train_batches: TokenBatches, val_batches: TokenBatches, cfg: TrainConfig, *,
    device: str | None = None,
    on_step: Callable[[StepLog], None] = lambda log: None,
    on_epoch: Callable[[EpochLog], None] = lambda log: None,
    on_event: Callable[[dict[str, Any]], None] = lambda event: None,
    should_stop: Callable[[], bool] = lambda: False,
    checkpoint_dir: Path | None = None,
    resume_dir: Path | None = None,
) -> TrainResult:
    """Fine-tune `model` (forward(input_ids, attention_mask) → .logits) with AdamW, warm-up/decay, clipping,
    accumulation, early stopping on validation macro-F1; the best epoch's weights are loaded at the end.

    `checkpoint_dir` gets a resumable checkpoint after every epoch; `resume_dir` continues from one.
    CUDA out-of-memory halves the batch and doubles accumulation (same effective batch) until batch 1.
    """
    from core.runs.device import resolve_device

    device = device or _resolve(cfg.device, resolve_device)
    loop = _Loop(model, train_batches, val_batches, cfg, device, on_step, on_epoch, should_stop, checkpoint_dir)
    if resume_dir is not None and (resume_dir / _TRAINER_STATE).exists():
        loop.load_checkpoint(resume_dir)
        on_event({"event": "resumed", "epoch": loop.state.epoch, "step": loop.state.step})
    return with_oom_fallback(loop.fit, train_batches.batch_size, cfg.grad_accum_steps, on_event=on_event,
                             max_length=cfg.max_length, on_retry=loop.rewind)


def with_oom_fallback(
    attempt: Callable[[int, int], TrainResult], batch_size: int, grad_accum_steps: int, *,
    on_event: Callable[[dict[str, Any]], None] = lambda event: None, max_length: int | None = None,
    on_retry: Callable[[], None] = lambda: None,
) -> TrainResult:
    """Call attempt(batch_size, grad_accum_steps); on CUDA OOM retry with half the batch, twice the accumulation."""
    import torch

    while True:
        try:
            return attempt(batch_size, grad_accum_steps)
        except torch.cuda.OutOfMemoryError as exc:
            _free_cuda_memory()
            if batch_size <= 1:
                raise TrainingError(
                    f"out of GPU memory even with batch size 1 (max length {max_length}): lower max length, "
                    f"choose a smaller model, or train on the CPU ({str(exc).splitlines()[0][:160]})") from exc
            batch_size, grad_accum_steps = max(1, batch_size // 2), grad_accum_steps * 2
            on_event({"event": "oom_retry", "batch_size": batch_size, "grad_accum_steps": grad_accum_steps,
                      "message": f"CUDA out of memory: retrying with batch size {batch_size} and "
                                 f"gradient accumulation {grad_accum_steps}"})
            on_retry()


def _free_cuda_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class _Loop:
    """The state of one training: model, optimizer, scheduler, counters, best weights."""

    def __init__(self, model: Any, train: TokenBatches, val: TokenBatches, cfg: TrainConfig, device: str,
                 on_step: Callable, on_epoch: Callable, should_stop: Callable, checkpoint_dir: Path | None):
        import torch

        self.cfg, self.device, self.train, self.val = cfg, device, train, val
        self.on_step, self.on_epoch, self.should_stop = on_step, on_epoch, should_stop
        self.checkpoint_dir = checkpoint_dir
        self.model = model.to(device)
        self.core = getattr(model, "module", model)  # the model without its DDP wrapper
        self.dtype, self.scaler = _precision(device)
        self.optimizer = _adamw(self.core, cfg, device)
        self.steps_per_epoch = max(1, math.ceil(len(train) / cfg.grad_accum_steps))
        self.total_steps = self.steps_per_epoch * cfg.epochs
        from transformers import get_linear_schedule_with_warmup

        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, int(cfg.warmup_ratio * self.total_steps),
                                                         self.total_steps)
        self.loss_weight = _class_weights(train, num_labels(self.core)).to(device) if cfg.class_weights else None
        self.state, self.history = TrainState(), []
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.snapshot: dict[str, Any] | None = None
        self._started = time.perf_counter()
        self._session_steps, self._session_seconds = 0, 0.0

    # one fit = epochs from state.epoch on, at one batch size
    def fit(self, batch_size: int, grad_accum_steps: int) -> TrainResult:
        batches = self.train.with_batch_size(batch_size)
        stopped = False
        while self.state.epoch < self.cfg.epochs and not stopped:
            self.snapshot = self._capture()
            stopped = not self._train_epoch(batches, grad_accum_steps)
            if stopped:
                break
            self._end_epoch()
            if self.cfg.patience and self.state.bad_epochs >= self.cfg.patience:
                break
        if self.best_weights is not None:
            self.core.load_state_dict(self.best_weights)
        seconds = max(self.state.train_seconds, 1e-9)
        return TrainResult(state=self.state, history=list(self.history), stopped=stopped,
                           samples_per_s=self.state.samples / seconds * self.train.world_size,
                           train_time_s=time.perf_counter() - self._started, batch_size=batch_size,
                           grad_accum_steps=grad_accum_steps)

    def _train_epoch(self, batches: TokenBatches, accum: int) -> bool:
        """One pass over the training batches; False when a stop was requested."""
        self.model.train()
        index_batches = batches.index_batches(self.state.epoch)
        n = len(index_batches)
        group_losses: list[float] = []
        tick = time.perf_counter()
        for i, idx in enumerate(index_batches):
            group_start = (i // accum) * accum
            group_size = min(accum, n - group_start)
            sync = i == group_start + group_size - 1
            batch = {k: v.to(self.device, non_blocking=True) for k, v in batches.collate(idx).items()}
            no_sync = self.model.no_sync() if not sync and hasattr(self.model, "no_sync") else contextlib.nullcontext()
            with no_sync:
                loss = self._loss(batch)
                scaled = loss / group_size
                (self.scaler.scale(scaled) if self.scaler else scaled).backward()
            group_losses.append(float(loss.detach()))
            self.state.samples += len(idx)
            if sync:
                self._optimizer_step()
                now = time.perf_counter()
                self.state.train_seconds += now - tick
                self._session_seconds += now - tick
                tick = now
                self._session_steps += 1
                self.state.step += 1
                # Under DDP the logged loss is the mean over ranks, i.e. over the whole global batch.
                loss_value = distributed.all_reduce_mean(float(np.mean(group_losses)), _comm(self.device))
                self.on_step(self._step_log(i, n, loss_value))
                group_losses = []
            if self.should_stop():
                return False
        return True

    def _loss(self, batch: dict[str, Any]) -> Any:
        import torch
        import torch.nn.functional as F

        autocast = (torch.autocast(device_type=self.device.split(":")[0], dtype=self.dtype) if self.dtype
                    else contextlib.nullcontext())
        with autocast:
            logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return F.cross_entropy(logits.float(), batch["labels"], weight=self.loss_weight)

    def _optimizer_step(self) -> None:
        import torch

        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    def _step_log(self, i: int, n: int, loss: float) -> StepLog:
        per_step = self._session_seconds / max(1, self._session_steps)
        remaining = self.total_steps - self.state.step
        samples_per_s = self.state.samples / max(self.state.train_seconds, 1e-9) * self.train.world_size
        return StepLog(step=self.state.step, total_steps=self.total_steps, epoch=self.state.epoch,
                       epoch_float=self.state.epoch + (i + 1) / n, loss=loss,
                       learning_rate=float(self.scheduler.get_last_lr()[0]), samples_per_s=samples_per_s,
                       eta_s=remaining * per_step)

    def _end_epoch(self) -> None:
        proba = predict_proba(self.core, self.val, self.device, self.dtype)
        y = self.val.labels if self.val.labels is not None else np.zeros(len(proba), dtype=int)
        scores = _scores(y, proba)
        self.state.epoch += 1
        improved = scores["macro_f1"] > self.state.best_metric + 1e-9
        if improved:
            self.state.best_metric, self.state.best_epoch, self.state.bad_epochs = \
                scores["macro_f1"], self.state.epoch, 0
            self.best_weights = _cpu_state(self.core)
        else:
            self.state.bad_epochs += 1
        log = EpochLog(epoch=self.state.epoch, step=self.state.step, improved=improved, **scores)
        self.history.append(log)
        if self.checkpoint_dir is not None:
            self.save_checkpoint(self.checkpoint_dir)
        self.on_epoch(log)

    # --- checkpoints ---------------------------------------------------------------------------
    def save_checkpoint(self, folder: Path) -> None:
        """Model, best weights, optimizer, scheduler and counters, swapped into place whole."""
        import torch
        from safetensors.torch import save_file

        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_file(_cpu_state(self.core), str(tmp / _WEIGHTS))
        if self.best_weights is not None:
            save_file(self.best_weights, str(tmp / _BEST_WEIGHTS))
        torch.save({"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                    "scaler": self.scaler.state_dict() if self.scaler else None, "state": asdict(self.state),
                    "history": [asdict(h) for h in self.history]}, tmp / _TRAINER_STATE)
        old = folder.with_name(folder.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if folder.exists():
            folder.rename(old)
        tmp.rename(folder)
        shutil.rmtree(old, ignore_errors=True)

    def load_checkpoint(self, folder: Path) -> None:
        import torch
        from safetensors.torch import load_file

        self.core.load_state_dict(load_file(str(folder / _WEIGHTS), device="cpu"))
        if (folder / _BEST_WEIGHTS).exists():
            self.best_weights = load_file(str(folder / _BEST_WEIGHTS), device="cpu")
        saved = torch.load(folder / _TRAINER_STATE, map_location=self.device, weights_only=True)
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        if self.scaler and saved.get("scaler"):
            self.scaler.load_state_dict(saved["scaler"])
        self.state = TrainState(**saved["state"])
        self.history = [EpochLog(**h) for h in saved.get("history", [])]

    # --- rewinding to the start of the epoch after an out-of-memory error -----------------------
    def _capture(self) -> dict[str, Any]:
        import copy

        return {"model": _cpu_state(self.core), "optimizer": copy.deepcopy(self.optimizer.state_dict()),
                "scheduler": copy.deepcopy(self.scheduler.state_dict()), "state": asdict(self.state)}

    def rewind(self) -> None:
        if self.snapshot is None:
            return
        self.optimizer.zero_grad(set_to_none=True)
        self.core.load_state_dict(self.snapshot["model"])
        self.optimizer.load_state_dict(self.snapshot["optimizer"])
        self.scheduler.load_state_dict(self.snapshot["scheduler"])
        self.state = TrainState(**self.snapshot["state"])


def num_labels(model: Any) -> int:
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "num_labels", None):
        return int(config.num_labels)
    return int(model.num_labels)


def predict_proba(model: Any, batches: TokenBatches, device: str, dtype: Any = None) -> np.ndarray:
    """Class probabilities (N, C) in the examples' original order."""
    import torch

    model.eval()
    out: np.ndarray | None = None
    autocast = (torch.autocast(device_type=device.split(":")[0], dtype=dtype) if dtype
                else contextlib.nullcontext())
    with torch.inference_mode(), autocast:
        for idx in batches.index_batches(0):
            batch = batches.collate(idx)
            logits = model(input_ids=batch["input_ids"].to(device),
                           attention_mask=batch["attention_mask"].to(device)).logits
            proba = torch.softmax(logits.float(), dim=-1).cpu().numpy()
            if out is None:
                out = np.zeros((batches.num_examples, proba.shape[1]), dtype=np.float64)
            out[idx] = proba
    model.train()
    return out if out is not None else np.zeros((0, num_labels(model)))


def _scores(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import f1_score

    if len(y) == 0:
        return {"loss": 0.0, "accuracy": 0.0, "macro_f1": 0.0}
    pred = proba.argmax(axis=1)
    loss = float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, 1.0))))
    labels = list(range(proba.shape[1]))
    return {"loss": loss, "accuracy": float(np.mean(pred == y)),
            "macro_f1": float(f1_score(y, pred, labels=labels, average="macro", zero_division=0))}


def _cpu_state(model: Any) -> dict[str, Any]:
    # A copy per tensor: no shared storage (safetensors refuses it) and safe from later updates.
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


def _precision(device: str) -> tuple[Any, Any]:
    """(autocast dtype or None, GradScaler or None) for a device."""
    import torch

    if device.startswith("cuda"):
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, None
        return torch.float16, torch.amp.GradScaler("cuda")
    if device == "cpu" and _cpu_bf16():
        return torch.bfloat16, None
    return None, None


def _cpu_bf16() -> bool:
    forced = os.environ.get("PROTOLAB_TRAIN_PRECISION", "").lower()
    if forced in ("fp32", "bf16"):
        return forced == "bf16"
    if CPU_BF16 is not None:
        return CPU_BF16
    from core.text.serving import native_bf16_cpu  # emulated bf16 is slower than fp32, so only where native

    return native_bf16_cpu()


def _adamw(model: Any, cfg: TrainConfig, device: str) -> Any:
    import torch

    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        # Biases and normalisation weights are not decayed (the usual BERT recipe).
        (no_decay if param.ndim < 2 or "norm" in name.lower() else decay).append(param)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    try:  # the fused kernel is one pass over all parameters; it exists for CUDA and (torch ≥ 2.4) the CPU
        return torch.optim.AdamW(groups, lr=cfg.learning_rate, fused=device.split(":")[0] in ("cuda", "cpu"))
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, lr=cfg.learning_rate)


def _class_weights(batches: TokenBatches, n_labels: int) -> Any:
    import torch

    counts = np.bincount(np.asarray(batches.labels), minlength=n_labels).astype(np.float64)
    weights = len(batches.labels) / (n_labels * np.maximum(counts, 1.0))
    return torch.tensor(weights, dtype=torch.float32)


def _resolve(requested: str, resolve: Callable[[str], str]) -> str:
    try:
        return resolve(requested)
    except ValueError as exc:
        raise TrainingError(str(exc)) from exc


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def format_eta(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    if seconds >= 60:
        return f"{seconds // 60}m {seconds % 60}s"
    return f"{seconds}s"


# --- the run executor ------------------------------------------------------------------------------

def execute_run(ctx: Any) -> dict[str, Any]:
    """Train one classification run for core.runs.worker: load splits, train, save model/predictions, return metrics."""
    cfg = config_from_dict(ctx.config)
    if ctx.model_kind not in FAMILIES:
        raise TrainingError(f"unknown classification model {ctx.model_kind!r}")
    ctx.progress(0.0, "loading data", force=True)
    splits = load_splits(ctx.dataset(), seed=cfg.seed)
    labels = label_order(splits)
    if ctx.model_kind == "tfidf":
        return _execute_tfidf(ctx, cfg, splits, labels)
    return _execute_neural(ctx, cfg, splits, labels)


def load_splits(dataset: Any, seed: int = 42) -> dict[str, pd.DataFrame]:
    """train/validation/test frames (text, label as str); a missing validation split is cut from train."""
    from core.data.storage import load_split

    frames = {}
    for split in ("train", "validation", "test"):
        frame = load_split(dataset, split)
        frame = frame[frame["label"].notna()]
        frames[split] = pd.DataFrame({"text": frame["text"].fillna("").astype(str),
                                      "label": frame["label"].astype(str)}).reset_index(drop=True)
    if frames["train"].empty:
        raise TrainingError(f"dataset {dataset.name!r} has no training rows")
    if frames["validation"].empty:  # early stopping needs one; 10 % of train keeps it honest
        shuffled = frames["train"].sample(frac=1.0, random_state=seed)
        n_val = max(1, len(shuffled) // 10)
        frames["validation"], frames["train"] = (shuffled.iloc[:n_val].reset_index(drop=True),
                                                 shuffled.iloc[n_val:].reset_index(drop=True))
    if frames["test"].empty:
        frames["test"] = frames["validation"]
    return frames


def label_order(splits: dict[str, pd.DataFrame]) -> list[str]:
    labels = sorted(set().union(*(set(f["label"]) for f in splits.values())))
    if len(set(splits["train"]["label"])) < 2:
        raise TrainingError("the training split needs at least two different labels")
    return labels


def _execute_tfidf(ctx: Any, cfg: TrainConfig, splits: dict[str, pd.DataFrame], labels: list[str]) -> dict:
    from core.text.tfidf import TfidfConfig, save_tfidf, train_tfidf

    ctx.set_device("cpu")
    ctx.progress(0.1, "fitting TF-IDF + logistic regression", force=True)
    tcfg = TfidfConfig(ngram_range=(1, cfg.tfidf_ngram_max), min_df=cfg.tfidf_min_df,
                       max_features=cfg.tfidf_max_features, C=cfg.tfidf_c,
                       class_weight="balanced" if cfg.class_weights else None)
    start = time.perf_counter()
    model = train_tfidf(splits["train"]["text"].tolist(), splits["train"]["label"].tolist(), tcfg)
    seconds = time.perf_counter() - start
    _stop_if_cancelled(ctx)

    def proba_of(frame: pd.DataFrame) -> np.ndarray:  # columns in `labels` order (train may lack some)
        raw = model.predict_proba(frame["text"].tolist())
        out = np.zeros((len(frame), len(labels)))
        for j, label in enumerate(model.labels):
            out[:, labels.index(label)] = raw[:, j]
        return out

    probas = {split: proba_of(splits[split]) for split in ("validation", "test")}
    y_val = np.array([labels.index(v) for v in splits["validation"]["label"]])
    scores = _scores(y_val, probas["validation"])
    for name, value in scores.items():
        ctx.log_metric(name, value, step=1, epoch=1.0, split="validation")
    if ctx.is_main:
        save_tfidf(model, ctx.artifact_dir / MODEL_DIR)
    samples_per_s = len(splits["train"]) / max(seconds, 1e-9)
    return _finish(ctx, cfg, splits, labels, probas, best_epoch=1, samples_per_s=samples_per_s,
                   train_time_s=seconds, device="cpu")


def _execute_neural(ctx: Any, cfg: TrainConfig, splits: dict[str, pd.DataFrame], labels: list[str]) -> dict:
    from core.runs.device import resolve_device

    world = distributed.current_world()
    device = _resolve(cfg.device, resolve_device)
    if world.distributed:
        device = distributed.init_process_group(world, device)
    try:
        ctx.set_device(device + (f" × {world.world_size} (DDP)" if world.distributed else ""))
        seed_everything(cfg.seed)
        ctx.progress(0.0, "loading the model", force=True)
        model, tokenizer = build_model(ctx.model_kind, cfg, labels)
        ctx.progress(0.0, "tokenising", force=True)
        encoded = {split: encode_texts(tokenizer, frame["text"].tolist(), cfg.max_length)
                   for split, frame in splits.items()}
        y = {split: np.array([labels.index(v) for v in frame["label"]]) for split, frame in splits.items()}
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        train = TokenBatches(encoded["train"], y["train"], pad_id, cfg.batch_size, seed=cfg.seed,
                             rank=world.rank, world_size=world.world_size)
        val = TokenBatches(encoded["validation"], y["validation"], pad_id, cfg.batch_size * EVAL_BATCH_FACTOR,
                           shuffle=False)
        if world.distributed:
            import torch
            from torch.nn.parallel import DistributedDataParallel

            model = model.to(device)
            model = DistributedDataParallel(model, device_ids=[torch.device(device)] if device.startswith("cuda")
                                            else None)
        reporter = _Reporter(ctx, cfg)
        checkpoint = ctx.artifact_dir / CHECKPOINT_DIR
        result = train_classifier(
            model, train, val, cfg, device=device, on_step=reporter.on_step, on_epoch=reporter.on_epoch,
            on_event=ctx.add_event,
            should_stop=lambda: distributed.broadcast_flag(ctx.is_main and ctx.should_stop(), _comm(device)),
            checkpoint_dir=checkpoint if ctx.is_main else None,
            resume_dir=checkpoint if ctx.config.get("resume") else None)
        if result.stopped:
            _stop_if_cancelled(ctx, force=True)
        if not ctx.is_main:
            return {}
        core_model = getattr(model, "module", model)
        ctx.progress(0.96, "predicting validation and test sets", force=True)
        dtype = _precision(device)[0]
        probas = {split: predict_proba(core_model, TokenBatches(encoded[split], None, pad_id,
                                                                cfg.batch_size * EVAL_BATCH_FACTOR, shuffle=False),
                                       device, dtype) for split in ("validation", "test")}
        save_model(ctx.model_kind, core_model, tokenizer, labels, ctx.artifact_dir / MODEL_DIR)
        if result.grad_accum_steps != cfg.grad_accum_steps:
            ctx.add_event({"event": "trained_with", "batch_size": result.batch_size,
                           "grad_accum_steps": result.grad_accum_steps})
        return _finish(ctx, cfg, splits, labels, probas, best_epoch=result.state.best_epoch,
                       samples_per_s=result.samples_per_s, train_time_s=result.train_time_s, device=device)
    finally:
        if world.distributed:
            distributed.destroy_process_group()


def _comm(device: str) -> str:
    # gloo collectives take CPU tensors, nccl ones CUDA tensors.
    return device if device.startswith("cuda") else "cpu"


def _stop_if_cancelled(ctx: Any, force: bool = False) -> None:
    # Raised through the context: under `python -m core.runs.worker` the worker's RunCancelled lives in
    # __main__, so a class imported from core.runs.worker here would not be the one it catches.
    if force:
        ctx.cancelled = True
    ctx.raise_if_cancelled()


def build_model(family: str, cfg: TrainConfig, labels: Sequence[str]) -> tuple[Any, Any]:
    """(model, tokenizer) for a neural family, with fresh classification head(s) for `labels`."""
    from core.text.pretrained import ModelNotAvailable, load_tokenizer, resolve_model_path

    tokenizer = load_tokenizer(cfg.model_id)
    source = resolve_model_path(cfg.model_id)
    if family == "lstm":
        from core.text.lstm import LSTMConfig, build_lstm

        model = build_lstm(len(tokenizer), len(labels), tokenizer.pad_token_id or 0, LSTMConfig(),
                           init_embeddings_from=source if cfg.init_embeddings else None)
        model.labels = list(labels)
        return model, tokenizer
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    id2label = dict(enumerate(labels))
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the "newly initialised classifier" report is expected here
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            source, num_labels=len(labels), id2label=id2label, label2id={v: k for k, v in id2label.items()},
            ignore_mismatched_sizes=True)
    except (OSError, ValueError) as exc:
        raise ModelNotAvailable(f"could not load model {cfg.model_id!r}: {str(exc).splitlines()[0][:200]}") from exc
    finally:
        hf_logging.set_verbosity(verbosity)
    model.config.problem_type = "single_label_classification"
    return model, tokenizer


def save_model(family: str, model: Any, tokenizer: Any, labels: Sequence[str], folder: Path) -> None:
    """Save into the run's model folder in the family's reloadable form (safetensors, no pickle)."""
    folder.mkdir(parents=True, exist_ok=True)
    if family == "lstm":
        from core.text.lstm import save_lstm

        model.labels = list(labels)
        save_lstm(model, folder, tokenizer, labels=list(labels))
        return
    model.config.id2label = dict(enumerate(labels))
    model.config.label2id = {label: i for i, label in enumerate(labels)}
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)


def _finish(ctx: Any, cfg: TrainConfig, splits: dict[str, pd.DataFrame], labels: list[str],
            probas: dict[str, np.ndarray], *, best_epoch: int, samples_per_s: float, train_time_s: float,
            device: str) -> dict[str, Any]:
    """Write meta.json and the prediction files; return the run's final metrics."""
    from core.evaluation.metrics import classification_report, headline

    reports = {}
    folder = ctx.artifact_dir / PREDICTIONS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for split, proba in probas.items():
        frame = splits[split]
        pred = [labels[i] for i in proba.argmax(axis=1)] if len(proba) else []
        reports[split] = classification_report(frame["label"].tolist(), pred, labels, proba)
        pd.DataFrame({"text": frame["text"], "label": frame["label"], "pred": pred,
                      "confidence": proba.max(axis=1) if len(proba) else [],
                      "proba": [row.tolist() for row in proba]}).to_parquet(folder / f"{split}.parquet", index=False)
    meta = {"family": ctx.model_kind, "labels": labels, "max_length": cfg.max_length,
            "model_id": cfg.model_id if ctx.model_kind != "tfidf" else None, "dataset_id": ctx.dataset_id}
    (ctx.artifact_dir / META_FILE).write_text(json.dumps(meta, indent=2))
    for name in ("accuracy", "macro_f1"):
        ctx.log_metric(name, reports["test"][name], step=0, epoch=None, split="test")
    return {**headline(reports["test"]), "split": "test", "labels": labels, "reports": reports,
            "best_epoch": int(best_epoch), "train_samples_per_s": float(samples_per_s),
            "train_time_s": float(train_time_s), "device": device}


class _Reporter:
    """Turns loop callbacks into progress text and metric points on the run (0.95 of the bar is training)."""

    def __init__(self, ctx: Any, cfg: TrainConfig) -> None:
        self.ctx, self.cfg = ctx, cfg

    def on_step(self, log: StepLog) -> None:
        text = (f"epoch {log.epoch + 1}/{self.cfg.epochs} · step {log.step}/{log.total_steps} · "
                f"{log.samples_per_s:.0f} samples/s · ETA {format_eta(log.eta_s)}")
        self.ctx.progress(0.95 * log.step / max(1, log.total_steps), text)
        if log.step % LOG_EVERY_STEPS == 0 or log.step == 1 or log.step == log.total_steps:
            for name, value in (("train_loss", log.loss), ("learning_rate", log.learning_rate),
                                ("samples_per_s", log.samples_per_s)):
                self.ctx.log_metric(name, value, step=log.step, epoch=round(log.epoch_float, 4), split="train")

    def on_epoch(self, log: EpochLog) -> None:
        for name in ("loss", "accuracy", "macro_f1"):
            self.ctx.log_metric(name, getattr(log, name), step=log.step, epoch=float(log.epoch), split="validation")
        best = " (best so far)" if log.improved else ""
        self.ctx.progress(0.95 * log.epoch / self.cfg.epochs,
                          f"epoch {log.epoch}/{self.cfg.epochs} done · validation macro-F1 {log.macro_f1:.3f}{best}",
                          force=True)


# --- pre-flight estimate ---------------------------------------------------------------------------

PROBE_STEPS = 3
GPU_MEMORY_HEADROOM = 0.9  # warn above this share of the card's memory


def estimate_run(dataset_id: int, model_kind: str, config: dict[str, Any]) -> Estimate:
    """Time (and, on CUDA, peak memory) of a run, from a short measured probe on a sample of its data."""
    from core.data.storage import load_split
    from db import datasets as dataset_queries
    from db import session_scope

    cfg = config_from_dict(build_config(model_kind, {k: v for k, v in config.items() if k != "resume"}))
    with session_scope() as s:
        dataset = dataset_queries.get_dataset(s, dataset_id)
        if dataset is None:
            raise TrainingError(f"no dataset with id {dataset_id}")
        s.expunge(dataset)
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
                TfidfConfig(ngram_range=(1, cfg.tfidf_ngram_max), C=cfg.tfidf_c))
    per_row = (time.perf_counter() - start) / len(sample)
    return Estimate(seconds=per_row * n_train * 1.2 + 1.0, peak_memory_bytes=None, warning=None,
                    samples_per_s=1.0 / max(per_row, 1e-9), device="cpu")


def _estimate_neural(train: pd.DataFrame, cfg: TrainConfig, family: str, n_train: int, n_eval: int) -> Estimate:
    import torch

    from core.runs.device import resolve_device

    device = _resolve(cfg.device, resolve_device)
    labels = sorted(set(train["label"].astype(str)))
    start = time.perf_counter()
    seed_everything(cfg.seed)
    model, tokenizer = build_model(family, cfg, labels if len(labels) > 1 else [*labels, "other"])
    load_seconds = time.perf_counter() - start
    sample = train.sample(n=min(n_train, cfg.batch_size * (PROBE_STEPS + 1)), random_state=cfg.seed)
    ids = encode_texts(tokenizer, sample["text"].astype(str).tolist(), cfg.max_length)
    y = np.array([labels.index(v) for v in sample["label"].astype(str)])
    batches = TokenBatches(ids, y, tokenizer.pad_token_id or 0, cfg.batch_size, seed=cfg.seed)
    loop = _Loop(model, batches, batches, replace_config(cfg, epochs=1, warmup_ratio=0.0), device,
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


def _probe_step(loop: _Loop, batches: TokenBatches, idx: np.ndarray) -> None:
    batch = {k: v.to(loop.device) for k, v in batches.collate(idx).items()}
    loss = loop._loss(batch)
    (loop.scaler.scale(loss) if loop.scaler else loss).backward()
    loop._optimizer_step()


def _probe_peak_memory(loop: _Loop, tokenizer: Any, cfg: TrainConfig, device: str) -> tuple[int, str | None]:
    """Peak memory of one step on a worst-case batch (batch_size × max_length) on a CUDA device."""
    import torch

    torch.cuda.reset_peak_memory_stats(device)
    worst = [[tokenizer.cls_token_id or 1] * cfg.max_length for _ in range(cfg.batch_size)]
    batches = TokenBatches(worst, np.zeros(cfg.batch_size, dtype=int), tokenizer.pad_token_id or 0, cfg.batch_size)
    try:
        _probe_step(loop, batches, np.arange(cfg.batch_size))
    except torch.cuda.OutOfMemoryError:
        _free_cuda_memory()
        return torch.cuda.get_device_properties(device).total_memory, (
            f"batch size {cfg.batch_size} at max length {cfg.max_length} does not fit in GPU memory: the run "
            f"will retry with smaller batches (slower); lower batch size or max length to avoid that")
    peak = int(torch.cuda.max_memory_allocated(device))
    total = torch.cuda.get_device_properties(device).total_memory
    if peak > GPU_MEMORY_HEADROOM * total:
        return peak, (f"needs about {peak / 2**30:.1f} GiB of {total / 2**30:.1f} GiB GPU memory: it may run out; "
                      f"lower batch size or max length")
    return peak, None


def replace_config(cfg: TrainConfig, **changes: Any) -> TrainConfig:
    from dataclasses import replace

    return replace(cfg, **changes)
