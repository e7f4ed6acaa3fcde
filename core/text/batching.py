"""Length-bucketed batches with dynamic padding: tokenise once, pad each batch only to its own longest text.

Padding is most of the work on short texts, so training batches are cut from shuffled mega-batches sorted by length.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

MEGA_BATCH_FACTOR = 50  # a mega-batch holds this many batches; sorting happens inside it only


def encode_texts(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids per text (special tokens added, truncated, not padded)."""
    texts = [str(t) for t in texts]
    if not texts:
        return []
    return list(tokenizer(texts, truncation=True, max_length=max_length, padding=False)["input_ids"])


def pad_rows(rows: Sequence[Sequence[int]], pad_id: int, pad_multiple: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Ragged token ids as (input_ids, attention_mask), both (B, T) int64, T the longest row rounded up to
    `pad_multiple`. Whole-array work: one flat copy of the ids, scattered under the mask in row-major order (which
    is the rows' own order); for rows scored once (serving). TokenBatches keeps its dataset's ids flat already."""
    lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    longest = int(lengths.max()) if len(rows) else 0
    width = -(-longest // pad_multiple) * pad_multiple
    mask = np.arange(width)[None, :] < lengths[:, None]  # B, T
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    input_ids[mask] = np.fromiter((t for r in rows for t in r), dtype=np.int64, count=int(lengths.sum()))
    return input_ids, mask.astype(np.int64)


def bucketed_order(lengths: np.ndarray, batch_size: int, seed: int) -> list[np.ndarray]:
    """Shuffle, sort by length inside each mega-batch, cut into batches, shuffle the batch order."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    mega = batch_size * MEGA_BATCH_FACTOR
    batches: list[np.ndarray] = []
    for start in range(0, len(order), mega):
        chunk = order[start:start + mega]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def sorted_order(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Evaluation order: fully sorted by length (least padding); callers put predictions back by index."""
    order = np.argsort(lengths, kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


@dataclass(frozen=True, eq=False)
class TokenBatches:
    """Tokenised examples plus how to cut them into padded batches for one process of `world_size`.

    Under DDP every rank cuts the same global batches of batch_size × world_size and keeps its own
    slice, so all ranks take the same number of steps and together see the single-process batches.
    """

    ids: list[list[int]]
    labels: np.ndarray | None
    pad_id: int
    batch_size: int
    shuffle: bool = True
    seed: int = 0
    rank: int = 0
    world_size: int = 1
    pad_multiple: int = 1  # widths are rounded up to this (8 on CUDA: tensor cores; 1 on the CPU: no extra work)
    lengths: np.ndarray = field(init=False, repr=False)
    _flat: np.ndarray = field(init=False, repr=False)  # every text's ids end to end, so collate is whole-array work
    _starts: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        lengths = np.fromiter((len(x) for x in self.ids), dtype=np.int64, count=len(self.ids))
        flat = np.fromiter((t for seq in self.ids for t in seq), dtype=np.int64, count=int(lengths.sum()))
        object.__setattr__(self, "lengths", lengths)
        object.__setattr__(self, "_flat", flat)
        object.__setattr__(self, "_starts", np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64))

    def __len__(self) -> int:
        """Batches per epoch for this rank."""
        return -(-len(self.ids) // (self.batch_size * self.world_size))

    @property
    def num_examples(self) -> int:
        return len(self.ids)

    def with_batch_size(self, batch_size: int) -> TokenBatches:
        return replace(self, batch_size=batch_size)

    def with_pad_multiple(self, pad_multiple: int) -> TokenBatches:
        return self if pad_multiple == self.pad_multiple else replace(self, pad_multiple=pad_multiple)

    def width(self, idx: np.ndarray) -> int:
        """Padded width of a batch: its longest text, rounded up to `pad_multiple`."""
        longest = int(self.lengths[idx].max()) if len(idx) else 0
        return -(-longest // self.pad_multiple) * self.pad_multiple

    def index_batches(self, epoch: int = 0) -> list[np.ndarray]:
        """This rank's example indices per batch for one epoch."""
        global_size = self.batch_size * self.world_size
        lengths = self.lengths
        if self.shuffle:
            batches = bucketed_order(lengths, global_size, self.seed + epoch)
        else:
            batches = sorted_order(lengths, global_size)
        if self.world_size == 1:
            return batches
        return [_rank_slice(b, self.rank, self.world_size) for b in batches]

    def epoch(self, epoch: int = 0) -> Iterator[tuple[np.ndarray, dict[str, Any]]]:
        """(indices, tensors) per batch; tensors are padded to the batch's longest sequence."""
        for idx in self.index_batches(epoch):
            yield idx, self.collate(idx)

    def collate(self, idx: np.ndarray) -> dict[str, Any]:
        import torch

        idx = np.asarray(idx)
        lengths = self.lengths[idx][:, None]  # B, 1
        cols = np.arange(self.width(idx))[None, :]  # 1, T
        mask = cols < lengths  # B, T
        # Gather every row from the flat ids at once; positions past a row's end read a valid index, then masked.
        pos = self._starts[idx][:, None] + np.minimum(cols, np.maximum(lengths - 1, 0))
        gathered = self._flat[np.minimum(pos, max(len(self._flat) - 1, 0))] if len(self._flat) else pos * 0
        input_ids = np.where(mask, gathered, self.pad_id)
        out: dict[str, Any] = {"input_ids": torch.from_numpy(input_ids.astype(np.int64, copy=False)),
                               "attention_mask": torch.from_numpy(mask.astype(np.int64))}
        if self.labels is not None:
            out["labels"] = torch.as_tensor(self.labels[idx], dtype=torch.long)
        return out

    def padded_tokens(self, epoch: int = 0) -> int:
        """Tokens after padding in one epoch of this rank (for benchmarks)."""
        return int(sum(len(b) * self.width(b) for b in self.index_batches(epoch)))


def _rank_slice(batch: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    # A tail batch smaller than the world repeats its first example so no rank gets an empty slice.
    parts = np.array_split(batch, world_size)
    part = parts[rank]
    return part if len(part) else batch[:1]
