"""Query functions for datasets. They take the session first and never commit."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import Dataset, Run


def get_dataset(s: Session, dataset_id: int) -> Dataset | None:
    return s.get(Dataset, dataset_id)


def require_dataset(s: Session, dataset_id: int, error: Callable[[str], Exception]) -> Dataset:
    """The dataset `dataset_id`, or the caller's own error type saying there is none."""
    dataset = s.get(Dataset, dataset_id)
    if dataset is None:
        raise error(f"no dataset with id {dataset_id}")
    return dataset


def get_dataset_by_name(s: Session, name: str) -> Dataset | None:
    return s.scalar(select(Dataset).where(Dataset.name == name))


def find_dataset(s: Session, name_or_id: str) -> Dataset | None:
    """Look a dataset up by exact name, else by numeric id (how the CLI names them)."""
    found = get_dataset_by_name(s, name_or_id)
    if found is None and name_or_id.isdigit():
        found = get_dataset(s, int(name_or_id))
    return found


def find_by_hash(s: Session, content_hash: str, task: str | None = None) -> Dataset | None:
    q = select(Dataset).where(Dataset.content_hash == content_hash)
    if task is not None:
        q = q.where(Dataset.task == task)
    return s.scalar(q.order_by(Dataset.id).limit(1))


def list_datasets(s: Session, task: str | None = None) -> Sequence[Dataset]:
    q = select(Dataset).order_by(Dataset.created_at.desc(), Dataset.id.desc())
    if task is not None:
        q = q.where(Dataset.task == task)
    return s.scalars(q).all()


def dataset_ids(s: Session) -> set[int]:
    return set(s.scalars(select(Dataset.id)))


def count_datasets(s: Session) -> int:
    return s.scalar(select(func.count()).select_from(Dataset)) or 0


def runs_using(s: Session, dataset_id: int) -> Sequence[Run]:
    return s.scalars(select(Run).where(Run.dataset_id == dataset_id).order_by(Run.id)).all()


def add_dataset(s: Session, dataset: Dataset) -> Dataset:
    s.add(dataset)
    s.flush()
    return dataset


def delete_dataset(s: Session, dataset: Dataset) -> None:
    s.delete(dataset)
