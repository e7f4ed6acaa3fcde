"""The profile of a stored image dataset: the numbers behind its Datasets page charts and thumbnail grid.

A pure function of the stored frame (core.images' columns): sizes come from the frame, so profiling never
opens an image; the page opens only the few thumbnails it shows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from core.images import HEIGHT, IMAGE, PATH, WIDTH

SAMPLE_CLASSES = 12  # thumbnails for this many of the largest classes
THUMBNAILS = 8  # thumbnails a class
SIZE_SAMPLE = 5000  # points of the size scatter: more only slow the browser


def images_profile(frame: pd.DataFrame, seed: int = 0) -> dict[str, Any]:
    """Images per class, sizes and aspect ratios, exact duplicates, and sample image keys per class."""
    labelled = frame[frame["label"].notna()]
    classes = {str(k): int(v) for k, v in labelled["label"].value_counts().items()}
    shuffled = frame.sample(frac=1.0, random_state=seed)
    if classes:
        groups = {str(k): g for k, g in shuffled.groupby("label")}
        samples = {label: list(zip(groups[label][IMAGE].head(THUMBNAILS), groups[label][PATH].head(THUMBNAILS),
                                   strict=True))
                   for label in list(classes)[:SAMPLE_CLASSES]}
    else:  # unlabelled: one grid of the whole set
        samples = {"": list(zip(shuffled[IMAGE].head(THUMBNAILS * 3), shuffled[PATH].head(THUMBNAILS * 3),
                                strict=True))}
    sized = shuffled.head(SIZE_SAMPLE)
    widths, heights = sized[WIDTH].to_numpy(dtype=int), sized[HEIGHT].to_numpy(dtype=int)
    ratio = max(classes.values()) / min(classes.values()) if classes else 1.0
    return {"rows": len(frame), "classes": classes, "imbalance_ratio": round(ratio, 2),
            "widths": widths, "heights": heights, "aspects": np.round(widths / np.maximum(heights, 1), 3),
            "labels": sized["label"].astype(object).where(sized["label"].notna(), "").to_numpy(),
            "duplicates": int(frame[IMAGE].duplicated().sum()), "samples": samples}
