"""Scoring a whole uploaded file with a served run: pick the text column, score in batches, summarise.

Reading reuses the dataset importer's reader (formats, encodings); results download as a formula-safe CSV.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.data.datasets import read_table
from core.data.spreadsheet import to_safe_csv
from core.data.types import DatasetError
from core.errors import ProtolabError
from core.text.serving import TextClassifier

MAX_ROWS = 200_000  # beyond this the demo is the wrong tool: train/evaluate handles whole datasets
CHUNK_ROWS = 512  # rows per progress step; the classifier buckets by length inside each chunk
TEXT_HINTS = ("text", "review", "content", "sentence", "tweet", "comment", "body", "message", "feedback")

Progress = Callable[[float, str], None]


class BatchInputError(ProtolabError):
    """An upload that cannot be scored (unreadable, no text column, too many rows)."""


@dataclass(frozen=True)
class BatchResult:
    frame: pd.DataFrame  # the upload plus predicted_label, confidence, truncated and one p_<label> per class
    label_counts: dict[str, int]
    scored: int
    empty: int  # rows whose text was blank: left unscored
    truncated: int
    text_column: str


def read_upload(data: bytes | Path, filename: str) -> pd.DataFrame:
    """CSV/TSV/Excel/JSON/Parquet bytes (or a file the CLI was given) as a frame, or BatchInputError."""

    try:
        frame = read_table(data, filename).frame
    except DatasetError as exc:
        raise BatchInputError(str(exc)) from exc
    if frame.empty:
        raise BatchInputError(f"{filename}: the file has no rows to score")
    if len(frame) > MAX_ROWS:
        raise BatchInputError(f"{filename}: {len(frame):,} rows is more than the demo scores at once "
                              f"({MAX_ROWS:,}); split the file or evaluate it as a dataset")
    return frame


def scorable_columns(frame: pd.DataFrame, filename: str) -> list[str]:
    """The text columns of an upload to score, likeliest first; BatchInputError when it has none."""
    columns = text_columns(frame)
    if not columns:
        raise BatchInputError(f"{filename} has no column with text to score (columns: "
                              f"{', '.join(map(str, frame.columns))}). Put one review per row in a text column.")
    return columns


def text_columns(frame: pd.DataFrame) -> list[str]:
    """Columns that hold free text (mostly non-numeric, non-blank), likeliest first."""
    found = []
    for column in frame.columns:
        values = frame[column].dropna().astype(str).str.strip()
        values = values[values != ""]
        if values.empty:
            continue
        numeric = pd.to_numeric(values.head(2000), errors="coerce").notna().mean()
        if numeric > 0.5:
            continue
        named = any(hint in str(column).lower() for hint in TEXT_HINTS)
        found.append((not named, -values.head(2000).str.len().mean(), str(column)))
    return [column for *_, column in sorted(found)]


def check_text_column(frame: pd.DataFrame, column: str | None) -> str:
    """The column to score, or BatchInputError naming what the file does have."""
    usable = text_columns(frame)
    if not usable:
        raise BatchInputError(f"no column of this file holds text to score (columns: "
                              f"{', '.join(map(str, frame.columns))}); put one review per row in a text column")
    if column is None:
        return usable[0]
    if column not in frame.columns:
        raise BatchInputError(f"no column named {column!r}; text columns here: {', '.join(usable)}")
    if column not in usable:
        raise BatchInputError(f"column {column!r} holds no text (numbers or blanks only); "
                              f"text columns here: {', '.join(usable)}")
    return column


def score_frame(classifier: TextClassifier, frame: pd.DataFrame, text_column: str, *,
                on_progress: Progress = lambda fraction, text: None, chunk_rows: int = CHUNK_ROWS) -> BatchResult:
    """Predict every non-blank row of `text_column`, reporting progress after each chunk."""
    text_column = check_text_column(frame, text_column)
    texts = frame[text_column].astype("string").fillna("").str.strip()
    todo = np.flatnonzero((texts != "").to_numpy())
    proba = np.full((len(frame), len(classifier.labels)), np.nan)
    cut = np.zeros(len(frame), dtype=bool)
    on_progress(0.0, f"Scoring {len(todo):,} texts…")
    for done, start in enumerate(range(0, len(todo), chunk_rows), start=1):
        rows = todo[start:start + chunk_rows]
        proba[rows], cut[rows] = classifier.score(texts.iloc[rows].tolist())
        scored = min(len(todo), done * chunk_rows)
        on_progress(scored / len(todo), f"Scored {scored:,} of {len(todo):,} texts")
    return _result(classifier, frame, text_column, proba, cut, todo)


def _result(classifier: TextClassifier, frame: pd.DataFrame, text_column: str, proba: np.ndarray,
            cut: np.ndarray, todo: np.ndarray) -> BatchResult:
    out = frame.copy()
    has = np.zeros(len(frame), dtype=bool)
    has[todo] = True
    labels = np.asarray(classifier.labels, dtype=object)
    best = np.nan_to_num(proba, nan=-1.0).argmax(axis=1)
    out[_free(out, "predicted_label")] = pd.array(np.where(has, labels[best], None), dtype="string")
    confidence = np.full(len(frame), np.nan)
    confidence[has] = proba[has].max(axis=1)
    out[_free(out, "confidence")] = confidence
    for i, label in enumerate(classifier.labels):
        out[_free(out, f"p_{label}")] = proba[:, i]
    out[_free(out, "truncated")] = cut
    counts = pd.Series(labels[best[has]]).value_counts()
    label_counts = {label: int(counts.get(label, 0)) for label in classifier.labels}
    return BatchResult(frame=out, label_counts=label_counts, scored=int(has.sum()), empty=int((~has).sum()),
                       truncated=int(cut.sum()), text_column=text_column)


def _free(frame: pd.DataFrame, name: str) -> str:
    # Never overwrite a column the user uploaded (a file may already have "confidence").
    candidate, n = name, 1
    while candidate in frame.columns:
        n += 1
        candidate = f"{name}_{n}"
    return candidate


def results_csv(result: BatchResult) -> bytes:
    """The scored table as a CSV that no spreadsheet runs as formulas."""
    return to_safe_csv(result.frame)
