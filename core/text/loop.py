"""The explicit training loop shared by the Transformer and the LSTM: AdamW, warm-up, accumulation,
early stopping, checkpoints and the out-of-memory fallback; it reports through callbacks only.
"""

from __future__ import annotations

import contextlib
import math
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core import settings
from core.runs import distributed
from core.runs.device import CpuThreadGovernor, governor_for_run, resolve_device
from core.text import feed
from core.text.batching import TokenBatches
from core.text.budget import TimeBudget
from core.text.config import TrainConfig, TrainingError
from core.text.feed import LossMeter, Prefetcher, gpu_memory_bytes, host_batch, tf32_matmuls, to_device, transfer_plan
from core.text.objective import SINGLE_LABEL
from core.text.optim import adamw
from core.text.serving import native_bf16_cpu

# The training loss is read from the device (one host sync) on step 1, every LOSS_EVERY_STEPS optimizer steps and
# on the last step; the value read is the mean since the previous read. Every other StepLog has loss None.
LOSS_EVERY_STEPS = 5

# Precision on CUDA, by model size. Measured on an H200 (issue 13): for MiniLM-L6 (22M parameters) bf16 autocast
# is *slower* than fp32 — HF Trainer 992 vs 1,618 samples/s at batch 32, 2,579 vs 3,909 at 256 — because a small
# model is bound by launches and autocast adds cast kernels, while fp32 matmuls run on tensor cores via TF32.
# Larger models become arithmetic-bound, where bf16 halves the work; 100M (BERT-base size) is the assumed
# crossover, still to be measured on a GPU. PROTOLAB_TRAIN_PRECISION=fp32|bf16 forces one on any device.
CUDA_BF16_MIN_PARAMS = 100_000_000

# bf16 autocast on the CPU: None = where the CPU multiplies bf16 in hardware (AVX512-BF16/AMX). Measured on
# the team's 2-core box (quiet): MiniLM 125 vs 65 samples/s, same held-out macro-F1 (BENCHMARKS.md); an
# earlier probe under heavy load looked slower. PROTOLAB_TRAIN_PRECISION=fp32|bf16 forces one.
CPU_BF16: bool | None = None


_WEIGHTS, _BEST_WEIGHTS, _TRAINER_STATE = "model.safetensors", "best.safetensors", "trainer_state.pt"


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
    # Batches of the current epoch already trained: set by a checkpoint taken mid-epoch when a run is stopped
    # (cancelled, or handed back by a worker daemon), so a resume skips them instead of training them twice.
    epoch_batches: int = 0


@dataclass(frozen=True)
class StepLog:
    step: int
    total_steps: int
    epoch: int  # 0-based
    epoch_float: float
    loss: float | None  # mean training loss since the previous read; None between reads (no host sync)
    learning_rate: float
    samples_per_s: float
    eta_s: float
    gpu_memory_bytes: int | None = None  # peak allocated on CUDA, at loss reads; None elsewhere


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
    batch_size: int  # the micro-batch size and accumulation the last (successful) attempt trained with
    grad_accum_steps: int
    # (batch size, accumulation, first epoch) of every attempt, in order: after an out-of-memory retry the epochs
    # before it were trained at the earlier size only when they completed before the retry (none are redone).
    attempts: tuple[tuple[int, int, int], ...] = ()
    out_of_time: bool = False  # stopped at the time budget (the last epoch partly trained, then validated)


