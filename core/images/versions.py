"""What a version of an image dataset stores beside its frame (the images task's core.tasks.Versions entry).

A version keeps its rows' row ids and image keys; its folder holds the files of the images it still has,
hard-linked from its parent's folder (core.images.store.LinkedImages), so an excluded image leaves the version's
folder and every kept one opens there.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from core.images import IMAGE
from core.images.store import LinkedImages


def linked_images(parent_id: int, frame: pd.DataFrame) -> LinkedImages:
    """The files hook of a version: the images its rows name, linked from the parent's folder."""
    return LinkedImages(parent_id, tuple(frame[IMAGE].astype(str)))


def counts(frame: pd.DataFrame) -> dict[str, Any]:
    """The stats an image dataset's summary repeats, recounted for a version's rows (the rest are the parent's)."""
    labelled = frame[frame["label"].notna()]
    return {"images": len(frame), "distinct_images": int(frame[IMAGE].nunique()),
            "classes": {str(k): int(v) for k, v in labelled["label"].value_counts().items()},
            "classes_per_split": {str(s): {str(k): int(v) for k, v in g.value_counts().items()}
                                  for s, g in labelled.groupby("split")["label"]}}
