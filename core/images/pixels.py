"""Images as model input: decoding to fixed-size uint8 tensors (in DataLoader workers), the training augmentations
(random resized crop, horizontal flip) on tensors, normalisation, and the batches the shared training loop reads.

No torchvision (it cannot load beside the CPU torch build here): the transforms are a few lines of torch each.
ImageBatches has the shape of core.text.batching.TokenBatches (index_batches, collate, with_batch_size ...), so
core.text.loop trains image models with the same optimizer, checkpoints, OOM halving and progress as text ones.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

# Images decoded once into memory up to this size (uint8 pixels at the training resolution); above it, each batch
# decodes its own (the loop's prefetch thread keeps that ahead of the model).
CACHE_LIMIT_BYTES = 2 * 2**30
CROP_SCALE = (0.35, 1.0)  # the share of the image a random crop keeps (milder than ImageNet's 0.08: small data)
CROP_RATIO = (3 / 4, 4 / 3)
DECODE_CHUNK = 64  # images a DataLoader worker decodes per task


def to_square_tensor(image: Image.Image, size: int) -> torch.Tensor:
    """(3, size, size) uint8: the shorter side resized to `size`, the centre cropped (as ImageNet evaluation)."""
    image = image.convert("RGB")
    w, h = image.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    image = image.resize((nw, nh), Image.Resampling.BILINEAR, reducing_gap=3.0)
    left, top = (nw - size) // 2, (nh - size) // 2
    image = image.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)


def normalise(pixels: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(B, 3, H, W) uint8 -> float32 (x / 255 - mean) / std."""
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (pixels.float() / 255.0 - m) / s


def random_resized_crop(pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """(B, 3, S, S) uint8 -> float (B, 3, S, S): each image a random crop (area share CROP_SCALE, aspect CROP_RATIO)
    resized back to S, flipped left-right half the time."""
    b, _, size, _ = pixels.shape
    out = torch.empty(pixels.shape, dtype=torch.float32)
    for i in range(b):
        area = size * size * _uniform(generator, *CROP_SCALE)
        ratio = math.exp(_uniform(generator, math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])))
        w = min(size, max(1, round(math.sqrt(area * ratio))))
        h = min(size, max(1, round(math.sqrt(area / ratio))))
        top = int(torch.randint(0, size - h + 1, (1,), generator=generator))
        left = int(torch.randint(0, size - w + 1, (1,), generator=generator))
        crop = pixels[i:i + 1, :, top:top + h, left:left + w].float()
        crop = F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False, antialias=h > size)
        if _uniform(generator, 0.0, 1.0) < 0.5:
            crop = crop.flip(-1)
        out[i] = crop[0]
    return out.clamp_(0, 255)


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


class _Decode(torch.utils.data.Dataset):
    """Chunks of images decoded to (n, 3, S, S) uint8, one chunk per DataLoader task."""

    def __init__(self, load: Callable[[int], Image.Image], n: int, size: int) -> None:
        self.load, self.n, self.size = load, n, size

    def __len__(self) -> int:
        return math.ceil(self.n / DECODE_CHUNK)

    def __getitem__(self, chunk: int) -> torch.Tensor:
        idx = range(chunk * DECODE_CHUNK, min(self.n, (chunk + 1) * DECODE_CHUNK))
        return torch.stack([to_square_tensor(self.load(i), self.size) for i in idx])


def decode_workers() -> int:
    """DataLoader workers for decoding: the cores beyond the one the main process uses, at most 8."""
    return max(0, min(8, (os.cpu_count() or 1) - 1))


