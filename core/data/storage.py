"""Storing cleaned datasets and run artifacts on disk, next to their database rows.

A dataset is written once as Parquet under PROTOLAB_HOME/datasets/<id>/ with a
`split` column; the folder only gets its final name after every file is written
and the row exists, so a failure never leaves a half-imported dataset.

Canonical columns (what every model and page reads):
- classification: text (str), label (str), split
- interactions:   user (str), item (str), rating (float, optional), timestamp (int, optional), split
- item catalogue: item (str), title (str), plus optional text, genres, ...
"""

from __future__ import annotations

import hashlib
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from sqlalchemy.orm import Session

from core.data.types import SPLIT_NAMES
from core.errors import ProtolabError
from core.settings import dataset_dir, load_settings
from db import datasets as dataset_queries
from db.enums import TaskKind
from db.models import Dataset

DATA_FILE = "data.parquet"
# A classification row's stable id: its position in the upload, kept through every version made from it
# (positions shift when rows are excluded), so a run's test set can be checked row by row.
ROW_ID = "row_id"
ITEMS_FILE = "items.parquet"
ORPHAN_MIN_AGE_S = 600.0  # longer than any import takes between its rename and its commit


class StorageError(ProtolabError):
    """Disk trouble while storing (full, unwritable): nothing was kept."""


def content_digest(*frames: pd.DataFrame | None) -> str:
    """SHA-256 of column names and values (as text), independent of the file, encoding and split.

    The one fingerprint of a dataset's content: imports and dataset versions store it, re-uploads look it up.
    """
    digest = hashlib.sha256()
    for frame in frames:
        if frame is None:
            continue
        texts = frame.astype(str).to_numpy(dtype=object)  # once for the frame: a wide one has 10,000 columns
        missing = pd.isna(texts)  # pandas 3 keeps a missing value missing through astype(str)
        if missing.any():
            texts[missing] = "\x00"  # not a text anyone types, so a missing value never equals one
        for j, col in enumerate(frame.columns):
            digest.update(f"\x1d{col}\x1e".encode())
            # Joining is several times faster than hashing row by row, and exact (no 64-bit row hashes).
            digest.update("\x1f".join(texts[:, j].tolist()).encode("utf-8", errors="surrogatepass"))
    return digest.hexdigest()


@contextmanager
def _removed_on_error(staging: Path, doing: str) -> Iterator[None]:
    """A failure inside leaves no half-written folder behind; a file-system one says what could not be done."""
    try:
        yield
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise StorageError(f"could not {doing}: {exc.strerror or exc}") from exc
    except Exception:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_dataset(
    s: Session, *, name: str, task: TaskKind, frame: pd.DataFrame, mapping: dict[str, Any],
    items: pd.DataFrame | None = None, encoding: str | None = None, source_filename: str | None = None,
    stats: dict[str, Any] | None = None, warnings: list[Any] | None = None,
    parent_id: int | None = None, changes: dict[str, Any] | None = None, hash_: str | None = None,
    files: Callable[[Path], None] | None = None,
) -> Dataset:
    """Write `frame` (with a `split` column) and its row in one all-or-nothing step.

    `hash_` defaults to the digest an import of the same rows would compute (the frame without
    `split`, then the catalogue), so a re-upload of a stored version is recognised. `files`, when given, writes
    the dataset's own files (an image dataset's images) into the folder before it is moved into place.
    The caller's transaction owns the row: if it rolls back after this returns, the
    files are orphaned in a folder whose id no row has; `remove_orphans` sweeps those.
    """
    if "split" not in frame.columns:
        raise ValueError("frame needs a 'split' column")
    if task == TaskKind.CLASSIFICATION and ROW_ID not in frame.columns:
        frame = frame.assign(**{ROW_ID: np.arange(len(frame), dtype=np.int64)})
    root = load_settings().datasets_dir
    staging = root / f".staging-{uuid.uuid4().hex}"
    with _removed_on_error(staging, f"write the dataset under {root}"):
        staging.mkdir(parents=True, exist_ok=False)
        frame.to_parquet(staging / DATA_FILE, index=False)
        if items is not None:
            items.to_parquet(staging / ITEMS_FILE, index=False)
        if files is not None:
            files(staging)

    split_counts = {str(k): int(v) for k, v in frame["split"].value_counts().items()}
    digest = hash_ or content_digest(frame.drop(columns=["split", ROW_ID], errors="ignore"), items)
    row = Dataset(
        name=name, task=task, mapping=mapping, content_hash=digest,
        encoding=encoding, source_filename=source_filename, row_count=len(frame), split_counts=split_counts,
        stats=stats or {}, warnings=warnings or [], storage_path="", parent_id=parent_id, changes=changes or {},
    )
    with _removed_on_error(staging, f"move the dataset into place under {root}"):
        dataset_queries.add_dataset(s, row)
        final = dataset_dir(row.id)
        if final.exists():  # left by a database that was reset; never mix old files in
            shutil.rmtree(final)
        staging.rename(final)
        row.storage_path = str(final)
        s.flush()
    return row


