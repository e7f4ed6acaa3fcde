"""Interaction datasets: validate, de-duplicate and split user-item events, plus their item catalogue.

The page, the CLI and the demo loader call prepare_interactions, then core.data.datasets.import_dataset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd

from core.data.mapping import as_text, extra_columns, guess_catalogue, mapping_meta, require_columns
from core.data.storage import content_digest
from core.data.types import (
    CatalogueMapping,
    DatasetError,
    InteractionsMapping,
    ParsedTable,
    PreparedDataset,
    SplitConfig,
)
from db.enums import TaskKind

# --- interactions --------------------------------------------------------------------------------------

# A little over the usual size: the checks run in the order a user fixes them, each naming rows, then the split.
def prepare_interactions(table: ParsedTable, mapping: InteractionsMapping, split: SplitConfig | None = None,
                         items: ParsedTable | None = None,
                         items_mapping: CatalogueMapping | None = None) -> PreparedDataset:
    """Validate and clean user/item interactions (plus an optional catalogue), then split per user."""
    split = split or SplitConfig(method="random")
    if split.method == "stratified":
        split = SplitConfig(fractions=split.fractions, seed=split.seed, method="random")
    name, frame = table.filename, table.frame
    require_columns(table, asdict(mapping), optional=("rating", "timestamp"))
    if split.method == "time" and not mapping.timestamp:
        raise DatasetError(f"{name}: the leave-last-out split orders by time and needs a timestamp column")
    out = pd.DataFrame({"user": as_text(frame[mapping.user]), "item": as_text(frame[mapping.item])})
    missing = (out["user"] == "") | (out["item"] == "")
    if mapping.rating:
        out["rating"] = _ratings(table, frame[mapping.rating], mapping.rating)
        missing |= out["rating"].isna()
    if mapping.timestamp:
        out["timestamp"] = _to_seconds(table, frame[mapping.timestamp], mapping.timestamp)
        missing |= out["timestamp"].isna()
    roles = ", ".join(r for r, c in asdict(mapping).items() if c)
    if missing.all():
        raise DatasetError(f"{name}: no usable rows: every row misses one of {roles}")
    warnings: list[str] = []
    if missing.any():
        warnings.append(f"{name}: dropped {int(missing.sum())} rows with an empty {roles.replace(', ', ' or ')} "
                        f"({table.rows(np.flatnonzero(missing.to_numpy()))})")
    out = pd.concat([out, extra_columns(frame, list(asdict(mapping).values()))], axis=1)[~missing.to_numpy()]
    if mapping.timestamp:
        out["timestamp"] = out["timestamp"].astype("int64")
    out, n_pairs = _dedupe_pairs(table, out, bool(mapping.timestamp), warnings)
    per_user, per_item = out["user"].value_counts(), out["item"].value_counts()
    if len(per_user) < 2 or len(per_item) < 2:
        raise DatasetError(f"{name}: {len(per_user)} user(s) and {len(per_item)} item(s) in columns "
                           f"'{mapping.user}'/'{mapping.item}'; recommendations need at least 2 of each")
    single_users, single_items = int((per_user == 1).sum()), int((per_item == 1).sum())
    if single_users:
        warnings.append(f"{name}: {single_users} users have a single interaction (kept in train only)")
    if single_items:
        warnings.append(f"{name}: {single_items} items have a single interaction")
    key = out["timestamp"] if split.method == "time" else None
    out = out.assign(split=per_user_split(out["user"], split.fractions, split.seed, key)).reset_index(drop=True)
    catalogue, meta = None, mapping_meta(table, split, None)
    if items is not None:
        items_mapping = items_mapping or guess_catalogue(items.frame)
        catalogue = prepare_catalogue(items, items_mapping, warnings)
        _check_catalogue_overlap(table, items, out, catalogue, warnings)
        meta["items"] = {**asdict(items_mapping), "source": items.filename}
    n_users, n_items = len(per_user), len(per_item)
    stats: dict[str, Any] = {
        "users": n_users, "items": n_items, "interactions": len(out),
        "sparsity": round(1 - len(out) / (n_users * n_items), 6), "duplicate_pairs": n_pairs,
        "single_interaction_users": single_users, "single_interaction_items": single_items,
        "split_method": split.method}
    if mapping.rating:
        stats["rating"] = {"min": float(out["rating"].min()), "max": float(out["rating"].max()),
                           "mean": round(float(out["rating"].mean()), 4)}
    if catalogue is not None:
        stats["catalogue_items"] = len(catalogue)
    return PreparedDataset(
        task=TaskKind.INTERACTIONS, frame=out, mapping={**asdict(mapping), **meta}, stats=stats, warnings=warnings,
        encoding=table.encoding, source_filename=name, items=catalogue,
        content_hash=content_digest(out.drop(columns="split"), catalogue), notes=list(table.notes))


def _ratings(table: ParsedTable, raw: pd.Series, col: str) -> pd.Series:
    text = as_text(raw)
    numbers = pd.to_numeric(text.where(text != ""), errors="coerce").astype("float64")
    bad = numbers.isna() & (text != "")
    if bad.any():
        examples = ", ".join(f"'{v}'" for v in text[bad].unique()[:3])
        raise DatasetError(f"{table.filename}: column '{col}' (mapped as rating) has non-numeric values "
                           f"({examples}) in {table.rows(np.flatnonzero(bad.to_numpy()))}; "
                           "map no rating column or fix those rows")
    return numbers


_EPOCH = pd.Timestamp(0, tz="UTC")


def _to_seconds(table: ParsedTable, raw: pd.Series, col: str) -> pd.Series:
    """Unix seconds from numbers (seconds or milliseconds) or date strings; NaN where empty."""
    text = as_text(raw)
    present = text != ""
    numbers = pd.to_numeric(text.where(present), errors="coerce").astype("float64")
    if numbers[present].notna().all():
        if numbers[present].abs().median() > 1e11:  # milliseconds since the epoch
            numbers = numbers / 1000
        return numbers.floordiv(1)
    parsed = pd.to_datetime(text.where(present), errors="coerce", utc=True, format="mixed")
    bad = parsed.isna() & present
    if bad.any():
        examples = ", ".join(f"'{v}'" for v in text[bad].unique()[:3])
        raise DatasetError(f"{table.filename}: column '{col}' (mapped as timestamp) has values that are neither "
                           f"numbers nor dates ({examples}) in {table.rows(np.flatnonzero(bad.to_numpy()))}")
    return (parsed - _EPOCH).dt.total_seconds().floordiv(1)


def _dedupe_pairs(table: ParsedTable, out: pd.DataFrame, by_time: bool,
                  warnings: list[str]) -> tuple[pd.DataFrame, int]:
    ordered = out.sort_values("timestamp", kind="stable") if by_time else out
    dup = ordered.duplicated(["user", "item"], keep="last")
    n = int(dup.sum())
    if n:
        which = "the latest by timestamp" if by_time else "the last in the file"
        rows = table.rows(ordered.index[dup.to_numpy()])
        warnings.append(f"{table.filename}: {n} repeated (user, item) pairs ({rows}); kept {which}")
    return ordered[~dup.to_numpy()].sort_index(), n


def per_user_split(users: pd.Series, fractions: Sequence[float], seed: int,
                   timestamps: pd.Series | None = None) -> np.ndarray:
    """Per user: random held-out share (timestamps None) or leave-last-out by time (last -> test, previous ->
    validation). Users keep at least one interaction in train."""
    codes = pd.factorize(users)[0]
    position = np.arange(len(codes))
    key = timestamps.to_numpy(dtype="float64") if timestamps is not None \
        else np.random.default_rng(seed).random(len(codes))
    order = np.lexsort((-position, -key, codes))  # by user, then newest (or random) first
    sorted_codes = codes[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_codes)) + 1]
    sizes = np.diff(np.r_[starts, len(order)])
    rank = position - np.repeat(starts, sizes)
    n = np.repeat(sizes, sizes)
    f_val, f_test = fractions[1], fractions[2]
    if timestamps is not None:
        n_test = ((n >= 2) & (f_test > 0)).astype(int)
        n_val = ((n >= 3) & (f_val > 0)).astype(int)
    else:
        n_test = np.where((n >= 2) & (f_test > 0), np.maximum(1, np.round(n * f_test)), 0).astype(int)
        n_val = np.where((n >= 3) & (f_val > 0), np.maximum(1, np.round(n * f_val)), 0).astype(int)
        n_test = np.minimum(n_test, n - 1)
        n_val = np.minimum(n_val, np.maximum(0, n - 1 - n_test))
    labels = np.where(rank < n_test, "test", np.where(rank < n_test + n_val, "validation", "train"))
    out = np.empty(len(order), dtype=object)
    out[order] = labels
    return out


def prepare_catalogue(table: ParsedTable, mapping: CatalogueMapping, warnings: list[str]) -> pd.DataFrame:
    """Canonical catalogue: item, title (+ text, genres, other columns as text); duplicate ids keep the first."""
    name, frame = table.filename, table.frame
    require_columns(table, {"item id": mapping.item, "title": mapping.title, "text": mapping.text,
                     "genres": mapping.genres}, optional=("text", "genres"))
    out = pd.DataFrame({"item": as_text(frame[mapping.item]), "title": as_text(frame[mapping.title])})
    for role in ("text", "genres"):
        if getattr(mapping, role):
            out[role] = as_text(frame[getattr(mapping, role)])
    out = pd.concat([out, extra_columns(frame, list(asdict(mapping).values()))], axis=1)
    empty = out["item"] == ""
    if empty.all():
        raise DatasetError(f"{name}: every item id in column '{mapping.item}' is empty")
    if empty.any():
        warnings.append(f"{name}: dropped {int(empty.sum())} catalogue rows without an item id "
                        f"({table.rows(np.flatnonzero(empty.to_numpy()))})")
        out = out[~empty.to_numpy()]
    dup = out["item"].duplicated(keep="first")
    if dup.any():
        warnings.append(f"{name}: {int(dup.sum())} repeated item ids ({table.rows(out.index[dup.to_numpy()])}); "
                        "kept the first")
        out = out[~dup.to_numpy()]
    untitled = out["title"] == ""
    if untitled.any():
        warnings.append(f"{name}: {int(untitled.sum())} items have no title; their id is shown instead")
        out.loc[untitled, "title"] = out.loc[untitled, "item"]
    return out.reset_index(drop=True)


def _check_catalogue_overlap(table: ParsedTable, items: ParsedTable, out: pd.DataFrame, catalogue: pd.DataFrame,
                             warnings: list[str]) -> None:
    known = set(catalogue["item"])
    used = out["item"].unique()
    missing = [i for i in used if i not in known]
    if len(missing) == len(used):
        raise DatasetError(f"{items.filename}: none of the {len(used)} items of {table.filename} are in the catalogue "
                           f"(e.g. '{used[0]}' vs '{catalogue['item'].iloc[0]}'); check the item id columns")
    if missing:
        warnings.append(f"{items.filename}: {len(missing)} items with interactions are not in the catalogue "
                        f"(e.g. {', '.join(map(str, missing[:3]))})")
