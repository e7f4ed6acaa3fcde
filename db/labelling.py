"""Query functions for labelling: an unlabelled dataset's label set and the labels given to its rows.

They take the session first and never commit. Labels are an append-only log (LabelEvent): the latest
event of a row is its label, a NULL label is a skip, and undo deletes the latest event.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from db.models import LabelClass, LabelEvent, LabelSet, Run


def label_classes(s: Session, dataset_id: int) -> Sequence[LabelClass]:
    return s.scalars(select(LabelClass).where(LabelClass.dataset_id == dataset_id)
                     .order_by(LabelClass.position, LabelClass.id)).all()


def replace_label_classes(s: Session, dataset_id: int, classes: Sequence[tuple[str, str]]) -> None:
    """Make the label set exactly `classes` ((name, description) in order)."""
    s.execute(delete(LabelClass).where(LabelClass.dataset_id == dataset_id))
    s.flush()
    for position, (name, description) in enumerate(classes):
        s.add(LabelClass(dataset_id=dataset_id, name=name, description=description, position=position))
    s.flush()


def label_set_task(s: Session, dataset_id: int) -> str | None:
    """The task a pool's labels make (None: never chosen, one label a text)."""
    return s.scalar(select(LabelSet.task).where(LabelSet.dataset_id == dataset_id))


def set_label_set_task(s: Session, dataset_id: int, task: str) -> None:
    found = s.get(LabelSet, dataset_id)
    if found is None:
        s.add(LabelSet(dataset_id=dataset_id, task=str(task)))
    else:
        found.task = str(task)
    s.flush()


def count_labels(s: Session, dataset_id: int) -> int:
    """Label events that are not skips: any at all means the kind of label set can no longer change."""
    return s.scalar(select(func.count()).select_from(LabelEvent)
                    .where(LabelEvent.dataset_id == dataset_id, LabelEvent.label.is_not(None))) or 0


def add_label_event(s: Session, dataset_id: int, row_index: int, label: str | None) -> LabelEvent:
    event = LabelEvent(dataset_id=dataset_id, row_index=int(row_index), label=label)
    s.add(event)
    s.flush()
    return event


def latest_event(s: Session, dataset_id: int) -> LabelEvent | None:
    return s.scalar(select(LabelEvent).where(LabelEvent.dataset_id == dataset_id)
                    .order_by(LabelEvent.id.desc()).limit(1))


def delete_event(s: Session, event: LabelEvent) -> None:
    s.delete(event)
    s.flush()


def label_events(s: Session, dataset_id: int) -> list[tuple[int, str | None]]:
    """(row_index, label) of every event, oldest first."""
    rows = s.execute(select(LabelEvent.row_index, LabelEvent.label).where(LabelEvent.dataset_id == dataset_id)
                     .order_by(LabelEvent.id))
    return [(int(r), label) for r, label in rows]


def labelled_dataset_ids(s: Session) -> set[int]:
    """Datasets that have a label set (the ones the Label page offers, besides new unlabelled uploads)."""
    return set(s.scalars(select(LabelClass.dataset_id).distinct()))


def count_label_uses(s: Session, dataset_id: int, name: str) -> int:
    return s.scalar(select(func.count()).select_from(LabelEvent)
                    .where(LabelEvent.dataset_id == dataset_id, LabelEvent.label == name)) or 0


def count_labels_since(s: Session, dataset_id: int, since: datetime | None) -> int:
    """Labels (not skips) given to a dataset after `since` (all of them when None)."""
    q = select(func.count()).select_from(LabelEvent).where(LabelEvent.dataset_id == dataset_id,
                                                           LabelEvent.label.is_not(None))
    if since is not None:
        q = q.where(LabelEvent.created_at > since)
    return s.scalar(q) or 0


def runs_of_kind(s: Session, dataset_id: int, model_kind: str) -> Sequence[Run]:
    """A dataset's runs of one model kind, newest first."""
    return s.scalars(select(Run).where(Run.dataset_id == dataset_id, Run.model_kind == model_kind)
                     .order_by(Run.id.desc())).all()
