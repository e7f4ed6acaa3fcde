"""Error analysis of a multi-label run: per text, the tags it missed and the ones it added, filterable by tag; and
the tag sets a person fixed there, as the changes of a new dataset version."""

from __future__ import annotations

from typing import Any

import pandas as pd

from core.data.storage import ROW_ID
from core.multilabel.labels import decode, encode
from core.runs.files import RunFiles

SET_TAGS = "set_tags"  # the editor's column: the tag set the row should have (starts as its true one)


def tag_errors(run_id: int, split: str, tag: str | None = None) -> pd.DataFrame:
    """Rows of `split` whose predicted tag set differs from the true one (text, true, predicted, missing, extra);
    with `tag`, only the rows where that tag was missed or added."""
    frame = pd.read_parquet(RunFiles.of(run_id).predictions(split))
    true, pred = [set(decode(v)) for v in frame["label"]], [set(decode(v)) for v in frame["pred"]]
    out = pd.DataFrame({"text": frame["text"], "true": [sorted(t) for t in true],
                        "predicted": [sorted(p) for p in pred],
                        "missing": [sorted(t - p) for t, p in zip(true, pred, strict=True)],
                        "extra": [sorted(p - t) for t, p in zip(true, pred, strict=True)]})
    if ROW_ID in frame.columns:  # the stored row each prediction is of, so a fix changes that row only
        out[ROW_ID] = frame[ROW_ID].astype("int64").to_numpy()
    wrong = out["missing"].map(bool) | out["extra"].map(bool)
    if tag is not None:
        wrong &= out["missing"].map(lambda m: tag in m) | out["extra"].map(lambda e: tag in e)
    return out[wrong].reset_index(drop=True)


def tag_set_changes(marks: pd.DataFrame, split: str) -> list[dict[str, Any]]:
    """Rows of the tag-error editor marked `exclude`, or whose `set_tags` differ from their true tags, as dataset
    changes (core.data.versions): a relabel sets the row's whole tag set, which may be empty."""
    changes = []
    for row in marks.to_dict("records"):
        true = sorted(row["true"])
        base: dict[str, Any] = {"split": split, "text": row["text"], "label": encode(true)}
        if pd.notna(row.get(ROW_ID)):
            base[ROW_ID] = int(row[ROW_ID])
        wanted = sorted({str(t) for t in (row.get(SET_TAGS) if row.get(SET_TAGS) is not None else true)})
        if bool(row.get("exclude")):
            changes.append({"action": "exclude", **base})
        elif wanted != true:
            changes.append({"action": "relabel", **base, "to": wanted})
    return changes
