"""Classification datasets: validate and clean a text/label table, split it by label, and describe it.

Every rejection is a DatasetError naming the file, column and rows; warnings are kept with the dataset.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd

from core.data.mapping import (
    as_text,
    container_share,
    extra_columns,
    label_candidates,
    mapping_meta,
    max_plausible_classes,
    require_columns,
    unescape_html,
)
from core.data.splits import split_by_label
from core.data.storage import content_digest
from core.data.types import (
    SPLIT_NAMES,
    ClassificationMapping,
    CleanOptions,
    DatasetError,
    ParsedTable,
    PreparedDataset,
    SplitConfig,
)
from db.enums import TaskKind


def prepare_classification(table: ParsedTable, mapping: ClassificationMapping, split: SplitConfig | None = None,
                           options: CleanOptions | None = None) -> PreparedDataset:
    """Validate and clean a text/label table, then split it stratified by label."""
    split = split or SplitConfig()
    options = options or CleanOptions()
    name, frame = table.filename, table.frame
    require_columns(table, {"text": mapping.text, "label": mapping.label})
    _require_plain_label(table, mapping)
    text, label = as_text(frame[mapping.text]), as_text(frame[mapping.label])
    text, unescaped = unescape_html(text, name)
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
    _require_plausible_classes(table, out, mapping)
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
    out = out.assign(split=split_by_label(out["label"], split.fractions, split.seed)).reset_index(drop=True)
    stats = _classification_stats(out, n_dup, int(long.sum()), int(empty.sum()), warnings, name)
    out = out.drop(columns="_code")
    return PreparedDataset(
        task=TaskKind.CLASSIFICATION, frame=out, mapping={**asdict(mapping), **mapping_meta(table, split, options)},
        stats=stats, warnings=warnings, encoding=table.encoding, source_filename=name,
        content_hash=content_digest(out.drop(columns="split")), notes=[*table.notes, *filter(None, [unescaped])])


def _instead(table: ParsedTable, mapping: ClassificationMapping) -> str:
    """'pick X or Y instead', or why nothing fits: the end of every 'not a label column' message."""
    fits = label_candidates(table.frame, exclude=[mapping.text, mapping.label])[:5]
    if fits:
        return "pick a label column with a few repeated values instead, e.g. " + ", ".join(f"'{c}'" for c in fits)
    return ("no column has a few repeated values that could be classes; add a label column "
            "(a few classes, each on several rows)")


def _require_plain_label(table: ParsedTable, mapping: ClassificationMapping) -> None:
    # JSON objects/lists (nested data, or struct cells from Parquet) would make one "class" per distinct dict.
    col = table.frame[mapping.label]
    if container_share(col) > 0.5:
        raise DatasetError(f"{table.filename}: column '{mapping.label}' holds JSON objects or lists, not class "
                           f"names; {_instead(table, mapping)}")


def _require_plausible_classes(table: ParsedTable, out: pd.DataFrame, mapping: ClassificationMapping) -> None:
    n_classes, limit = out["label"].nunique(), max_plausible_classes(len(out))
    if n_classes > limit:
        raise DatasetError(f"{table.filename}: column '{mapping.label}' has {n_classes:,} different values in "
                           f"{len(out):,} rows (at most {limit} classes are plausible): it looks like an id or "
                           f"free text, not a label; {_instead(table, mapping)}")


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
