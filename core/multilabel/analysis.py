"""Error analysis of a multi-label run: per text, the tags it missed and the ones it added, filterable by tag; and
the tag sets a person fixed there, as the changes of a new dataset version."""

from __future__ import annotations

from typing import Any

import pandas as pd

from core.data.storage import ROW_ID
from core.multilabel.labels import decode, encode
from core.runs.files import RunFiles

ANSWER_FIGURES = ("micro_f1", "macro_f1", "samples_f1", "hamming_loss", "subset_accuracy")
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


def answers(metrics: dict[str, Any], split: str) -> pd.DataFrame:
    """The run's scores on `split` at its per-tag thresholds (what it serves) beside one global threshold, 0.5 for
    every tag and, on the test split, the no-tags and most-frequent-tags baselines: one row each."""
    def few(scores: dict[str, Any]) -> dict[str, Any]:
        return {k: round(float(scores[k]), 4) for k in ANSWER_FIGURES if k in scores}

    rows = [{"answer": "per-tag thresholds (served)", **few(((metrics.get("reports") or {}).get(split)) or {})},
            {"answer": f"one global threshold {metrics.get('global_threshold', 0.5):.2f}",
             **few((metrics.get("at_global_threshold") or {}).get(split, {}))},
            {"answer": "threshold 0.5 for every tag", **few((metrics.get("at_half") or {}).get(split, {}))}]
    if split == "test":
        base = metrics.get("baselines") or {}
        frequent = base.get("most_frequent", {})
        rows += [{"answer": "baseline: no tags", **few(base.get("no_tags", {}))},
                 {"answer": f"baseline: most frequent tags ({', '.join(frequent.get('tags', []))})", **few(frequent)}]
    return pd.DataFrame(rows)
