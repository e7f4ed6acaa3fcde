"""Datasets as stored things: read an upload, import a prepared one, find re-uploads, rename, delete, summarize.

Preparing lives next door (core.data.classification, core.data.interactions); every function here that
touches the database takes the caller's session and leaves the commit to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from core import names
from core.data.reading import parse_upload
from core.data.storage import delete_dataset_files, write_dataset
from core.data.types import DatasetError, DuplicateContent, ParsedTable, PreparedDataset
from core.runs.files import RunFiles
from core.tasks import get_task
from db import after_commit
from db import datasets as dataset_queries
from db.models import Dataset

MAX_NAME_CHARS = 200


def read_table(source: bytes | str | Path, filename: str | None = None) -> ParsedTable:
    """Parse an upload (bytes, or a path given on the CLI) into a table, or raise DatasetError."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        filename = filename or path.name
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise DatasetError(f"{path}: no such file") from exc
        except OSError as exc:
            raise DatasetError(f"{path}: cannot read it ({exc.strerror or exc})") from exc
    else:
        data = bytes(source)
    return parse_upload(data, filename or "upload")


def check_name(name: str) -> str:
    """A dataset's name, stripped, or a DatasetError (empty, too long, control characters: core.names)."""
    return names.check_name(name, "a dataset", max_chars=MAX_NAME_CHARS, error=DatasetError)


def find_same_content(s: Session, prepared: PreparedDataset) -> Dataset | None:
    """The stored dataset with exactly this content, if any (re-upload detection)."""
    return dataset_queries.find_by_hash(s, prepared.content_hash, prepared.task)


def import_dataset(s: Session, prepared: PreparedDataset, *, name: str, allow_duplicate: bool = False) -> Dataset:
    """Store a prepared dataset through core.data.storage (all-or-nothing) in the caller's transaction."""
    name = check_name(name)
    if dataset_queries.get_dataset_by_name(s, name) is not None:
        raise DatasetError(f"a dataset named '{name}' already exists; choose another name")
    existing = find_same_content(s, prepared)
    if existing is not None and not allow_duplicate:
        raise DuplicateContent(existing.id, existing.name)
    return write_dataset(
        s, name=name, task=prepared.task, frame=prepared.frame, mapping=prepared.mapping, items=prepared.items,
        encoding=prepared.encoding, source_filename=prepared.source_filename, stats=prepared.stats,
        warnings=[*prepared.notes, *prepared.warnings], hash_=prepared.content_hash, files=prepared.files)


def rename_dataset(s: Session, dataset_id: int, new_name: str) -> Dataset:
    dataset = _get(s, dataset_id)
    new_name = check_name(new_name)
    other = dataset_queries.get_dataset_by_name(s, new_name)
    if other is not None and other.id != dataset.id:
        raise DatasetError(f"a dataset named '{new_name}' already exists; choose another name")
    dataset.name = new_name
    s.flush()
    return dataset


def runs_to_delete(s: Session, dataset_id: int) -> list[int]:
    """Ids of the runs that deleting this dataset would delete too (say so before deleting)."""
    return [r.id for r in dataset_queries.runs_using(s, dataset_id)]


def delete_dataset(s: Session, dataset_id: int) -> list[int]:
    """Delete a dataset and its runs in the caller's transaction; refuses while one of its runs is active.

    Their files go only once that transaction commits, so a rollback leaves rows and files together.
    Returns the ids of the deleted runs.
    """
    dataset = _get(s, dataset_id)
    runs = dataset_queries.runs_using(s, dataset_id)
    active = [r.id for r in runs if r.status.is_active]
    if active:
        raise DatasetError(f"dataset '{dataset.name}' is used by active runs {', '.join(map(str, active))}; "
                           "cancel them first")
    run_ids = [r.id for r in runs]
    dataset_queries.delete_dataset(s, dataset)
    after_commit(s, lambda: _delete_files(dataset_id, run_ids))
    return run_ids


def _delete_files(dataset_id: int, run_ids: list[int]) -> None:
    delete_dataset_files(dataset_id)
    for run_id in run_ids:
        RunFiles.of(run_id).remove()


def _get(s: Session, dataset_id: int) -> Dataset:
    dataset = dataset_queries.require_dataset(s, dataset_id, DatasetError)
    return dataset


def summarize(dataset: Dataset) -> dict[str, Any]:
    """The JSON shape of a stored dataset (CLI `show --json`, page header)."""
    stats = dataset.stats or {}
    out: dict[str, Any] = {
        "id": dataset.id, "name": dataset.name, "task": str(dataset.task), "rows": dataset.row_count,
        "splits": dataset.split_counts or {}, "encoding": dataset.encoding, "warnings": dataset.warnings or [],
        "mapping": dataset.mapping or {}, "content_hash": dataset.content_hash,
        "source_filename": dataset.source_filename, "created_at": dataset.created_at}
    out.update({key: stats[key] for key in get_task(dataset.task).stats_keys if key in stats})
    out["stats"] = stats
    return out