def decode_all(load: Callable[[int], Image.Image], n: int, size: int, *, workers: int | None = None,
               on_progress: Callable[[float], None] = lambda fraction: None) -> torch.Tensor:
    """(n, 3, size, size) uint8 of images 0..n-1, decoded in DataLoader worker processes (0: in this one)."""
    if n == 0:
        return torch.zeros((0, 3, size, size), dtype=torch.uint8)
    if workers is None:  # starting worker processes costs more than decoding a few hundred small images
        workers = decode_workers() if n > 4 * DECODE_CHUNK else 0
    loader = torch.utils.data.DataLoader(_Decode(load, n, size), batch_size=None, num_workers=workers,
                                         persistent_workers=False)
    parts = []
    for part in loader:
        parts.append(part)
        on_progress(min(1.0, len(parts) * DECODE_CHUNK / n))
    return torch.cat(parts)


@dataclass
class ImageBatches:
    """Batches of images and labels for core.text.loop: `collate` returns {"pixel_values", "labels"}.

    Either `pixels` (all images decoded, (N, 3, S, S) uint8) or `load` (index -> PIL image, decoded per batch).
    Training batches (`augment`) get a random resized crop and flip, drawn from (seed, epoch, batch) so a resumed
    run sees the same ones.
    """

    labels: np.ndarray | None  # (N,) class indices; None when scoring unlabelled images
    batch_size: int
    size: int  # the square side fed to the model
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    pixels: torch.Tensor | None = None
    load: Callable[[int], Image.Image] | None = None
    count: int = 0  # N when decoding per batch
    augment: bool = False
    shuffle: bool = True
    seed: int = 42
    rank: int = 0
    world_size: int = 1
    epoch_seen: int = field(default=0, repr=False)

    @property
    def num_examples(self) -> int:
        return len(self.pixels) if self.pixels is not None else self.count

    def __len__(self) -> int:
        return math.ceil(self.num_examples / self.batch_size / self.world_size)

    def with_batch_size(self, batch_size: int) -> ImageBatches:
        return replace(self, batch_size=batch_size)

    def with_pad_multiple(self, pad_multiple: int) -> ImageBatches:
        return self  # images have one size: nothing to pad

    def index_batches(self, epoch: int = 0) -> list[np.ndarray]:
        """This rank's index batches of an epoch (every rank the same number, so DDP steps stay in step)."""
        n = self.num_examples
        order = np.random.default_rng(self.seed + epoch).permutation(n) if self.shuffle else np.arange(n)
        self.epoch_seen = epoch
        per_step = self.batch_size * self.world_size
        batches = [order[i:i + per_step] for i in range(0, n, per_step)]
        if self.world_size > 1:
            batches = [b[self.rank::self.world_size] if len(b) >= self.world_size else b[:1] for b in batches]
        return batches

    def collate(self, idx: np.ndarray) -> dict[str, Any]:
        pixels = (self.pixels[torch.as_tensor(idx)] if self.pixels is not None
                  else torch.stack([to_square_tensor(self.load(int(i)), self.size) for i in idx]))
        if self.augment:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch_seen * 10_007 + int(idx[0]))
            scaled = random_resized_crop(pixels, generator)
        else:
            scaled = pixels
        batch = {"pixel_values": normalise(scaled, self.mean, self.std)}
        if self.labels is not None:
            batch["labels"] = torch.as_tensor(self.labels[idx], dtype=torch.long)
        return batch


def image_batches(load: Callable[[int], Image.Image], n: int, labels: np.ndarray | None, *, size: int,
                  batch_size: int, mean: tuple[float, float, float], std: tuple[float, float, float],
                  augment: bool = False, shuffle: bool = False, seed: int = 42, rank: int = 0, world_size: int = 1,
                  on_progress: Callable[[float], None] = lambda fraction: None) -> ImageBatches:
    """Batches of n images: decoded up front (in DataLoader workers) when they fit in CACHE_LIMIT_BYTES, else
    per batch."""
    common = {"labels": labels, "batch_size": batch_size, "size": size, "mean": mean, "std": std,
              "augment": augment, "shuffle": shuffle, "seed": seed, "rank": rank, "world_size": world_size}
    if n * 3 * size * size <= CACHE_LIMIT_BYTES:
        return ImageBatches(pixels=decode_all(load, n, size, on_progress=on_progress), **common)
    return ImageBatches(load=load, count=n, **common)
