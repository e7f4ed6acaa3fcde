"""Dataset versions: a child dataset made from its parent with rows relabelled or excluded.

The error table of a run marks rows; `marks_to_changes` turns the marks into changes, and
`create_dataset_version` stores the new version in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from core.data.splits import canonical_prediction_split
from core.data.storage import load_frame, write_dataset
from core.data.types import DatasetError
from db import datasets as dataset_queries
from db.enums import TaskKind
from db.models import Dataset


class VersionError(DatasetError):
    """A dataset version cannot be made as asked (no marks, unknown label, rows not found)."""


def marks_to_changes(marks: pd.DataFrame, split: str) -> list[dict[str, Any]]:
    """Rows of the error table marked `exclude` or given a `relabel_to` label, as dataset changes."""
    changes = []
    for row in marks.itertuples(index=False):
        target = row.relabel_to if isinstance(row.relabel_to, str) and row.relabel_to else None
        if bool(row.exclude):
            changes.append({"action": "exclude", "split": split, "text": row.text, "label": row.true})
        elif target is not None and target != row.true:
            changes.append({"action": "relabel", "split": split, "text": row.text, "label": row.true, "to": target})
    return changes


def create_dataset_version(s: Any, parent_dataset_id: int, changes: Sequence[dict[str, Any]], *,
                           name: str | None = None, source_run_id: int | None = None) -> Dataset:
    """Store a new dataset made from its parent with rows relabelled or excluded.

    Each change is {"split", "text", "label" (current), "action": "relabel"|"exclude", "to" (relabel)};
    a change applies to every row of that split with that text and label, or only to the stored row
    at position "row" when the change names one. The new row links to
    its parent and lists the changes. The caller's transaction owns the row (see write_dataset).
    """
    if not changes:
        raise VersionError("no rows are marked: mark rows to relabel or exclude first")
    parent = dataset_queries.get_dataset(s, parent_dataset_id)
    if parent is None:
        raise VersionError(f"no dataset with id {parent_dataset_id}")
    if parent.task != TaskKind.CLASSIFICATION:
        raise VersionError("only classification datasets can be relabelled")
    frame = load_frame(parent)
    frame, applied = _apply_changes(frame, changes)
    if frame.empty or frame[frame["split"] == "train"].empty:
        raise VersionError("these exclusions would leave no training rows")
    version_name = name or _free_name(s, parent.name)
    stats = {**(parent.stats or {}), "classes": frame["label"].value_counts().to_dict()}
    counts = {a: sum(c["rows"] for c in applied if c["action"] == a) for a in ("relabel", "exclude")}
    record = {"source_run_id": source_run_id, "relabelled": counts["relabel"], "excluded": counts["exclude"],
              "changes": applied}
    return write_dataset(s, name=version_name, task=parent.task, frame=frame, mapping=dict(parent.mapping or {}),
                         encoding=parent.encoding, source_filename=parent.source_filename, stats=stats,
                         warnings=list(parent.warnings or []), parent_id=parent.id, changes=record)


def _change_split(split: str) -> str:
    if str(split).lower() == "train":  # a data audit marks training rows too
        return "train"
    canonical = canonical_prediction_split(split)
    if canonical is None:
        raise VersionError(f"unknown split {split!r}; expected validation (val) or test")
    return canonical


def _apply_changes(frame: pd.DataFrame, changes: Sequence[dict[str, Any]]) -> tuple[pd.DataFrame, list[dict]]:
    frame = frame.copy()
    known = set(frame["label"].astype(str))
    keep = pd.Series(True, index=frame.index)
    applied = []
    for change in changes:
        action = change.get("action")
        if action not in ("relabel", "exclude"):
            raise VersionError(f"unknown action {action!r}; expected relabel or exclude")
        split = _change_split(str(change.get("split", "test")))
        mask = frame["text"].astype(str) == str(change["text"])
        if change.get("row") is not None:  # one stored row (a data audit's finding), not every copy of its text
            mask &= frame.index == int(change["row"])
        if change.get("label") is not None:
            mask &= frame["label"].astype(str) == str(change["label"])
        # Training may cut a missing validation split from train (or test from validation), so a
        # prediction's split is a hint: fall back to the same text and label anywhere.
        if (mask & (frame["split"] == split)).any():
            mask &= frame["split"] == split
        entry = {"action": action, "split": split, "text": str(change["text"])[:500],
                 "label": change.get("label"), "rows": int(mask.sum())}
        if action == "relabel":
            target = str(change.get("to") or "")
            if target not in known:
                raise VersionError(f"cannot relabel to {target!r}: not a label of this dataset")
            frame.loc[mask, "label"] = target
            entry["to"] = target
        else:
            keep &= ~mask
        applied.append(entry)
    if not any(c["rows"] for c in applied):
        raise VersionError("none of the marked rows were found in the dataset")
    return frame[keep].reset_index(drop=True), applied


def _free_name(s: Any, base: str) -> str:
    head, _, tail = base.rpartition(" v")
    stem = head if head and tail.isdigit() else base
    for n in range(2, 10_000):
        candidate = f"{stem} v{n}"[:200]
        if dataset_queries.get_dataset_by_name(s, candidate) is None:
            return candidate
    raise VersionError(f"too many versions of {base!r}")

