"""The LSTM text classifier: embedding → BiLSTM → masked mean+max pooling → linear.

It reads the same subword ids as the default Transformer, can start from its word
embeddings, and saves as safetensors + JSON (no pickle), so one loop trains both.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.errors import ProtolabError
from core.text.pretrained import ModelNotAvailable, resolve_model_path

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
MODEL_TYPE = "protolab-lstm"
POOLINGS = ("mean+max", "mean", "max", "last")


class LSTMLoadError(ProtolabError):
    """A folder that does not hold a saved Protolab LSTM (or holds a damaged one)."""


@dataclass(frozen=True)
class LSTMConfig:
    embed_dim: int = 384  # MiniLM's word-embedding size, so its embeddings can initialise ours
    hidden_dim: int = 256
    num_layers: int = 1
    dropout: float = 0.2
    bidirectional: bool = True
    pooling: str = "mean+max"  # "mean+max" | "mean" | "max" | "last"

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ProtolabError(f"unknown LSTM pooling {self.pooling!r}: use one of {', '.join(POOLINGS)}")


@dataclass
class LSTMOutput:
    """Shaped like transformers' SequenceClassifierOutput (`.loss`, `.logits`) so one loop trains both."""

    loss: torch.Tensor | None
    logits: torch.Tensor

    def __getitem__(self, key: str) -> Any:  # outputs["logits"] works as with transformers
        return getattr(self, key)


