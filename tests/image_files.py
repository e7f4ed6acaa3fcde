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
