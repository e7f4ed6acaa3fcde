"""Sentence embeddings from the bundled MiniLM (mean pooling, L2-normalised), batched with bounded memory.

Used for near-duplicate search and the zero-label baseline; never downloads (see core.text.pretrained).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from core.text.pretrained import DEFAULT_MODEL_ID, load_tokenizer, resolve_model_path
from core.text.serving import configure_torch_threads, inference_precision

EMBED_BATCH = 64
EMBED_MAX_LENGTH = 128


class Encoder:
    """A MiniLM-style encoder: texts -> (N, D) float32 unit vectors."""

    def __init__(self, model_id: str | None = DEFAULT_MODEL_ID, max_length: int = EMBED_MAX_LENGTH) -> None:
        import torch
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging


        configure_torch_threads()
        hf_logging.disable_progress_bar()  # a bar per load would fill worker logs and the CLI's stderr
        self.tokenizer = load_tokenizer(model_id)
        self.model: Any = AutoModel.from_pretrained(resolve_model_path(model_id)).eval()
        # bf16 where the CPU multiplies it natively, as serving does: 3.2x the texts/s of fp32 on the team's box
        # at a cosine of 0.9999 to the fp32 vectors (BENCHMARKS.md, "Data health").
        self.precision = inference_precision("cpu")
        if self.precision == "bf16":
            self.model = self.model.to(torch.bfloat16)
        self.max_length = max_length
        self._torch = torch

    def encode(self, texts: Sequence[str], *, batch_size: int = EMBED_BATCH,
               on_batch: Callable[[int, int], None] = lambda done, total: None) -> np.ndarray:
        texts = ["" if t is None else str(t) for t in texts]
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        # Batches of similar lengths pad less: sort by length, write back in the original order.
        order = np.argsort([len(t) for t in texts], kind="stable")
        torch = self._torch
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                batch = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="pt")
                hidden = self.model(**batch).last_hidden_state.float()  # B, T, D; pooled in float32
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # B, T, 1
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # B, D: mean over real tokens
                out[idx] = torch.nn.functional.normalize(pooled, dim=1).numpy()
                on_batch(min(start + batch_size, len(order)), len(order))
        return out
