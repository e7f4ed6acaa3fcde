"""Tiny generated images and ZIPs for the image tests (a few pixels each; nothing downloaded)."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image


def picture(seed: int, size: tuple[int, int] = (12, 10), fmt: str = "PNG", mode: str = "RGB") -> bytes:
    """A distinct little image (random pixels from `seed`) encoded as `fmt`."""
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(out, fmt)
    return out.getvalue()


def folders(classes: dict[str, int], split: str | None = None, top: str = "", start: int = 0) -> dict[str, bytes]:
    """An ImageFolder layout: {"[top/][split/]class/i.png": image} with `n` images a class."""
    prefix = "/".join(p for p in (top, split) if p)
    entries, seed = {}, start
    for label, n in classes.items():
        for i in range(n):
            entries[f"{prefix + '/' if prefix else ''}{label}/{i}.png"] = picture(seed)
            seed += 1
    return entries


def make_zip(entries: dict[str, bytes], path: Path | None = None, links: dict[str, str] | None = None) -> bytes:
    """A ZIP of `entries` (names written as given, even '../x'); `links` adds symbolic links name -> target."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    data = out.getvalue()
    if path is not None:
        path.write_bytes(data)
    return data


def shape(kind: str, seed: int, size: int = 64) -> Image.Image:
    """A red disc ("disc") or a blue square ("square") of random size and place on a dark noisy background."""
    from PIL import ImageDraw

    rng = np.random.default_rng(seed)
    background = rng.integers(0, 60, (size, size, 3)) + rng.integers(0, 60, 3)
    image = Image.fromarray(background.astype(np.uint8))
    side = int(rng.integers(size // 3, size // 2))
    x, y = (int(v) for v in rng.integers(0, size - side, 2))
    bright = int(200 + rng.integers(0, 55))
    if kind == "disc":
        ImageDraw.Draw(image).ellipse([x, y, x + side, y + side], fill=(bright, 30, 30))
    else:
        ImageDraw.Draw(image).rectangle([x, y, x + side, y + side], fill=(30, 30, bright))
    return image


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def planted_shapes(per_split: dict[str, int] | None = None) -> dict[str, bytes]:
    """train/val/test folders of discs and squares (10/3/3 a class by default) with two planted faults: a
    brightened copy of train/disc/0.png in test/disc (a near-duplicate leaking across splits) and a disc filed as
    train/square/wrong.png (a label error)."""
    entries, seed = {}, 0
    for split, n in (per_split or {"train": 10, "val": 3, "test": 3}).items():
        for kind in ("disc", "square"):
            for i in range(n):
                entries[f"{split}/{kind}/{i}.png"] = png(shape(kind, seed))
                seed += 1
    entries["test/disc/copy.png"] = png(shape("disc", 0).point(lambda v: min(255, v + 10)))
    entries["train/square/wrong.png"] = png(shape("disc", 1000))
    return entries
