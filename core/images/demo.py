"""What the Image classifier demo shows, as plain data: the top-k classes, the occlusion heatmap laid over the
picture, and a ZIP of images scored into a CSV (the archive checked as an upload is: no '../', no bombs)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from core.images.archive import read_archive
from core.images.store import ImageError, open_image

TOP_K = 5
HEAT_COLOUR = np.array([255, 40, 0], dtype=np.float32)  # where covering the picture hurt the prediction most
HEAT_OPACITY = 0.55
MAX_SCORED = 5000  # images one ZIP may hold in the demo (the CLI and API are for more)


def top_k(probabilities: dict[str, float], k: int = TOP_K) -> dict[str, float]:
    """The k most probable classes, most probable first."""
    return dict(sorted(probabilities.items(), key=lambda kv: -kv[1])[:k])


def overlay_heatmap(image: Image.Image, heat: np.ndarray) -> Image.Image:
    """The picture with `heat` ((g, g), probability drops) drawn over it in red: clear where a cell does not matter,
    strongest where covering it cost the prediction most. Negative drops (covering helped) are not coloured."""
    image = image.convert("RGB")
    peak = float(heat.max())
    weights = np.clip(heat / peak, 0.0, 1.0) if peak > 0 else np.zeros_like(heat)
    mask = Image.fromarray((weights * 255).astype(np.uint8)).resize(image.size, Image.Resampling.BILINEAR)
    alpha = np.asarray(mask, dtype=np.float32)[..., None] / 255.0 * HEAT_OPACITY
    pixels = np.asarray(image, dtype=np.float32)
    return Image.fromarray((pixels * (1 - alpha) + HEAT_COLOUR * alpha).round().astype(np.uint8))


def score_zip(classifier: Any, data: bytes, filename: str, batch_size: int = 32) -> pd.DataFrame:
    """One row per image of a ZIP: its path, label, confidence and each class's probability; a file that is not
    an image gets its error instead of a label (the others are still scored)."""
    archive = read_archive(data, filename)
    members = [archive.members[i] for i in archive.file_indices()]
    if len(members) > MAX_SCORED:
        raise ValueError(f"{filename}: {len(members):,} files; the demo scores at most {MAX_SCORED:,} "
                         "(use `protolab predict` or the API for more)")
    rows: list[dict[str, Any]] = []
    pending: list[tuple[dict[str, Any], Image.Image]] = []

    def flush() -> None:
        for (row, _), pred in zip(pending, classifier.predict([im for _, im in pending]), strict=True):
            row.update(label=pred.label, confidence=round(pred.confidence, 6),
                       **{f"p_{k}": round(v, 6) for k, v in pred.probabilities.items()})
        pending.clear()

    for member, content in archive.each(members):
        row: dict[str, Any] = {"path": member.path, "label": None, "confidence": None, "error": None}
        rows.append(row)
        try:
            if isinstance(content, ImageError):
                raise content
            pending.append((row, open_image(io.BytesIO(content), name=member.path)))
        except ImageError as exc:  # an unreadable member is reported on its row; the others are still scored
            row["error"] = str(exc)
        if len(pending) >= batch_size:
            flush()
    if pending:
        flush()
    return pd.DataFrame(rows)
