"""On a GPU, the batch size a run trains with when the user left it to us: the largest candidate whose worst-case
step (every text at max length) fits the card with headroom, measured by a short probe, and the learning rate
scaled with it.

A 22M-parameter model at batch 32 leaves an H200 mostly idle (issue 13: HF Trainer 1,618 samples/s at batch 32,
3,909 at 256), so a bigger batch is the largest single gain there; on the CPU the configured batch is kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from core.text.loop import count_parameters, cpu_state_dict, free_cuda_memory, training_precision

MAX_AUTO_BATCH = 256
MIN_STEPS_PER_EPOCH = 8  # a small dataset keeps enough optimizer steps for warm-up and early stopping
PROBE_HEADROOM = 0.8  # share of the card a probed step may use: real batches vary, the allocator fragments


@dataclass(frozen=True)
class BatchChoice:
    batch_size: int
    learning_rate: float
    peak_memory_bytes: int | None  # of the chosen size's probe step
    total_memory_bytes: int | None

    def message(self, configured_batch: int, configured_lr: float, max_length: int) -> str:
        memory = ""
        if self.peak_memory_bytes and self.total_memory_bytes:
            memory = (f" (a step at max length {max_length} peaks at {self.peak_memory_bytes / 2**30:.1f} of "
                      f"{self.total_memory_bytes / 2**30:.0f} GiB)")
        lr = (f"; learning rate scaled from {configured_lr:.1e} to {self.learning_rate:.1e}"
              if self.learning_rate != configured_lr else "")
        return (f"batch size {self.batch_size} chosen from a GPU memory probe{memory}, instead of "
                f"{configured_batch}{lr}")


def batch_candidates(base: int, n_train: int, cap: int = MAX_AUTO_BATCH) -> list[int]:
    """base, 2·base, 4·base … up to `cap`, and no bigger than leaves MIN_STEPS_PER_EPOCH steps per epoch."""
    limit = max(base, min(cap, n_train // MIN_STEPS_PER_EPOCH))
    sizes, size = [], base
    while size <= limit:
        sizes.append(size)
        size *= 2
    return sizes or [base]


def pick_batch_size(peaks: dict[int, int | None], total_bytes: int, headroom: float = PROBE_HEADROOM) -> int:
    """The largest probed size whose peak fit under headroom × total, probing in order and stopping at the first
    that did not (None = out of memory); the smallest candidate when none fit (the OOM fallback takes over)."""
    sizes = sorted(peaks)
    chosen = sizes[0]
    for size in sizes:
        peak = peaks[size]
        if peak is None or peak > headroom * total_bytes:
            break
        chosen = size
    return chosen


def scaled_learning_rate(learning_rate: float, base: int, chosen: int) -> float:
    """Square-root scaling, the usual rule for Adam-type optimizers: the noise of a batch shrinks as 1/sqrt(B)."""
    return learning_rate * math.sqrt(chosen / base)


def choose_gpu_batch(model: Any, cfg: Any, n_train: int, device: str, token_id: int) -> BatchChoice:
    """Probe training steps at each candidate size on `device` (CUDA), then put the weights back as they were."""
    import torch


    candidates = batch_candidates(cfg.batch_size, n_train)
    total = int(torch.cuda.get_device_properties(device).total_memory)
    saved = cpu_state_dict(model)
    model.to(device).train()
    dtype, _ = training_precision(device, count_parameters(model))
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate)
    peaks: dict[int, int | None] = {}
    for size in candidates:
        peaks[size] = _probe(model, optimizer, size, cfg.max_length, device, dtype, token_id)
        if peaks[size] is None:
            free_cuda_memory()  # outside the except block, so the failed step's tensors are gone
        if peaks[size] is None or peaks[size] > PROBE_HEADROOM * total:
            break
    del optimizer
    model.load_state_dict(saved)
    free_cuda_memory()
    chosen = pick_batch_size(peaks, total)
    return BatchChoice(batch_size=chosen, learning_rate=scaled_learning_rate(cfg.learning_rate, cfg.batch_size, chosen),
                       peak_memory_bytes=peaks.get(chosen), total_memory_bytes=total)


def _probe(model: Any, optimizer: Any, size: int, max_length: int, device: str, dtype: Any,
           token_id: int) -> int | None:
    """Peak bytes of one full training step (forward, backward, AdamW) on a worst-case batch; None on OOM."""
    import contextlib

    import torch
    import torch.nn.functional as F

    torch.cuda.reset_peak_memory_stats(device)
    ids = torch.full((size, max_length), token_id, dtype=torch.long, device=device)
    autocast = torch.autocast("cuda", dtype=dtype) if dtype else contextlib.nullcontext()
    try:
        with autocast:
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        F.cross_entropy(logits.float(), torch.zeros(size, dtype=torch.long, device=device)).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device))
    except torch.OutOfMemoryError:
        optimizer.zero_grad(set_to_none=True)
        return None
