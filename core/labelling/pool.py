"""Labelling an unlabelled dataset: its label set (one label a text, or a tag set a text: the task its labels
make, core.tasks' `labelling`), the labels given (stored as given), undo, and saving the labelled rows as a normal
labelled dataset version of that task.

Every function takes the caller's session and leaves the commit to it; the Label page commits each label at
once, so a refresh or a crash loses none.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import pandas as pd
from sqlalchemy.orm import Session

from core.data.classification import prepare_classification
from core.data.datasets import check_name
from core.data.storage import load_frame, write_dataset
from core.data.types import ClassificationMapping, DatasetError, ParsedTable, PreparedDataset, SplitConfig
from core.data.versions import free_name
from core.runs import registry
from core.tasks import Labelling, Task, get_task, labelling_tasks, resolve
from db import datasets as dataset_queries
from db import labelling as label_queries
from db.enums import TaskKind
from db.models import Dataset

MAX_LABELS = 50
MAX_LABEL_CHARS = 100
MAX_DESCRIPTION_CHARS = 300


class LabellingError(DatasetError):
    """A label set, label or version that cannot be stored as asked (the message says what and where)."""


@dataclass(frozen=True)
class LabelClassInfo:
    name: str
    description: str


@dataclass(frozen=True)
class LabelState:
    """Where labelling of one dataset stands: its classes, each row's current label, the skipped rows, and the
    task its labels make (one label a text, or a tag set)."""

    classes: list[LabelClassInfo]
    labels: dict[int, str]  # row index -> its latest label, as stored (a tag set encoded as its task stores one)
    skipped: set[int]  # rows whose latest event is a skip
    task: str = TaskKind.CLASSIFICATION

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def labelling(self) -> Labelling:
        return labelling_of(self.task)

    @property
    def sets(self) -> dict[int, list[str]]:
        """Row index -> the labels given to it (one for a class; any number, none included, for a tag set)."""
        decode = resolve(self.labelling.decode)
        return {row: decode(value) for row, value in self.labels.items()}

    @property
    def counts(self) -> dict[str, int]:
        """Rows per label (for tag sets: rows that have the tag)."""
        found = Counter(name for labels in self.sets.values() for name in labels)
        return {name: found.get(name, 0) for name in self.class_names}


def labelling_of(task: str) -> Labelling:
    found = get_task(task).labelling
    if found is None:
        raise LabellingError(f"the Label page does not label texts for {get_task(task).holds}")
    return found


def one_label(labels: list[str]) -> str:
    """A one-label task's `encode`: the class name as it is."""
    if len(labels) != 1:
        raise LabellingError(f"one label per text: got {len(labels)} ({', '.join(labels) or 'none'})")
    return labels[0]


def as_list(stored: str) -> list[str]:
    return [stored]


def is_unlabelled(dataset: Dataset) -> bool:
    return bool((dataset.mapping or {}).get("unlabelled"))


def unlabelled_datasets(s: Session) -> list[Dataset]:
    return [d for d in dataset_queries.list_datasets(s, TaskKind.CLASSIFICATION) if is_unlabelled(d)]


def kind_to_train(dataset: Dataset, model_kind: str) -> str:
    """The kind a run of `model_kind` on `dataset` is: itself on a labelled dataset; on one still being labelled,
    the job kind that trains it on the labels so far (SetFit's Label-page retrain); other kinds need labels."""
    if not is_unlabelled(dataset):
        return model_kind
    job = registry.get_kind(model_kind).job
    if job is None:
        offered = [k.short_label for k in registry.all_kinds(TaskKind.CLASSIFICATION) if k.job is not None]
        raise LabellingError(f"dataset '{dataset.name}' is unlabelled: label it on the Label page and save a "
                             f"labelled version, or train {' or '.join(offered)} on the labels given so far")
    return job


def task_to_train(s: Session, dataset: Dataset) -> str:
    """The task a run on `dataset` is: its own; on one still being labelled, the task its labels make (a tag-set
    pool's retrain is a multi-label run, listed and served as one)."""
    return pool_task(s, dataset.id) if is_unlabelled(dataset) else dataset.task


def parse_label_set(text: str) -> list[tuple[str, str]]:
    """One label a line, `name` or `name: one-line description`; LabellingError names the bad line."""
    out: list[tuple[str, str]] = []
    for number, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip():
            continue
        name, _, description = line.partition(":")
        name, description = name.strip(), re.sub(r"\s+", " ", description).strip()
        if not name:
            raise LabellingError(f"label set, line {number}: a label needs a name before the ':'")
        if len(name) > MAX_LABEL_CHARS:
            raise LabellingError(f"label set, line {number}: a label name has at most {MAX_LABEL_CHARS} characters")
        if len(description) > MAX_DESCRIPTION_CHARS:
            raise LabellingError(f"label set, line {number}: a description has at most {MAX_DESCRIPTION_CHARS} "
                                 "characters")
        if name in (n for n, _ in out):
            raise LabellingError(f"label set, line {number}: label '{name}' is listed twice")
        out.append((name, description))
    if len(out) < 2:
        raise LabellingError(f"a label set needs at least two labels, one a line (got {len(out)})")
    if len(out) > MAX_LABELS:
        raise LabellingError(f"a label set has at most {MAX_LABELS} labels (got {len(out)})")
    return out


