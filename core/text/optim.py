"""The optimiser of a classifier's training loop (core.text.loop): AdamW, decay on the weight matrices only."""

from __future__ import annotations

from typing import Any

from core.text.config import TrainConfig


def adamw(model: Any, cfg: TrainConfig, device: str) -> Any:
    """AdamW over the trainable parameters, weight decay on the matrices only."""
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
