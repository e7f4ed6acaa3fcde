"""Datasets from what users really upload: read, guess the mapping, validate, clean, split and store.

The page, the CLI and the demo loader share every step here; nothing is stored unless every check passes.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from core.errors import ProtolabError
from db.enums import TaskKind
from db.models import Dataset

SPLIT_NAMES = ("train", "validation", "test")
CANONICAL = ("text", "label", "user", "item", "rating", "timestamp", "split")
MAX_NAME_CHARS = 200
GUESS_SAMPLE = 5000

TEXT_NAMES = ("text", "review", "content", "sentence", "tweet", "comment", "body", "message", "document")
LABEL_NAMES = ("label", "sentiment", "class", "category", "target", "polarity", "rating", "y")
USER_WORDS = ("user", "customer", "client", "visitor", "member", "account", "person", "uid", "reader")
ITEM_WORDS = ("item", "product", "movie", "song", "track", "book", "article", "sku", "iid", "asin", "video",
              "game", "course", "film")
RATING_WORDS = ("rating", "score", "stars", "grade", "value", "preference")
TIME_WORDS = ("timestamp", "time", "date", "ts", "when", "created", "epoch")
TITLE_WORDS = ("title", "name")
DESCRIPTION_WORDS = ("description", "text", "overview", "plot", "summary", "synopsis", "content", "blurb")
GENRE_WORDS = ("genres", "genre", "categories", "category", "tags", "tag")


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

    def rows(self, positions: Sequence[int] | pd.Index, limit: int = 5) -> str:
        """'rows 4, 9 and 3 more': row numbers as the user counts them (header = row 1)."""
        numbers = [int(p) + 1 + self.header_rows for p in list(positions)[:limit]]
        word = "rows" if self.header_rows else "records"
        text = f"{word if len(numbers) > 1 else word[:-1]} {', '.join(map(str, numbers))}"
        more = len(positions) - len(numbers)
        return text + (f" and {more} more" if more > 0 else "")


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
    """A validated, cleaned and split dataset, ready for `import_dataset`."""

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


# --- reading ---------------------------------------------------------------------------------------

def read_table(source: bytes | str | Path, filename: str | None = None) -> ParsedTable:
    """Parse an upload (bytes, or a path given on the CLI) into a table, or raise DatasetError."""
    from core.data.reading import parse_upload

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


def parse_fractions(text: str) -> tuple[float, float, float]:
    """'0.8,0.1,0.1' -> (0.8, 0.1, 0.1), checked."""
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError as exc:
        raise DatasetError(f"--split must look like 0.8,0.1,0.1, got {text!r}") from exc
    if len(parts) != 3:
        raise DatasetError(f"--split needs three fractions (train,validation,test), got {text!r}")
    return SplitConfig(fractions=parts).fractions  # type: ignore[arg-type]


# --- guessing the mapping ------------------------------------------------------------------------------

def _numeric_share(col: pd.Series) -> float:
    values = col[as_text(col) != ""]
    if values.empty:
        return 0.0
    return float(pd.to_numeric(values, errors="coerce").notna().mean())


def _sample(frame: pd.DataFrame) -> pd.DataFrame:
    return frame if len(frame) <= GUESS_SAMPLE else frame.sample(GUESS_SAMPLE, random_state=0)


def _named(columns: Sequence[str], words: Sequence[str], exact: bool = False) -> list[str]:
    out = []
    for word in words:  # earlier words win
        for col in columns:
            low = col.lower()
            tokens = re.split(r"[^a-z0-9]+", low)
            if (low == word or (not exact and (word in tokens or low.startswith(word)))) and col not in out:
                out.append(col)
    return out


def guess_classification(frame: pd.DataFrame) -> ClassificationMapping:
    """The long free-text column is the text; a low-cardinality column (by name first) is the label."""
    sample = _sample(frame)
    texts = {c: as_text(sample[c]) for c in sample.columns}
    wordy = [c for c in sample.columns if _numeric_share(sample[c]) < 0.5]
    lengths = {c: float(texts[c].str.len().mean()) for c in wordy}
    text_col = next(iter(_named(wordy, TEXT_NAMES, exact=True)), None)
    if text_col is None and lengths:
        text_col = max(lengths, key=lambda c: lengths[c])
    n = len(sample)
    distinct = {c: texts[c][texts[c] != ""].nunique() for c in sample.columns if c != text_col}
    # A column named like a label is taken even with one class, so validation can say what is wrong.
    named = _named([c for c, k in distinct.items() if 1 <= k <= max(2, min(100, n // 2))], LABEL_NAMES)
    low_card = [c for c, k in distinct.items() if 2 <= k <= max(2, min(100, n // 2))]
    label_col = named[0] if named else min(low_card, key=lambda c: distinct[c], default=None)
    return ClassificationMapping(text=text_col, label=label_col)


def guess_interactions(frame: pd.DataFrame) -> InteractionsMapping:
    """user*/item* by name, then the first two columns; rating and timestamp only when their content fits."""
    sample = _sample(frame)
    cols = list(sample.columns)
    user = next(iter(_named(cols, USER_WORDS)), None)
    item = next(iter(c for c in _named(cols, ITEM_WORDS) if c != user), None)
    rest = [c for c in cols if c not in (user, item)]
    if user is None and rest:
        user = rest.pop(0)
    if item is None and rest:
        item = rest.pop(0)
    rating = next((c for c in _named(rest, RATING_WORDS) if _numeric_share(sample[c]) >= 0.95), None)
    stamp = next((c for c in _named(rest, TIME_WORDS) if c != rating and _time_like(sample[c])), None)
    return InteractionsMapping(user=user, item=item, rating=rating, timestamp=stamp)


def guess_catalogue(frame: pd.DataFrame, id_hint: str | None = None) -> CatalogueMapping:
    cols = list(frame.columns)
    item = id_hint if id_hint in cols else next(iter(_named(cols, ITEM_WORDS) + _named(cols, ("id",))), None)
    item = item or (cols[0] if cols else None)
    title = next((c for c in _named(cols, TITLE_WORDS) if c != item), None)
    text = next((c for c in _named(cols, DESCRIPTION_WORDS) if c not in (item, title)), None)
    genres = next((c for c in _named(cols, GENRE_WORDS) if c not in (item, title, text)), None)
    return CatalogueMapping(item=item, title=title, text=text, genres=genres)


def _time_like(col: pd.Series) -> bool:
    if _numeric_share(col) >= 0.95:
        return True
    values = as_text(col)
    parsed = pd.to_datetime(values[values != ""], errors="coerce", utc=True, format="mixed")
    return bool(len(parsed)) and float(parsed.notna().mean()) >= 0.95


# --- cleaning helpers ---------------------------------------------------------------------------------

def as_text(col: pd.Series) -> pd.Series:
    """Strings, stripped, with missing values as "" and integral floats without '.0' (labels 1, not 1.0)."""
    if pd.api.types.is_string_dtype(col.dtype) and not pd.api.types.is_object_dtype(col.dtype):
        return col.fillna("").str.strip()
    if pd.api.types.is_float_dtype(col.dtype):
        return col.map(lambda v: "" if pd.isna(v) else (str(int(v)) if float(v).is_integer() else str(v)))
    return col.map(_cell_text).astype(str)


def _cell_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace").strip()
    return str(value).strip()


def require_columns(table: ParsedTable, mapping: dict[str, str | None], optional: Sequence[str] = ()) -> None:
    cols = list(table.frame.columns)
    listed = ", ".join(cols[:20])
    for role, col in mapping.items():
        if col is None or col == "":
            if role in optional:
                continue
            raise DatasetError(f"{table.filename}: no column is mapped as {role}; columns are: {listed}")
        if col not in cols:
            raise DatasetError(f"{table.filename}: column '{col}' (mapped as {role}) is missing; columns are: {listed}")
    used = [c for c in mapping.values() if c]
    if len(used) != len(set(used)):
        raise DatasetError(f"{table.filename}: one column is mapped to two roles ({mapping}); pick distinct columns")


def extra_columns(frame: pd.DataFrame, used: Sequence[str | None]) -> pd.DataFrame:
    """Unmapped columns are kept (as text) but never clash with canonical names."""
    extra = frame.drop(columns=[c for c in used if c])
    extra = extra.rename(columns={c: f"orig_{c}" for c in extra.columns if c in CANONICAL})
    return pd.DataFrame({c: as_text(extra[c]) for c in extra.columns}, index=frame.index)


def content_digest(*frames: pd.DataFrame | None) -> str:
    """SHA-256 of column names and values (as text), independent of the file, encoding and split."""
    digest = hashlib.sha256()
    for frame in frames:
        if frame is None:
            continue
        for col in frame.columns:
            values = frame[col].astype(str)
            digest.update(f"\x1d{col}\x1e".encode())
            # Joining is several times faster than hashing row by row, and exact (no 64-bit row hashes).
            digest.update("\x1f".join(values.tolist()).encode("utf-8", errors="surrogatepass"))
    return digest.hexdigest()


# --- classification -----------------------------------------------------------------------------------

def prepare_classification(table: ParsedTable, mapping: ClassificationMapping, split: SplitConfig | None = None,
                           options: CleanOptions | None = None) -> PreparedDataset:
    """Validate and clean a text/label table, then split it stratified by label."""
    split = split or SplitConfig()
    options = options or CleanOptions()
    name, frame = table.filename, table.frame
    require_columns(table, {"text": mapping.text, "label": mapping.label})
    text, label = as_text(frame[mapping.text]), as_text(frame[mapping.label])
    if (text == "").all():
        raise DatasetError(f"{name}: every text in column '{mapping.text}' is empty")
    warnings: list[str] = []
    empty = (text == "") | (label == "")
    if empty.any():
        warnings.append(f"{name}: dropped {int(empty.sum())} rows with an empty text or label "
                        f"({table.rows(np.flatnonzero(empty.to_numpy()))})")
    out = pd.concat([pd.DataFrame({"text": text, "label": label}), extra_columns(frame, [mapping.text, mapping.label])],
                    axis=1)[~empty.to_numpy()]
    _require_classes(table, out, mapping.label, "after dropping empty rows" if empty.any() else "")
    codes = pd.factorize(out["text"])[0]  # once: duplicates and leakage both need it, and it is the slow part
    out["_code"] = codes
    dup = pd.Series(codes, index=out.index).duplicated(keep="first")
    n_dup = int(dup.sum())
    if n_dup and options.drop_duplicates:
        warnings.append(f"{name}: dropped {n_dup} exact duplicate texts ({table.rows(out.index[dup.to_numpy()])})")
        out = out[~dup.to_numpy()]
    elif n_dup:
        rows = table.rows(out.index[dup.to_numpy()])
        warnings.append(f"{name}: {n_dup} rows repeat an earlier text exactly ({rows}); "
                        "the 'drop duplicates' option removes them")
    long = out["text"].str.len() > options.max_chars
    if long.any():
        warnings.append(f"{name}: {int(long.sum())} texts are longer than {options.max_chars} characters "
                        f"({table.rows(out.index[long.to_numpy()])}); kept, models truncate them")
    out = _drop_or_reject_rare(table, out, mapping.label, split, options, warnings)
    out = out.assign(split=stratified_split(out["label"], split.fractions, split.seed)).reset_index(drop=True)
    stats = _classification_stats(out, n_dup, int(long.sum()), int(empty.sum()), warnings, name)
    out = out.drop(columns="_code")
    return PreparedDataset(
        task=TaskKind.CLASSIFICATION, frame=out, mapping={**asdict(mapping), **mapping_meta(table, split, options)},
        stats=stats, warnings=warnings, encoding=table.encoding, source_filename=name,
        content_hash=content_digest(out.drop(columns="split")), notes=list(table.notes))


def _require_classes(table: ParsedTable, out: pd.DataFrame, col: str, when: str) -> None:
    classes = out["label"].value_counts()
    if len(classes) < 2:
        found = ", ".join(f"'{c}'" for c in classes.index[:1]) or "none"
        raise DatasetError(f"{table.filename}: column '{col}' has {len(classes)} class ({found})"
                           f"{' ' + when if when else ''}; at least 2 classes are needed")


def _drop_or_reject_rare(table: ParsedTable, out: pd.DataFrame, col: str, split: SplitConfig,
                         options: CleanOptions, warnings: list[str]) -> pd.DataFrame:
    splits = [n for n, f in zip(SPLIT_NAMES, split.fractions, strict=True) if f > 0]
    counts = out["label"].value_counts()
    rare = counts[counts < len(splits)]
    if rare.empty:
        return out
    if not options.drop_rare_classes:
        label = rare.index[0]
        rows = table.rows(out.index[(out["label"] == label).to_numpy()])
        others = f" (and {len(rare) - 1} more such classes)" if len(rare) > 1 else ""
        raise DatasetError(
            f"{table.filename}: class '{label}' in column '{col}' has only {rare.iloc[0]} row(s) ({rows}){others}; "
            f"each class needs at least {len(splits)} to appear in {', '.join(splits)}. "
            "Drop such classes (option 'drop rare classes') or add rows")
    kept = out[~out["label"].isin(rare.index).to_numpy()]
    warnings.append(f"{table.filename}: dropped {len(rare)} classes too small for every split "
                    f"({', '.join(map(str, rare.index[:5]))}; {int(rare.sum())} rows)")
    _require_classes(table, kept, col, "after dropping rare classes")
    return kept


def stratified_split(labels: pd.Series, fractions: Sequence[float], seed: int) -> np.ndarray:
    """Per class: shuffle with `seed`, then give each non-empty split at least one row."""
    rng = np.random.default_rng(seed)
    codes, uniques = pd.factorize(labels, sort=True)
    out = np.full(len(labels), "train", dtype=object)
    for c in range(len(uniques)):
        idx = np.flatnonzero(codes == c)
        rng.shuffle(idx)
        n_train, n_val, _ = allocate(len(idx), fractions)
        out[idx[n_train:n_train + n_val]] = "validation"
        out[idx[n_train + n_val:]] = "test"
    return out


def allocate(n: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    """Row counts (train, validation, test) for `n` rows; non-zero fractions get >= 1 row when n allows."""
    n_val = max(1, round(n * fractions[1])) if fractions[1] > 0 else 0
    n_test = max(1, round(n * fractions[2])) if fractions[2] > 0 else 0
    while n - n_val - n_test < 1 and (n_val or n_test):
        if n_val >= n_test:
            n_val -= 1
        else:
            n_test -= 1
    return n - n_val - n_test, n_val, n_test


def _classification_stats(out: pd.DataFrame, n_dup: int, n_long: int, n_empty: int, warnings: list[str],
                          name: str) -> dict[str, Any]:
    classes = {str(k): int(v) for k, v in out["label"].value_counts().items()}
    per_split = {s: {str(k): int(v) for k, v in g.value_counts().items()} for s, g in out.groupby("split")["label"]}
    codes = out["_code"].to_numpy()
    repeated = out[np.bincount(codes)[codes] > 1]  # only repeated texts can leak
    in_splits = repeated.groupby("_code")["split"].nunique()
    leaked = int((in_splits > 1).sum())
    if leaked:
        warnings.append(f"{name}: {leaked} texts appear in more than one split (leakage); "
                        "drop duplicates to avoid it")
    ratio = max(classes.values()) / min(classes.values())
    if ratio >= 10:
        warnings.append(f"{name}: classes are imbalanced: the largest is {ratio:.0f}x the smallest")
    lengths = out["text"].str.len()
    return {"classes": classes, "classes_per_split": per_split, "duplicates": n_dup, "long_texts": n_long,
            "dropped_empty": n_empty, "leaked_texts": leaked, "imbalance_ratio": round(ratio, 2),
            "text_chars": {"mean": round(float(lengths.mean()), 1), "median": float(lengths.median()),
                           "p95": round(float(lengths.quantile(0.95)), 1), "max": int(lengths.max())}}


def mapping_meta(table: ParsedTable, split: SplitConfig, options: CleanOptions | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"split": {"fractions": list(split.fractions), "seed": split.seed, "method": split.method},
                            "format": table.file_format}
    if options is not None:
        meta["options"] = asdict(options)
    return meta


# --- interactions (core/interactions.py does the work) -------------------------------------------------

def prepare_interactions(table: ParsedTable, mapping: InteractionsMapping, split: SplitConfig | None = None,
                         items: ParsedTable | None = None,
                         items_mapping: CatalogueMapping | None = None) -> PreparedDataset:
    """Validate and clean user/item interactions (plus an optional catalogue), then split per user."""
    from core.data.interactions import prepare_interactions as prepare

    return prepare(table, mapping, split, items, items_mapping)


# --- storing, listing, renaming, deleting -------------------------------------------------------------

def check_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise DatasetError("a dataset needs a name")
    if len(name) > MAX_NAME_CHARS:
        raise DatasetError(f"a dataset name has at most {MAX_NAME_CHARS} characters")
    return name


def find_same_content(s: Session, prepared: PreparedDataset) -> Dataset | None:
    """The stored dataset with exactly this content, if any (re-upload detection)."""
    from db import datasets as dataset_queries

    return dataset_queries.find_by_hash(s, prepared.content_hash, prepared.task)


def import_dataset(s: Session, prepared: PreparedDataset, *, name: str, allow_duplicate: bool = False) -> Dataset:
    """Store a prepared dataset through core.data.storage (all-or-nothing) in the caller's transaction."""
    from core.data.storage import write_dataset
    from db import datasets as dataset_queries

    name = check_name(name)
    if dataset_queries.get_dataset_by_name(s, name) is not None:
        raise DatasetError(f"a dataset named '{name}' already exists; choose another name")
    existing = find_same_content(s, prepared)
    if existing is not None and not allow_duplicate:
        raise DuplicateContent(existing.id, existing.name)
    return write_dataset(
        s, name=name, task=prepared.task, frame=prepared.frame, mapping=prepared.mapping, items=prepared.items,
        encoding=prepared.encoding, source_filename=prepared.source_filename, stats=prepared.stats,
        warnings=[*prepared.notes, *prepared.warnings], hash_=prepared.content_hash)


