"""A GRU4Rec-style sequential recommender: a GRU reads each user's time-ordered history and predicts the next item.

Trained with full softmax cross-entropy over the catalogue at every position; the GRU's last state,
dotted with the (tied) item embeddings, scores what comes next.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from core.recs.config import SequentialConfig
from core.recs.models import EpochCallback, Stop, UserBatch
from core.runs.device import CpuThreadGovernor


def _build_net(n_items: int, hidden: int, dropout: float):
    import torch
    from torch import nn

    class GruNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.items = nn.Embedding(n_items + 1, hidden, padding_idx=0)  # index 0 = padding
            self.drop = nn.Dropout(dropout)
            self.gru = nn.GRU(hidden, hidden, batch_first=True)

        def forward(self, seqs: torch.Tensor) -> torch.Tensor:
            """seqs (B, T) item index + 1, left-padded with 0 -> logits (B, T, n_items)."""
            h, _ = self.gru(self.drop(self.items(seqs)))  # (B, T, H)
            return self.drop(h) @ self.items.weight[1:].T

    return GruNet()


def pad_left(sequences: list[np.ndarray], length: int) -> np.ndarray:
    """(B, length) array of item index + 1, most recent last, zeros in front."""
    out = np.zeros((len(sequences), length), dtype=np.int64)
    for r, seq in enumerate(sequences):
        tail = np.asarray(seq[-length:], dtype=np.int64) + 1
        if len(tail):
            out[r, length - len(tail):] = tail
    return out


class Sequential:
    kind = "sequential"
    config, uses_catalogue, fit_grows = SequentialConfig, False, "interactions"  # see core.recs.models
    refits = False

    @classmethod
    def train(cls, cfg: SequentialConfig, data: Any, *, device: str = "cpu",
              on_epoch: EpochCallback = lambda e, loss: None, should_stop: Stop = lambda: False,
              **_: Any) -> Sequential:
        return cls.fit(data.sequences, len(data.item_ids), factors=cfg.factors, epochs=cfg.epochs,
                       batch_size=cfg.batch_size, learning_rate=cfg.learning_rate, max_length=cfg.max_length,
                       dropout=cfg.dropout, seed=cfg.seed, device=device, on_epoch=on_epoch, should_stop=should_stop)

    def __init__(self, net: Any, n_items: int, params: dict[str, Any]) -> None:
        self.net, self.n_items, self.params = net, n_items, params

    @classmethod
    def fit(cls, sequences: list[np.ndarray], n_items: int, *, factors: int, epochs: int, batch_size: int,
            learning_rate: float, max_length: int, dropout: float, seed: int, device: str,
            on_epoch: EpochCallback, should_stop: Callable[[], bool]) -> Sequential:
        import torch


        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        net = _build_net(n_items, factors, dropout).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=learning_rate)
        windows = _training_windows(sequences, max_length + 1)
        # The windows go to the device once, and the loss is summed there: no host copy or sync per batch.
        data = torch.as_tensor(pad_left(windows, max_length + 1)).to(device)
        with CpuThreadGovernor(device) as cpu_threads:
            for epoch in range(1, epochs + 1):
                net.train()
                total, count = torch.zeros((), device=device), 0
                order = torch.as_tensor(rng.permutation(len(data))).to(device)
                for start in range(0, len(data), batch_size):
                    batch = data[order[start:start + batch_size]]
                    inputs, targets = batch[:, :-1], batch[:, 1:] - 1  # predict the next item; -1 = padding
                    logits = net(inputs)  # (B, T, n_items)
                    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, n_items), targets.reshape(-1),
                                                             ignore_index=-1)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total, count = total + loss.detach(), count + 1
                    cpu_threads.poll()
                on_epoch(epoch, float(total) / max(count, 1))
                if should_stop():
                    break
        net.eval().cpu()
        return cls(net, n_items, {"factors": factors, "max_length": max_length, "dropout": dropout})

    def score(self, batch: UserBatch) -> np.ndarray:
        import torch

        seqs = torch.as_tensor(pad_left(batch.sequences, int(self.params["max_length"])))
        with torch.no_grad():
            return self.net(seqs)[:, -1, :].numpy().astype(np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        return {f"net.{k}": v.detach().cpu().numpy() for k, v in self.net.state_dict().items()}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], params: dict[str, Any]) -> Sequential:
        import torch

        n_items = int(arrays["net.items.weight"].shape[0]) - 1
        net = _build_net(n_items, int(params["factors"]), float(params.get("dropout", 0.0)))
        net.load_state_dict({k[4:]: torch.as_tensor(v) for k, v in arrays.items() if k.startswith("net.")})
        return cls(net.eval(), n_items, params)


def _training_windows(sequences: list[np.ndarray], length: int) -> list[np.ndarray]:
    """Cut long histories into overlapping windows so every interaction is a training target once or more."""
    windows = []
    step = max(length // 2, 1)
    for seq in sequences:
        if len(seq) < 2:
            continue
        if len(seq) <= length:
            windows.append(seq)
            continue
        starts = list(range(0, len(seq) - length + 1, step))
        if starts[-1] != len(seq) - length:
            starts.append(len(seq) - length)
        windows.extend(seq[s:s + length] for s in starts)
    return windows