def set_label_set(s: Session, dataset_id: int, classes: list[tuple[str, str]], task: str | None = None) -> None:
    """Store the label set (and, when given, the task its labels make: one label a text or a tag set); a label
    already given to rows cannot be dropped, nor the kind of label set changed once texts are labelled."""
    dataset = _pool(s, dataset_id)
    state = label_state(s, dataset.id)
    if task is not None and str(task) != str(state.task):
        labelling_of(task)
        if given := label_queries.count_labels(s, dataset.id):
            raise LabellingError(f"{given} texts are already labelled with {state.labelling.choice}; undo them "
                                 f"first to switch to {labelling_of(task).choice}")
        label_queries.set_label_set_task(s, dataset.id, str(task))
    kept = {name for name, _ in classes}
    for old in label_queries.label_classes(s, dataset.id):
        used = (state.counts.get(old.name, 0) if state.labelling.several
                else label_queries.count_label_uses(s, dataset.id, old.name))
        if old.name not in kept and used:
            raise LabellingError(f"label '{old.name}' is already given to {used} rows; keep it in the label set")
    label_queries.replace_label_classes(s, dataset.id, classes)


def pool_task(s: Session, dataset_id: int) -> str:
    """The task a pool's labels make: the one chosen with its label set, else the first that labels (one label)."""
    return label_queries.label_set_task(s, dataset_id) or labelling_tasks()[0].name


def label_state(s: Session, dataset_id: int) -> LabelState:
    classes = [LabelClassInfo(c.name, c.description) for c in label_queries.label_classes(s, dataset_id)]
    labels: dict[int, str] = {}
    skipped: set[int] = set()
    for row, label in label_queries.label_events(s, dataset_id):  # oldest first: the latest wins
        if label is None:
            labels.pop(row, None)
            skipped.add(row)
        else:
            labels[row] = label
            skipped.discard(row)
    return LabelState(classes, labels, skipped, pool_task(s, dataset_id))


def record_label(s: Session, dataset_id: int, row_index: int, label: str | None) -> None:
    """Store one label (None: a skip) for one row, as given."""
    record_labels(s, dataset_id, row_index, None if label is None else [label])


def record_labels(s: Session, dataset_id: int, row_index: int, labels: list[str] | None) -> None:
    """Store one row's labels (None: a skip) as its label set's task encodes them: exactly one class, or a tag set
    of any size (an empty one is a row labelled with no tag, not a skip)."""
    dataset = _pool(s, dataset_id)
    if not 0 <= int(row_index) < dataset.row_count:
        raise LabellingError(f"row {row_index} is not in dataset '{dataset.name}' ({dataset.row_count} rows)")
    stored = None
    if labels is not None:
        names = [c.name for c in label_queries.label_classes(s, dataset.id)]
        for label in labels:
            if label not in names:
                raise LabellingError(f"'{label}' is not in the label set of '{dataset.name}' ({', '.join(names)})")
        stored = resolve(labelling_of(pool_task(s, dataset.id)).encode)(list(dict.fromkeys(labels)))
    label_queries.add_label_event(s, dataset.id, int(row_index), stored)


def undo_last(s: Session, dataset_id: int) -> int | None:
    """Take back the latest label or skip; the row it was given to, or None when there is nothing to undo."""
    event = label_queries.latest_event(s, dataset_id)
    if event is None:
        return None
    row = event.row_index
    label_queries.delete_event(s, event)
    return row


def labelled_frame(texts: pd.Series, state: LabelState) -> pd.DataFrame:
    """The labelled rows (row_index, text, label), in row order."""
    rows = sorted(state.labels)
    return pd.DataFrame({"row_index": rows, "text": [str(texts.iloc[r]) for r in rows],
                         "label": [state.labels[r] for r in rows]})


def save_labelled_version(s: Session, dataset_id: int, name: str | None = None, *, seed: int = 42,
                          fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> Dataset:
    """Store the labelled rows as a new, normal labelled dataset (split stratified by label) linked to the pool."""

    pool = _pool(s, dataset_id)
    state = label_state(s, pool.id)
    if not state.labels:
        raise LabellingError(f"dataset '{pool.name}' has no labelled rows yet: label some texts first")
    frame = labelled_frame(load_frame(pool)["text"], state)
    table = ParsedTable(frame[["text", "label"]], f"the labels of '{pool.name}'", "labels", None, header_rows=0)
    task: Task = get_task(state.task)
    prepared = resolve(state.labelling.prepare)(table, SplitConfig(fractions, seed))
    version_name = check_name(name) if name else free_name(s, f"{pool.name} labelled", plain_first=True)
    if dataset_queries.get_dataset_by_name(s, version_name) is not None:
        raise LabellingError(f"a dataset named '{version_name}' already exists; choose another name")
    changes = {"labelled_from": pool.id, "labelled_rows": len(frame), "label_counts": state.counts}
    return write_dataset(s, name=version_name, task=task.name, frame=prepared.frame,
                         mapping={**prepared.mapping, "labelled_from": pool.id}, encoding=pool.encoding,
                         source_filename=pool.source_filename, stats=prepared.stats, warnings=prepared.warnings,
                         parent_id=pool.id, changes=changes, hash_=prepared.content_hash)


def prepare_classes(table: ParsedTable, split: SplitConfig) -> PreparedDataset:
    """One-label labelling's `prepare`: the labelled texts as a classification dataset (split stratified)."""
    return prepare_classification(table, ClassificationMapping("text", "label"), split)


def _pool(s: Session, dataset_id: int) -> Dataset:
    dataset = dataset_queries.require_dataset(s, dataset_id, LabellingError)
    if not is_unlabelled(dataset):
        raise LabellingError(f"dataset '{dataset.name}' already has labels; the Label page labels datasets "
                             "uploaded as unlabelled")
    return dataset