def rename_dataset(s: Session, dataset_id: int, new_name: str) -> Dataset:
    from db import datasets as dataset_queries

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
    from db import datasets as dataset_queries

    return [r.id for r in dataset_queries.runs_using(s, dataset_id)]


def delete_dataset(dataset_id: int) -> list[int]:
    """Delete a dataset, its runs and their files; refuses while one of its runs is active. Returns run ids."""
    from core.data.storage import delete_dataset_files
    from core.settings import run_dir
    from db import datasets as dataset_queries
    from db import session_scope

    with session_scope() as s:
        dataset = _get(s, dataset_id)
        runs = dataset_queries.runs_using(s, dataset_id)
        active = [r.id for r in runs if r.status.is_active]
        if active:
            raise DatasetError(f"dataset '{dataset.name}' is used by active runs {', '.join(map(str, active))}; "
                               "cancel them first")
        run_ids = [r.id for r in runs]
        dataset_queries.delete_dataset(s, dataset)
    delete_dataset_files(dataset_id)
    for run_id in run_ids:
        import shutil

        shutil.rmtree(run_dir(run_id), ignore_errors=True)
    return run_ids


def _get(s: Session, dataset_id: int) -> Dataset:
    from db import datasets as dataset_queries

    dataset = dataset_queries.get_dataset(s, dataset_id)
    if dataset is None:
        raise DatasetError(f"no dataset with id {dataset_id}")
    return dataset


def summarize(dataset: Dataset) -> dict[str, Any]:
    """The JSON shape of a stored dataset (CLI `show --json`, page header)."""
    stats = dataset.stats or {}
    out: dict[str, Any] = {
        "id": dataset.id, "name": dataset.name, "task": dataset.task.value, "rows": dataset.row_count,
        "splits": dataset.split_counts or {}, "encoding": dataset.encoding, "warnings": dataset.warnings or [],
        "mapping": dataset.mapping or {}, "content_hash": dataset.content_hash,
        "source_filename": dataset.source_filename, "created_at": dataset.created_at}
    if dataset.task == TaskKind.CLASSIFICATION:
        out["classes"] = stats.get("classes", {})
    else:
        for key in ("users", "items", "interactions", "sparsity", "catalogue_items"):
            if key in stats:
                out[key] = stats[key]
    out["stats"] = stats
    return out
