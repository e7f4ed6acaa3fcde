"""The shapes a dataset passes through on its way in: parsed table, column mappings, split and clean options.

Also DatasetError, the one error every reading, mapping and validation step raises with a user-facing message.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import ProtolabError
from db.enums import TaskKind

SPLIT_NAMES = ("train", "validation", "test")


class DatasetError(ProtolabError):
    """An upload that cannot become a dataset; the message names the file, column and rows."""


class DuplicateContent(DatasetError):
    """The same content is already stored: offer the existing dataset instead of a copy."""

    def __init__(self, existing_id: int, existing_name: str) -> None:
        super().__init__(f"the same content is already stored as dataset '{existing_name}' (id {existing_id})")
        self.existing_id = existing_id
        self.existing_name = existing_name


@dataclass(frozen=True)
class ParsedTable:
    """An upload as parsed, before any mapping: what the preview shows."""

    frame: pd.DataFrame
    filename: str  # for messages only; never used as a path
    file_format: str
    encoding: str | None
    notes: tuple[str, ...] = ()
    header_rows: int = 1  # rows above the first data row, so row numbers match what the user sees
    # For each row of `frame`, its 0-based place among the file's data rows, when blank lines were left out
    # (a spreadsheet shows them as empty rows, so every later row number counts them); None: none left out.
    source_rows: np.ndarray | None = field(default=None, compare=False)
    payload: Any = None  # what a task's own reader keeps beside the table (an image upload: its archive)

    def row_numbers(self, positions: Sequence[int] | pd.Index | np.ndarray) -> list[int]:
        """The row numbers (header = row 1) a spreadsheet shows for these positions of `frame`."""
        places = np.asarray(positions, dtype=int)
        if self.source_rows is not None:
            places = self.source_rows[places]
        return [int(p) + 1 + self.header_rows for p in places]

    def rows(self, positions: Sequence[int] | pd.Index, limit: int = 5) -> str:
        """'rows 4, 9 and 3 more': row numbers as the user counts them (header = row 1)."""
        numbers = self.row_numbers(list(positions)[:limit])
        word = "rows" if self.header_rows else "records"
        text = f"{word if len(numbers) > 1 else word[:-1]} {', '.join(map(str, numbers))}"
        more = len(positions) - len(numbers)
        return text + (f" and {more} more" if more > 0 else "")

    def preview(self, n: int = 20) -> pd.DataFrame:
        """The first `n` rows indexed by the numbers messages use, so 'row 7' in a warning is row 7 here."""
        head = self.frame.head(n)
        return head.set_axis(pd.Index(self.row_numbers(range(len(head))),
                                      name="row" if self.header_rows else "record"))


@dataclass(frozen=True)
class ClassificationMapping:
    text: str | None
    label: str | None


@dataclass(frozen=True)
class InteractionsMapping:
    user: str | None
    item: str | None
    rating: str | None = None
    timestamp: str | None = None


@dataclass(frozen=True)
class CatalogueMapping:
    item: str | None
    title: str | None
    text: str | None = None
    genres: str | None = None


@dataclass(frozen=True)
class SplitConfig:
    """Fractions for train/validation/test; method: stratified (classification), random or time (interactions)."""

    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 42
    method: str = "stratified"

    def __post_init__(self) -> None:
        f = tuple(float(x) for x in self.fractions)
        if len(f) != 3 or any(not math.isfinite(x) or x < 0 for x in f) or abs(sum(f) - 1) > 1e-6 or f[0] <= 0:
            raise DatasetError(f"split fractions must be three numbers >= 0 adding up to 1 with train > 0, "
                               f"got {', '.join(map(str, self.fractions))}")
        if self.method not in ("stratified", "random", "time"):
            raise DatasetError(f"unknown split method {self.method!r}; expected stratified, random or time")
        object.__setattr__(self, "fractions", f)


@dataclass(frozen=True)
class CleanOptions:
    drop_duplicates: bool = False  # exact duplicate texts: keep the first
    drop_rare_classes: bool = False  # classes too small for every split: drop instead of failing
    max_chars: int = 5000  # longer texts are kept and flagged


@dataclass
class PreparedDataset:
    """A validated, cleaned and split dataset, ready for `core.data.datasets.import_dataset`."""

    task: TaskKind
    frame: pd.DataFrame
    mapping: dict[str, Any]
    stats: dict[str, Any]
    warnings: list[str]
    encoding: str | None
    source_filename: str
    content_hash: str
    items: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    # Writes the dataset's own files into its new folder (an image dataset's images): see write_dataset.
    files: Callable[[Path], None] | None = None