def train_classifier(
    model: Any, train_batches: TokenBatches, val_batches: TokenBatches, cfg: TrainConfig, *,
    device: str | None = None,
    on_step: Callable[[StepLog], None] = lambda log: None,
    on_epoch: Callable[[EpochLog], None] = lambda log: None,
    on_event: Callable[[dict[str, Any]], None] = lambda event: None,
    should_stop: Callable[[], bool] = lambda: False,
    checkpoint_dir: Path | None = None,
    resume_dir: Path | None = None,
    objective: Any = SINGLE_LABEL,
    budget: TimeBudget | None = None,
) -> TrainResult:
    """Fine-tune `model` (forward(**batch without labels) → .logits) with AdamW, warm-up/decay, clipping,
    accumulation, early stopping on validation macro-F1; the best epoch's weights are loaded at the end.

    `checkpoint_dir` gets a resumable checkpoint after every epoch; `resume_dir` continues from one. With a `budget`
    the epoch under way ends once the time left only pays for evaluation: it is validated, then training stops.
    CUDA out-of-memory halves the batch and doubles accumulation (same effective batch) until batch 1.
    """

    device = device or resolve_train_device(cfg.device, resolve_device)
    loop = TrainingLoop(model, train_batches, val_batches, cfg, device, on_step, on_epoch, should_stop, checkpoint_dir,
                        objective)
    loop.cpu_threads = governor_for_run(device, on_event)
    loop.budget = budget
    if resume_dir is not None and (resume_dir / _TRAINER_STATE).exists():
        loop.load_checkpoint(resume_dir)
        on_event({"event": "resumed", "epoch": loop.state.epoch, "step": loop.state.step})
    with tf32_matmuls(device), loop.cpu_threads:
        return with_oom_fallback(loop.fit, train_batches.batch_size, cfg.grad_accum_steps, on_event=on_event,
                                 max_length=getattr(cfg, "max_length", None), on_retry=loop.rewind)


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
            if batch_size <= 1:
                shrink = f"(max length {max_length}): lower max length" if max_length else ": lower the image size"
                raise TrainingError(f"out of GPU memory even with batch size 1 {shrink}, choose a smaller model, "
                                    f"or train on the CPU ({str(exc).splitlines()[0][:160]})") from exc
        # Freed here, outside the except block: inside it the traceback still holds the failed step's frames
        # (activations, gradients of the big batch), so empty_cache could not return their memory.
        free_cuda_memory()
        batch_size, grad_accum_steps = max(1, batch_size // 2), grad_accum_steps * 2
        on_event({"event": "oom_retry", "batch_size": batch_size, "grad_accum_steps": grad_accum_steps,
                  "message": f"CUDA out of memory: retrying with batch size {batch_size} and "
                             f"gradient accumulation {grad_accum_steps}"})
        on_retry()


def free_cuda_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class TrainingLoop:
    """The state of one training: model, optimizer, scheduler, counters, best weights."""

    def __init__(self, model: Any, train: TokenBatches, val: TokenBatches, cfg: TrainConfig, device: str,
                 on_step: Callable, on_epoch: Callable, should_stop: Callable, checkpoint_dir: Path | None,
                 objective: Any = SINGLE_LABEL):
        import torch

        self.cfg, self.device, self.train, self.val, self.objective = cfg, device, train, val, objective
        self.on_step, self.on_epoch, self.should_stop = on_step, on_epoch, should_stop
        self.checkpoint_dir = checkpoint_dir
        self.model = model.to(device)
        self.core = getattr(model, "module", model)  # the model without its DDP wrapper
        self.plan = transfer_plan(device)
        self.dtype, self.scaler = training_precision(device, count_parameters(self.core))
        self.optimizer = adamw(self.core, cfg, device)
        self.steps_per_epoch = max(1, math.ceil(len(train) / cfg.grad_accum_steps))
        self.total_steps = self.steps_per_epoch * cfg.epochs
        from transformers import get_linear_schedule_with_warmup

        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, int(cfg.warmup_ratio * self.total_steps),
                                                         self.total_steps)
        self.loss_weight = (objective.weights(train, num_labels(self.core)).to(device) if cfg.class_weights
                            else None)
        self.state, self.history = TrainState(), []
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.snapshot: dict[str, Any] | None = None
        self._started = time.perf_counter()
        self._session_steps, self._session_seconds = 0, 0.0
        self.losses = LossMeter()
        self.loss_every = LOSS_EVERY_STEPS
        self.attempts: list[tuple[int, int, int]] = []
        self.cpu_threads = CpuThreadGovernor("off")  # train_classifier sets the run's own (CPU only)
        self.budget: TimeBudget | None = None  # train_classifier sets it
        self.out_of_time = False

    # one fit = epochs from state.epoch on, at one batch size
    def fit(self, batch_size: int, grad_accum_steps: int) -> TrainResult:
        self.attempts.append((batch_size, grad_accum_steps, self.state.epoch))
        batches = self.train.with_batch_size(batch_size).with_pad_multiple(self.plan.pad_multiple)
        # Validation shrinks with the training batch: an out-of-memory error in evaluation is retried too.
        val = self.val.with_batch_size(max(1, self.val.batch_size * batch_size // max(1, self.train.batch_size)))
        stopped = False
        while self.state.epoch < self.cfg.epochs and not stopped:
            if self.state.epoch > 0 and self._past_budget():  # no time for another epoch's first step
                self.out_of_time = True
                break
            self.snapshot = self._capture()
            stopped = not self._train_epoch(batches, grad_accum_steps)
            if stopped:
                break
            self._end_epoch(val)
            if self.out_of_time or (self.cfg.patience and self.state.bad_epochs >= self.cfg.patience):
                break
        if self.best_weights is not None:
            self.core.load_state_dict(self.best_weights)
        seconds = max(self.state.train_seconds, 1e-9)
        return TrainResult(state=self.state, history=list(self.history), stopped=stopped,
                           samples_per_s=self.state.samples / seconds * self.train.world_size,
                           train_time_s=time.perf_counter() - self._started, batch_size=batch_size,
                           grad_accum_steps=grad_accum_steps, attempts=tuple(self.attempts),
                           out_of_time=self.out_of_time)

    def _train_epoch(self, batches: TokenBatches, accum: int) -> bool:
        """One pass over the training batches; False when a stop was requested."""
        self.model.train()
        index_batches = batches.index_batches(self.state.epoch)
        n = len(index_batches)
        tick = time.perf_counter()
        done = self.state.epoch_batches  # > 0 only when resuming from a mid-epoch checkpoint
        # The next batches are collated (and pinned, on CUDA) in a background thread while this one trains.
        with Prefetcher(lambda idx: (len(idx), host_batch(batches.collate, idx, self.plan)),
                        index_batches[done:]) as feed:
            for i, (size, host) in enumerate(feed, start=done):
                group_start = (i // accum) * accum
                group_size = min(accum, n - group_start)
                sync = i == group_start + group_size - 1
                batch = to_device(host, self.device, self.plan)
                no_sync = (self.model.no_sync() if not sync and hasattr(self.model, "no_sync")
                           else contextlib.nullcontext())
                with no_sync:
                    loss = self._loss(batch)
                    scaled = loss / group_size
                    (self.scaler.scale(scaled) if self.scaler else scaled).backward()
                self.losses.add(loss)  # stays on the device: no sync here
                self.state.samples += size
                if sync:
                    self._optimizer_step()
                    now = time.perf_counter()
                    self.state.train_seconds += now - tick
                    self._session_seconds += now - tick
                    tick = now
                    self._session_steps += 1
                    self.state.step += 1
                    self.on_step(self._step_log(i, n, self._read_loss()))
                    self.cpu_threads.poll()
                if self.should_stop():
                    # Batches of an unfinished accumulation group are dropped: the resume trains them again.
                    self._checkpoint_mid_epoch(i + 1 if sync else group_start)
                    return False
                if sync and i + 1 < n and self._past_budget():
                    self.out_of_time = True  # this partial epoch is validated as the last one
                    break
        self.state.epoch_batches = 0
        return True

    def _past_budget(self) -> bool:
        return self.budget is not None and self.budget.spent(
            self.state.train_seconds, self.state.samples, self._session_seconds / max(1, self._session_steps),
            self.val.num_examples)

    def _checkpoint_mid_epoch(self, batches_done: int) -> None:
        if self.checkpoint_dir is not None and self.state.step > 0:
            self.state.epoch_batches = batches_done
            self.save_checkpoint(self.checkpoint_dir)

    def _read_loss(self) -> float | None:
        """The mean loss since the last read at logging steps (one host sync), None at the others."""
        step = self.state.step
        if not (step == 1 or step % self.loss_every == 0 or step == self.total_steps):
            return None
        # Under DDP the logged loss is the mean over ranks, i.e. over the whole global batch; every rank reaches
        # the same steps, so the collective stays in step.
        return distributed.all_reduce_mean(self.losses.read(), comm_device(self.device))

    def _loss(self, batch: dict[str, Any]) -> Any:
        import torch

        autocast = (torch.autocast(device_type=self.device.split(":")[0], dtype=self.dtype) if self.dtype
                    else contextlib.nullcontext())
        with autocast:
            logits = self.model(**feed.model_inputs(batch)).logits
        return self.objective.loss(logits.float(), batch["labels"], self.loss_weight)

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

    def _step_log(self, i: int, n: int, loss: float | None) -> StepLog:
        per_step = self._session_seconds / max(1, self._session_steps)
        remaining = self.total_steps - self.state.step
        if self.budget is not None:  # the budget ends training before the planned steps may
            remaining = min(remaining, int(max(0.0, self.budget.deadline - time.monotonic()) / max(per_step, 1e-9)))
        samples_per_s = self.state.samples / max(self.state.train_seconds, 1e-9) * self.train.world_size
        return StepLog(step=self.state.step, total_steps=self.total_steps, epoch=self.state.epoch,
                       epoch_float=self.state.epoch + (i + 1) / n, loss=loss,
                       learning_rate=float(self.scheduler.get_last_lr()[0]), samples_per_s=samples_per_s,
                       eta_s=remaining * per_step,
                       gpu_memory_bytes=gpu_memory_bytes(self.device) if loss is not None else None)

    def _end_epoch(self, val: TokenBatches) -> None:
        proba = predict_proba(self.core, val, self.device, self.dtype, self.objective)
        y = val.labels if val.labels is not None else np.zeros(len(proba), dtype=int)
        scores = self.objective.scores(y, proba)
        self.state.epoch += 1
        improved = scores["macro_f1"] > self.state.best_metric + 1e-9
        if improved:
            self.state.best_metric, self.state.best_epoch, self.state.bad_epochs = \
                scores["macro_f1"], self.state.epoch, 0
            self.best_weights = cpu_state_dict(self.core)
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
        save_file(cpu_state_dict(self.core), str(tmp / _WEIGHTS))
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

        return {"model": cpu_state_dict(self.core), "optimizer": copy.deepcopy(self.optimizer.state_dict()),
                "scheduler": copy.deepcopy(self.scheduler.state_dict()), "state": asdict(self.state)}

    def rewind(self) -> None:
        if self.snapshot is None:
            return
        self.optimizer.zero_grad(set_to_none=True)
        self.losses.reset()  # the failed attempt's partial losses are not what the rewound epoch will train
        self.core.load_state_dict(self.snapshot["model"])
        self.optimizer.load_state_dict(self.snapshot["optimizer"])
        self.scheduler.load_state_dict(self.snapshot["scheduler"])
        self.state = TrainState(**self.snapshot["state"])


def num_labels(model: Any) -> int:
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "num_labels", None):
        return int(config.num_labels)
    return int(model.num_labels)


def predict_proba(model: Any, batches: TokenBatches, device: str, dtype: Any = None,
                  objective: Any = SINGLE_LABEL) -> np.ndarray:
    """Class probabilities (N, C) in the examples' original order (per tag, for a sigmoid objective)."""
    import torch

    model.eval()
    plan = transfer_plan(device)
    batches = batches.with_pad_multiple(plan.pad_multiple)
    autocast = (torch.autocast(device_type=device.split(":")[0], dtype=dtype) if dtype
                else contextlib.nullcontext())
    order, parts = [], []
    with torch.inference_mode(), autocast:
        for idx in batches.index_batches(0):
            batch = to_device(host_batch(batches.collate, idx, plan), device, plan)
            logits = model(**feed.model_inputs(batch)).logits
            parts.append(objective.proba(logits.float()))  # kept on the device: one copy back at the end
            order.append(idx)
    model.train()
    if not parts:
        return np.zeros((0, num_labels(model)))
    out = np.zeros((batches.num_examples, parts[0].shape[1]), dtype=np.float64)
    out[np.concatenate(order)] = torch.cat(parts).cpu().numpy()
    return out


def cpu_state_dict(model: Any) -> dict[str, Any]:
    # A copy per tensor: no shared storage (safetensors refuses it) and safe from later updates.
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


def training_precision(device: str, n_params: int | None = None) -> tuple[Any, Any]:
    """(autocast dtype or None, GradScaler or None) for a device and a model of `n_params` parameters.

    CUDA: fp32 (with TF32 matmuls) below CUDA_BF16_MIN_PARAMS, reduced precision above; unknown size counts as
    large. CPU: bf16 only where the CPU multiplies bf16 natively. PROTOLAB_TRAIN_PRECISION=fp32|bf16 forces one.
    """
    import torch

    forced = _forced_precision()
    if device.startswith("cuda"):
        if forced == "fp32" or (forced is None and n_params is not None and n_params < CUDA_BF16_MIN_PARAMS):
            return None, None
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, None
        return torch.float16, torch.amp.GradScaler("cuda")
    if device == "cpu" and _cpu_bf16():
        return torch.bfloat16, None
    return None, None


def count_parameters(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def _forced_precision() -> str | None:
    forced = settings.TRAIN_PRECISION.get()
    return None if forced == "auto" else forced


def _cpu_bf16() -> bool:
    forced = _forced_precision()
    if forced is not None:
        return forced == "bf16"
    if CPU_BF16 is not None:
        return CPU_BF16
    return native_bf16_cpu()  # emulated bf16 is slower than fp32, so only where native


def resolve_train_device(requested: str, resolve: Callable[[str], str]) -> str:
    try:
        return resolve(requested)
    except ValueError as exc:
        raise TrainingError(str(exc)) from exc


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def comm_device(device: str) -> str:
    # gloo collectives take CPU tensors, nccl ones CUDA tensors.
    return device if device.startswith("cuda") else "cpu"