def load_frame(dataset: Dataset) -> pd.DataFrame:
    """Every row of a dataset, with its `split` column (and `row_id` for classification rows)."""
    frame = pd.read_parquet(_checked_folder(dataset) / DATA_FILE)
    if dataset.task == TaskKind.CLASSIFICATION and ROW_ID not in frame.columns:  # stored before row ids
        frame[ROW_ID] = np.arange(len(frame), dtype=np.int64)
    return frame


def load_split(dataset: Dataset, split: str) -> pd.DataFrame:
    if split not in SPLIT_NAMES:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLIT_NAMES}")
    path = _checked_folder(dataset) / DATA_FILE
    if dataset.task == TaskKind.CLASSIFICATION and ROW_ID not in pq.read_schema(path).names:
        frame = load_frame(dataset)  # positions are the row ids: read them before filtering
        return frame[frame["split"] == split].reset_index(drop=True)
    frame = pd.read_parquet(path, filters=[("split", "==", split)])
    return frame.reset_index(drop=True)


def load_items(dataset: Dataset) -> pd.DataFrame | None:
    path = _checked_folder(dataset) / ITEMS_FILE
    return pd.read_parquet(path) if path.exists() else None


def delete_dataset_files(dataset_id: int) -> None:
    shutil.rmtree(dataset_dir(dataset_id), ignore_errors=True)


def remove_orphans(s: Session, min_age_s: float = ORPHAN_MIN_AGE_S) -> list[Path]:
    """Delete dataset folders that no row owns (staging left by a crash, rolled-back imports).

    Only folders untouched for `min_age_s`: another process's import renames its folder into
    place before its transaction commits, so a young folder without a row may be about to get one.
    """
    root = load_settings().datasets_dir
    if not root.exists():
        return []
    cutoff = time.time() - min_age_s
    owned = dataset_queries.dataset_ids(s)
    removed = []
    for path in root.iterdir():
        ours = path.name.isdigit() or path.name.startswith(".staging-")
        if not ours or not path.is_dir() or path.is_symlink():
            continue  # not a folder write_dataset makes: leave it to whoever put it there
        try:
            if path.stat().st_mtime > cutoff:
                continue
        except FileNotFoundError:  # removed meanwhile (e.g. a staging folder renamed into place)
            continue
        if path.name.isdigit() and int(path.name) in owned:
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _checked_folder(dataset: Dataset) -> Path:
    # Only ever read from the id-derived folder under PROTOLAB_HOME, whatever the row says.
    folder = dataset_dir(dataset.id)
    if not (folder / DATA_FILE).exists():
        raise FileNotFoundError(f"the files of dataset {dataset.name!r} are missing from {folder}")
    return folder
