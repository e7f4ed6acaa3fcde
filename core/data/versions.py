"""Dataset versions: a child dataset made from its parent with rows relabelled or excluded.

The error table of a run marks rows; `marks_to_changes` turns the marks into changes, and
`create_dataset_version` stores the new version in the caller's transaction.

The test split stays as it was uploaded: a version changes training and validation rows only, and
carries the test rows (ids, texts, labels) over unchanged, so runs on a dataset and its versions are
scored on the same test set. A mistake found in the test split is marked (`mark_test_rows`); the marks
go into a new, differently named test set only when the user asks for one (`new_test_set=True`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from core.data.splits import canonical_prediction_split
from core.data.storage import ROW_ID, load_frame, write_dataset
from core.data.types import DatasetError
from core.names import check_name
from core.tasks import Versions, get_task, resolve
from db import datasets as dataset_queries
from db.models import Dataset


class VersionError(DatasetError):
    """A dataset version cannot be made as asked (no marks, unknown label, rows not found)."""


def marks_to_changes(marks: pd.DataFrame, split: str, content: str = "text") -> list[dict[str, Any]]:
    """Rows of the error table marked `exclude` or given a `relabel_to` label, as dataset changes.

    `content` is the column naming each row's content (the task's Versions.content: "text", an image's "image").
    """
    changes = []
    with_ids = ROW_ID in marks.columns
    for row in marks.itertuples(index=False):
        target = row.relabel_to if isinstance(row.relabel_to, str) and row.relabel_to else None
        base = {"split": split, content: getattr(row, content), "label": row.true}
        if with_ids and pd.notna(getattr(row, ROW_ID)):  # that one stored row, not every copy of its text
            base[ROW_ID] = int(getattr(row, ROW_ID))
        if bool(row.exclude):
            changes.append({"action": "exclude", **base})
        elif target is not None and target != row.true:
            changes.append({"action": "relabel", **base, "to": target})
    return changes


def test_set_name(dataset: Dataset) -> str:
    """The name of the test set a dataset carries: "<upload> test set", then "... test set 2" once remade."""
    return str(((dataset.stats or {}).get("test_set") or {}).get("name") or f"{dataset.name} test set")


def pending_test_marks(dataset: Dataset) -> list[dict[str, Any]]:
    """Test-row mistakes marked on this dataset (or carried from its parent), not yet in any test set."""
    return list((dataset.changes or {}).get("test_marks") or [])


def mark_test_rows(s: Any, dataset_id: int, changes: Sequence[dict[str, Any]]) -> int:
    """Remember changes to test rows on the dataset without touching its test set; how many are pending."""
    dataset, versions = _versioned_parent(s, dataset_id)
    if any(_change_split(str(c.get("split", "test"))) != "test" for c in changes):
        raise VersionError("only test rows are marked; save changes to training or validation rows as a version")
    marks = _merge_marks(pending_test_marks(dataset), changes, versions.content)
    dataset.changes = {**(dataset.changes or {}), "test_marks": marks}  # a new dict: JSON columns track assignment
    s.flush()
    return len(marks)


def create_dataset_version(s: Any, parent_dataset_id: int, changes: Sequence[dict[str, Any]], *,
                           name: str | None = None, source_run_id: int | None = None,
                           new_test_set: bool = False) -> Dataset:
    """Store a new dataset made from its parent with training/validation rows relabelled or excluded.

    Each change is {"split", "text", "label" (current), "action": "relabel"|"exclude", "to" (relabel)};
    a change applies to every row of that split with that text and label, or only to the stored row
    with id "row_id" (or at position "row") when the change names one. The task's Versions entry says which
    column plays the text's part ("image" for images, whose changes name a row_id) and what files a version
    stores beside its frame (an image version's images, linked from the parent's folder), written all-or-nothing
    with it. Changes to test rows are kept as
    marks and carried along, unless `new_test_set`: then they (with the parent's marks) make a new test
    set with a new name. The new row links to its parent and lists the changes. The caller's transaction
    owns the row (see write_dataset).
    """
    parent, versions = _versioned_parent(s, parent_dataset_id)
    test_changes = [c for c in changes if _change_split(str(c.get("split", "test"))) == "test"]
    other = [c for c in changes if c not in test_changes]
    pending = _merge_marks(pending_test_marks(parent), test_changes, versions.content)
    to_apply = other + (pending if new_test_set else [])
    if not to_apply:
        if test_changes:
            raise VersionError("every marked row is in the test split, which stays as it was uploaded: mark them "
                               "as test-set mistakes, or ask for a new test set")
        raise VersionError("no rows are marked: mark rows to relabel or exclude first")
    name = check_name(name, "a dataset", error=VersionError) if name else None
    frame, applied = _apply_changes(load_frame(parent), to_apply, versions)
    if frame.empty or frame[frame["split"] == "train"].empty:
        raise VersionError("these exclusions would leave no training rows")
    version_name = name or free_name(s, parent.name)
    counts = (resolve(versions.stats)(frame) if versions.stats
              else {"classes": frame[versions.label].value_counts().to_dict()})
    stats = {**(parent.stats or {}), **counts,
             "test_set": _next_test_set(parent) if new_test_set else {"name": test_set_name(parent)}}
    counts = {a: sum(c["rows"] for c in applied if c["action"] == a) for a in ("relabel", "exclude")}
    record = {"source_run_id": source_run_id, "relabelled": counts["relabel"], "excluded": counts["exclude"],
              "changes": applied, "test_marks": [] if new_test_set else pending}
    return write_dataset(s, name=version_name, task=parent.task, frame=frame, mapping=dict(parent.mapping or {}),
                         encoding=parent.encoding, source_filename=parent.source_filename, stats=stats,
                         warnings=list(parent.warnings or []), parent_id=parent.id, changes=record,
                         files=resolve(versions.files)(parent.id, frame) if versions.files else None)


def _versioned_parent(s: Any, dataset_id: int) -> tuple[Dataset, Versions]:
    parent = dataset_queries.require_dataset(s, dataset_id, VersionError)
    versions = get_task(parent.task).versions
    if versions is None:
        raise VersionError("only classification datasets can be relabelled")
    return parent, versions


def _merge_marks(old: Sequence[dict[str, Any]], new: Sequence[dict[str, Any]], content: str) -> list[dict[str, Any]]:
    """Old marks then new ones; a row marked again keeps only its latest mark."""
    def key(c: dict[str, Any]) -> tuple:
        return (c.get(ROW_ID), c.get("row"), str(c.get(content)), str(c.get("label")))
    latest = {key(c): {**c, "split": "test"} for c in [*old, *new]}
    return list(latest.values())


def _next_test_set(parent: Dataset) -> dict[str, Any]:
    current = (parent.stats or {}).get("test_set") or {}
    number = int(current.get("number") or 1) + 1
    stem = str(current.get("stem") or f"{_lineage_name(parent)} test set")
    return {"name": f"{stem} {number}", "stem": stem, "number": number}


def _lineage_name(dataset: Dataset) -> str:
    while dataset.parent is not None:
        dataset = dataset.parent
    return dataset.name


def _change_split(split: str) -> str:
    if str(split).lower() == "train":  # a data audit marks training rows too
        return "train"
    canonical = canonical_prediction_split(split)
    if canonical is None:
        raise VersionError(f"unknown split {split!r}; expected validation (val) or test")
    return canonical


def _apply_changes(frame: pd.DataFrame, changes: Sequence[dict[str, Any]],
                   versions: Versions) -> tuple[pd.DataFrame, list[dict]]:
    frame = frame.copy()
    content, column = versions.content, versions.label
    known = set(frame[column].astype(str))
    keep = pd.Series(True, index=frame.index)
    applied = []
    for change in changes:
        action = change.get("action")
        if action not in ("relabel", "exclude"):
            raise VersionError(f"unknown action {action!r}; expected relabel or exclude")
        split = _change_split(str(change.get("split", "test")))
        if change.get(content) is None and change.get(ROW_ID) is None and change.get("row") is None:
            raise VersionError(f"a change must name its row: a {content!r} or a {ROW_ID!r}")
        mask = pd.Series(True, index=frame.index)
        if change.get(content) is not None:
            mask &= frame[content].astype(str) == str(change[content])
        if change.get(ROW_ID) is not None:  # one stored row by its stable id
            mask &= frame[ROW_ID] == int(change[ROW_ID])
        elif change.get("row") is not None:  # one stored row (a data audit's finding), not every copy of its text
            mask &= frame.index == int(change["row"])
        if change.get("label") is not None:
            mask &= frame[column].astype(str) == str(change["label"])
        # Test rows change only through a test change (a new test set); other changes never reach them.
        mask &= (frame["split"] == "test") if split == "test" else (frame["split"] != "test")
        # Training may cut a missing validation split from train, so a prediction's split is a hint:
        # fall back to the same text and label in train or validation.
        if (mask & (frame["split"] == split)).any():
            mask &= frame["split"] == split
        named = change.get(content)
        if named is None:  # a change by row id records the content it found (an image's key)
            named = ",".join(frame.loc[mask, content].astype(str).unique()[:3])
        entry = {"action": action, "split": split, content: str(named)[:500],
                 "label": change.get("label"), "rows": int(mask.sum())}
        if change.get(ROW_ID) is not None:
            entry[ROW_ID] = int(change[ROW_ID])
        if action == "relabel":
            if versions.target:  # a tag set: the task checks the tags and says how a set is stored
                target = resolve(versions.target)(change.get("to"), frame[column])
            else:
                target = str(change.get("to") or "")
                if target not in known:
                    raise VersionError(f"cannot relabel to {target!r}: not a label of this dataset")
            frame.loc[mask, column] = target
            entry["to"] = target
        else:
            keep &= ~mask
        applied.append(entry)
    if not any(c["rows"] for c in applied):
        raise VersionError("none of the marked rows were found in the dataset")
    return frame[keep].reset_index(drop=True), applied


def free_name(s: Any, base: str, *, plain_first: bool = False) -> str:
    """`base vN` for the first free N from 2 (a version of "reviews" is "reviews v2"); with `plain_first`, `base`
    itself while it is free (the first labelled version of a pool is "tickets labelled", not "... v2")."""
    if plain_first and dataset_queries.get_dataset_by_name(s, base[:200]) is None:
        return base[:200]
    head, _, tail = base.rpartition(" v")
    stem = head if head and tail.isdigit() else base
    for n in range(2, 10_000):
        candidate = f"{stem} v{n}"[:200]
        if dataset_queries.get_dataset_by_name(s, candidate) is None:
            return candidate
    raise VersionError(f"too many versions of {base!r}")