class LSTMClassifier(nn.Module):
    def __init__(self, vocab_size: int, num_labels: int, pad_token_id: int, cfg: LSTMConfig) -> None:
        super().__init__()
        self.cfg, self.vocab_size, self.num_labels, self.pad_token_id = cfg, vocab_size, num_labels, pad_token_id
        self.labels: list[str] | None = None  # label names, filled by the trainer or load_lstm
        self.embedding = nn.Embedding(vocab_size, cfg.embed_dim, padding_idx=pad_token_id)
        # One single-layer LSTM per layer and direction (not nn.LSTM(bidirectional=True) on a packed
        # sequence): the backward one reads each text reversed within its own length, which keeps
        # padding out of every state exactly as packing would, at about half packing's CPU cost.
        dirs = 2 if cfg.bidirectional else 1
        sizes = [cfg.embed_dim] + [cfg.hidden_dim * dirs] * (cfg.num_layers - 1)
        self.forward_layers = nn.ModuleList(nn.LSTM(n, cfg.hidden_dim, batch_first=True) for n in sizes)
        self.backward_layers = nn.ModuleList(
            nn.LSTM(n, cfg.hidden_dim, batch_first=True) for n in (sizes if cfg.bidirectional else []))
        self.dropout = nn.Dropout(cfg.dropout)
        out_dim = cfg.hidden_dim * (2 if cfg.bidirectional else 1)
        pooled_dim = out_dim * (2 if cfg.pooling == "mean+max" else 1)
        self.classifier = nn.Linear(pooled_dim, num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, **_: Any) -> LSTMOutput:
        # Extra tokenizer outputs (token_type_ids) are accepted and ignored, as a batch is passed whole.
        # Padding is expected on the right, as BERT-style tokenizers (and dynamic padding) put it.
        if attention_mask is None:
            attention_mask = (input_ids != self.pad_token_id).long()
        B, T = input_ids.shape  # batch, time
        lengths = attention_mask.sum(dim=1).clamp(min=1)  # an all-padding row still gets one step
        mask = torch.arange(T, device=input_ids.device)[None, :] < lengths[:, None]  # B, T
        # Reverses each row within its length and leaves the padding where it is; it is its own inverse.
        steps = torch.arange(T, device=input_ids.device)[None, :].expand(B, T)
        reverse = torch.where(mask, lengths[:, None] - 1 - steps, steps)
        h = self.dropout(self.embedding(input_ids))  # B, T, E
        for i, fwd in enumerate(self.forward_layers):
            if i:
                h = self.dropout(h)
            outs = [fwd(h)[0]]  # B, T, H
            if self.cfg.bidirectional:
                back = self.backward_layers[i](_take(h, reverse))[0]
                outs.append(_take(back, reverse))
            h = torch.cat(outs, dim=-1)  # B, T, D
        pooled = self._pool(h, mask.unsqueeze(-1), lengths)
        logits = self.classifier(self.dropout(pooled))  # B, num_labels
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return LSTMOutput(loss=loss, logits=logits)

    def _pool(self, out: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        parts = []
        if self.cfg.pooling in ("mean+max", "mean"):
            parts.append((out * mask).sum(1) / mask.sum(1).clamp(min=1))
        if self.cfg.pooling in ("mean+max", "max"):
            parts.append(out.masked_fill(~mask, torch.finfo(out.dtype).min).max(1).values)
        if self.cfg.pooling == "last":
            # Forward direction: its state at the last real token; backward: its state at token 0.
            H = self.cfg.hidden_dim
            last = out[torch.arange(out.shape[0], device=out.device), lengths - 1]
            parts.append(torch.cat([last[:, :H], out[:, 0, H:]], dim=-1) if self.cfg.bidirectional else last)
        return torch.cat(parts, dim=-1)


def _take(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x[b, index[b, t]] for every b, t: reorders the time steps of each row."""
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def build_lstm(vocab_size: int, num_labels: int, pad_token_id: int, cfg: LSTMConfig,
               init_embeddings_from: str | None = None) -> LSTMClassifier:
    """A fresh LSTM classifier; with `init_embeddings_from` (a model folder or id) its embeddings start
    from that model's word embeddings (projected when the sizes differ)."""
    model = LSTMClassifier(vocab_size, num_labels, pad_token_id, cfg)
    if init_embeddings_from:
        weights = pretrained_word_embeddings(init_embeddings_from)
        with torch.no_grad():
            fitted = fit_embeddings(weights, cfg.embed_dim)
            rows = min(vocab_size, fitted.shape[0])
            model.embedding.weight[:rows] = fitted[:rows]
            model.embedding.weight[pad_token_id].zero_()
    return model


def pretrained_word_embeddings(source: str) -> torch.Tensor:
    """The (vocab, dim) word-embedding matrix of a Hugging Face model folder or id."""
    from transformers import AutoModel


    try:
        encoder = AutoModel.from_pretrained(resolve_model_path(source))
    except (OSError, ValueError) as exc:
        raise ModelNotAvailable(f"could not load embeddings from {source!r}: {str(exc).splitlines()[0][:200]}") \
            from exc
    return encoder.get_input_embeddings().weight.detach().float().clone()


def fit_embeddings(weights: torch.Tensor, dim: int) -> torch.Tensor:
    """Bring a (V, d) matrix to (V, dim): as is, PCA down, or zero-padded up (keeping the known directions)."""
    d = weights.shape[1]
    if d == dim:
        return weights
    if d > dim:
        centered = weights - weights.mean(0, keepdim=True)
        _, _, v = torch.pca_lowrank(centered, q=dim, center=False)
        return centered @ v[:, :dim]
    return torch.cat([weights, weights.new_zeros(weights.shape[0], dim - d)], dim=1)


def save_lstm(model: LSTMClassifier, folder: Path, tokenizer: Any, labels: list[str] | None = None) -> None:
    """Write model.safetensors + config.json (+ label names) + the tokenizer into `folder`."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE))
    config = {"protolab_model": MODEL_TYPE, "lstm": asdict(model.cfg), "vocab_size": model.vocab_size,
              "num_labels": model.num_labels, "pad_token_id": model.pad_token_id,
              "labels": list(labels if labels is not None else model.labels or []) or None}
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    tokenizer.save_pretrained(str(folder))


class LstmNet:
    """The LSTM kind's network as the text executor builds and saves it (core.text.executor.build_model)."""

    @staticmethod
    def build(cfg: Any, labels: list[str], tokenizer: Any, source: str) -> LSTMClassifier:
        """A BiLSTM over the tokenizer's vocabulary; `cfg` is the run's TrainConfig."""
        model = build_lstm(len(tokenizer), len(labels), tokenizer.pad_token_id or 0,
                           LSTMConfig(dropout=cfg.lstm_dropout),
                           init_embeddings_from=source if cfg.init_embeddings else None)
        model.labels = list(labels)
        return model

    @staticmethod
    def save(model: LSTMClassifier, tokenizer: Any, labels: list[str], folder: Path) -> None:
        model.labels = list(labels)
        save_lstm(model, folder, tokenizer, labels=list(labels))


def load_lstm(folder: Path, device: str = "cpu") -> tuple[LSTMClassifier, Any]:
    """Load what save_lstm wrote; the model comes back in eval mode with `.labels` set when saved."""
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    folder = Path(folder)
    try:
        config = json.loads((folder / CONFIG_FILE).read_text())
        known = {f.name for f in fields(LSTMConfig)}
        cfg = LSTMConfig(**{k: v for k, v in config["lstm"].items() if k in known})
        model = LSTMClassifier(int(config["vocab_size"]), int(config["num_labels"]),
                               int(config["pad_token_id"]), cfg)
        model.load_state_dict(load_file(str(folder / WEIGHTS_FILE), device="cpu"))
    except (OSError, KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise LSTMLoadError(f"{folder} does not hold a loadable LSTM model: {exc}") from exc
    model.labels = config.get("labels")
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    return model.to(device).eval(), tokenizer
