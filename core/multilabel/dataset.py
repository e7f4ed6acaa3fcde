"""Multi-label datasets: validate a text/tag-set table, split it with iterative stratification, and profile it.

Stored columns: text (str), labels (a JSON list of tags, `labels.encode`), row_id, split, plus the unmapped ones.
Every rejection is a DatasetError saying what is wrong and on which rows; warnings are kept with the dataset.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.data.datasets import read_table
from core.data.mapping import as_text, extra_columns, guess_classification, mapping_meta
from core.data.storage import ROW_ID, content_digest
from core.data.types import SPLIT_NAMES, DatasetError, ParsedTable, PreparedDataset, SplitConfig
from core.multilabel.labels import (
    DELIMITED,
    JSON_LIST,
    ONE_HOT,
    TagFormat,
    binary_columns,
    decode,
    encode,
    guess_format,
    guess_tag_column,
    looks_like_tag_sets,
    merge_similar,
    parse_tags,
    similar_tags,
    tag_counts,
    to_matrix,
)
from db.enums import TaskKind

LABELS = "labels"  # the stored column of tag sets
MAX_COOCCURRENCE_TAGS = 30  # the heatmap shows the most frequent tags only: 100 x 100 cells say nothing


@dataclass(frozen=True)
class MultilabelMapping:
    text: str | None
    tags: TagFormat


@dataclass(frozen=True)
class MultilabelOptions:
    merge_similar: bool = False  # tags that differ only by case or spaces become one (the most used spelling)
    drop_rare: bool = False  # tags on too few rows for every split are removed from their rows
    drop_constant: bool = False  # a tag on every row is removed (it tells a model nothing)
    drop_duplicates: bool = False


def guess_multilabel(frame: pd.DataFrame) -> MultilabelMapping:
    """The text column as for classification; tags from a column named or shaped like tag sets, else the 0/1
    columns (one-hot)."""
    text = guess_classification(frame).text
    column = guess_tag_column(frame, text)
    if column is not None:
        return MultilabelMapping(text, guess_format(frame[column]))
    ones = binary_columns(frame, exclude=[text])
    return MultilabelMapping(text, TagFormat(ONE_HOT, columns=tuple(ones)))


def claims_upload(data: bytes, filename: str) -> bool:
    """The task entry's `claims`: an upload whose table holds tag sets, so the Datasets page picks multi-label."""
    try:
        frame = read_table(data, filename).frame
    except DatasetError:
        return False  # not a table (an image ZIP, a binary file): another task's, or the page says what is wrong
    return looks_like_tag_sets(frame, guess_classification(frame).text)


def rows_needed(split: SplitConfig) -> int:
    """Rows a tag needs to appear in every split that gets rows."""
    return sum(1 for f in split.fractions if f > 0)


def prepare_multilabel(table: ParsedTable, mapping: MultilabelMapping, split: SplitConfig | None = None,
                       options: MultilabelOptions | None = None) -> PreparedDataset:
    """Validate and clean a text/tag-set table, then split it so each tag is in every split where it can be."""
    split, options = split or SplitConfig(), options or MultilabelOptions()
    name, frame = table.filename, table.frame
    if mapping.text is None or mapping.text not in frame.columns:
        listed = ", ".join(map(str, list(frame.columns)[:20]))
        raise DatasetError(f"{name}: no text column {'named ' + repr(mapping.text) if mapping.text else 'is chosen'}"
                           f"; columns are: {listed}")
    if mapping.text in mapping.tags.columns:
        raise DatasetError(f"{name}: column '{mapping.text}' is mapped as both the text and tags")
    tag_sets = parse_tags(table, mapping.tags)
    text = as_text(frame[mapping.text])
    warnings: list[str] = []
    empty = (text == "").to_numpy()
    if empty.all():
        raise DatasetError(f"{name}: every text in column '{mapping.text}' is empty")
    if empty.any():
        warnings.append(f"{name}: dropped {int(empty.sum())} rows with an empty text "
                        f"({table.rows(np.flatnonzero(empty))})")
    keep = np.flatnonzero(~empty)
    tag_sets = [tag_sets[i] for i in keep]
    tag_sets = _check_similar(table, tag_sets, keep, options, warnings)
    tag_sets = _check_rare(table, tag_sets, keep, split, options, warnings)
    tag_sets = _check_constant(table, tag_sets, options, warnings)
    counts = tag_counts(tag_sets)
    if len(counts) < 2:
        found = ", ".join(f"'{t}'" for t in counts) or "none"
        raise DatasetError(f"{name}: the tags ({mapping.tags.describe()}) hold {len(counts)} different tag "
                           f"({found}); at least 2 are needed")
    out = pd.concat([pd.DataFrame({"text": text.iloc[keep].to_numpy(), LABELS: [encode(t) for t in tag_sets]},
                                  index=frame.index[keep]),
                     extra_columns(frame, [mapping.text, *mapping.tags.columns]).iloc[keep]], axis=1)
    out[ROW_ID] = keep.astype(np.int64)
    dup = out["text"].duplicated(keep="first").to_numpy()
    if dup.any() and options.drop_duplicates:
        warnings.append(f"{name}: dropped {int(dup.sum())} exact duplicate texts ({table.rows(out.index[dup])})")
        out, tag_sets = out[~dup], [t for t, d in zip(tag_sets, dup, strict=True) if not d]
    elif dup.any():
        warnings.append(f"{name}: {int(dup.sum())} rows repeat an earlier text exactly ({table.rows(out.index[dup])}); "
                        "the 'drop duplicates' option removes them")
    tags = list(tag_counts(tag_sets))
    y = to_matrix(tag_sets, tags)
    out = out.assign(split=iterative_split(y, split)).reset_index(drop=True)
    warnings += missing_from_splits(out, tags, y)
    stats = multilabel_stats(out, tag_sets, tags, mapping.tags, int(dup.sum()), int(empty.sum()))
    meta = {"text": mapping.text, "tags": {**asdict(mapping.tags), "columns": list(mapping.tags.columns)},
            "label": LABELS, **mapping_meta(table, split, None), "options": asdict(options)}
    return PreparedDataset(task=TaskKind.MULTILABEL, frame=out, mapping=meta, stats=stats, warnings=warnings,
                           encoding=table.encoding, source_filename=name,
                           content_hash=content_digest(out.drop(columns="split")), notes=list(table.notes))


def _rows_with(tag_sets: list[list[str]], wanted: set[str], keep: np.ndarray) -> np.ndarray:
    return keep[[i for i, tags in enumerate(tag_sets) if wanted & set(tags)]]


def _check_similar(table: ParsedTable, tag_sets: list[list[str]], keep: np.ndarray, options: MultilabelOptions,
                   warnings: list[str]) -> list[list[str]]:
    groups = similar_tags(tag_sets)
    if not groups:
        return tag_sets
    if options.merge_similar:
        merged, renames = merge_similar(tag_sets)
        warnings.append(f"{table.filename}: merged {len(renames)} tag spellings that differ only by case or spaces "
                        f"({', '.join(f'{a!r} -> {b!r}' for a, b in list(renames.items())[:5])})")
        return merged
    first = next(iter(groups.values()))
    rows = table.rows(_rows_with(tag_sets, set(first[1:]), keep))
    more = f" (and {len(groups) - 1} more such groups)" if len(groups) > 1 else ""
    raise DatasetError(f"{table.filename}: tags {' and '.join(repr(t) for t in first)} differ only by case or spaces "
                       f"({repr(first[1])} on {rows}){more}; merge them (option 'merge tags that differ only by case "
                       "or spaces') or fix the file")


def _check_rare(table: ParsedTable, tag_sets: list[list[str]], keep: np.ndarray, split: SplitConfig,
                options: MultilabelOptions, warnings: list[str]) -> list[list[str]]:
    needed = rows_needed(split)
    counts = tag_counts(tag_sets)
    rare = {t: n for t, n in counts.items() if n < needed}
    if not rare:
        return tag_sets
    if options.drop_rare:
        warnings.append(f"{table.filename}: removed {len(rare)} tags on fewer than {needed} rows "
                        f"({', '.join(list(rare)[:5])}) from their rows")
        return [[t for t in tags if t not in rare] for tags in tag_sets]
    tag, n = next(iter(sorted(rare.items(), key=lambda kv: (kv[1], kv[0]))))
    splits = [s for s, f in zip(SPLIT_NAMES, split.fractions, strict=True) if f > 0]
    more = f" (and {len(rare) - 1} more such tags)" if len(rare) > 1 else ""
    rows = table.rows(_rows_with(tag_sets, {tag}, keep))
    raise DatasetError(f"{table.filename}: tag '{tag}' is on only {n} row(s) ({rows}){more}; each tag needs at "
                       f"least {needed} rows to appear in {', '.join(splits)}. "
                       "Remove such tags (option 'drop rare tags') or add rows")


def _check_constant(table: ParsedTable, tag_sets: list[list[str]], options: MultilabelOptions,
                    warnings: list[str]) -> list[list[str]]:
    constant = [t for t, n in tag_counts(tag_sets).items() if n == len(tag_sets)]
    if not constant:
        return tag_sets
    if options.drop_constant:
        warnings.append(f"{table.filename}: removed {', '.join(map(repr, constant))}, on every row")
        return [[t for t in tags if t not in constant] for tags in tag_sets]
    raise DatasetError(f"{table.filename}: tag '{constant[0]}' is on every row (all {len(tag_sets):,}): a model "
                       "learns nothing from it and every score would flatter; remove it (option 'drop tags on every "
                       "row') or add rows without it")


def iterative_split(y: np.ndarray, split: SplitConfig) -> np.ndarray:
    """train/validation/test per row, so each tag's rows are shared out in the split fractions as nearly as the
    other tags on the same rows allow (Sechidis et al.'s iterative stratification, package iterative-stratification)."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    n = len(y)
    out = np.full(n, "train", dtype=object)
    f_train, f_val, f_test = split.fractions
    rest = np.arange(n)
    x = np.zeros((n, 1))
    if f_test > 0 and n >= 3:
        cut = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=f_test, random_state=split.seed)
        rest, test = next(cut.split(x, y))
        out[test] = "test"
    if f_val > 0 and len(rest) >= 2:
        cut = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=f_val / (f_train + f_val),
                                               random_state=split.seed)
        train, val = next(cut.split(x[rest], y[rest]))
        out[rest[val]] = "validation"
    return out


def missing_from_splits(out: pd.DataFrame, tags: list[str], y: np.ndarray) -> list[str]:
    """One warning per split that lacks some tags: too rare for iterative stratification to reach every split."""
    notes = []
    total = y.sum(axis=0)
    for name in SPLIT_NAMES:
        rows = (out["split"] == name).to_numpy()
        if not rows.any():
            continue
        absent = [f"'{t}' ({int(total[j])} rows)" for j, t in enumerate(tags) if not y[rows, j].any()]
        if absent:
            notes.append(f"{len(absent)} tags are too rare for iterative stratification to put in the {name} split: "
                         f"{', '.join(absent[:6])}{' …' if len(absent) > 6 else ''}; their {name} scores are missing")
    return notes


def multilabel_stats(out: pd.DataFrame, tag_sets: list[list[str]], tags: list[str], fmt: TagFormat, n_dup: int,
                     n_empty_text: int) -> dict[str, Any]:
    sets = [decode(v) for v in out[LABELS]]
    per_row = np.array([len(t) for t in sets])
    per_split = {s: tag_counts([t for t, sp in zip(sets, out["split"], strict=True) if sp == s])
                 for s in SPLIT_NAMES}
    return {"tags": tag_counts(sets), "tags_per_split": per_split, "n_tags": len(tags),
            "rows_without_tags": int((per_row == 0).sum()), "tags_per_row_mean": round(float(per_row.mean()), 3),
            "tags_per_row_max": int(per_row.max(initial=0)), "format": fmt.kind, "delimiter": fmt.delimiter,
            "duplicates": n_dup, "dropped_empty": n_empty_text}


def multilabel_profile(frame: pd.DataFrame) -> dict[str, Any]:
    """What the dataset's charts read: tag frequency, tags per row, co-occurrence of the most frequent tags."""
    sets = [decode(v) for v in frame[LABELS]]
    counts = tag_counts(sets)
    top = list(counts)[:MAX_COOCCURRENCE_TAGS]
    y = to_matrix(sets, top).astype(np.int64)
    per_row = pd.Series([len(t) for t in sets]).value_counts().sort_index()
    return {"tags": counts, "tags_per_row": {int(k): int(v) for k, v in per_row.items()},
            "cooccurrence": {"tags": top, "counts": (y.T @ y).tolist()},
            "rows_without_tags": int(sum(1 for t in sets if not t)), "rows": len(sets),
            "samples": {t: frame["text"][[t in s for s in sets]].head(3).str.slice(0, 120).tolist() for t in top[:8]}}


FORMAT_LABELS = {DELIMITED: "delimited string", JSON_LIST: "JSON list", ONE_HOT: "one 0/1 column per tag"}


def mapping_from_flags(frame: pd.DataFrame, text: str | None, labels: str | None, tag_format: str | None,
                       delimiter: str | None) -> MultilabelMapping:
    """The mapping `protolab datasets add --task multilabel` reads: --labels-col COL (or COL1,COL2,... of 0/1
    columns), --tag-format and --delimiter; what is not given is guessed."""
    guess = guess_multilabel(frame)
    text = text or guess.text
    if not labels:
        fmt = guess.tags
    else:
        columns = [c.strip() for c in labels.split(",") if c.strip()]
        if len(columns) > 1 or tag_format == ONE_HOT:
            fmt = TagFormat(ONE_HOT, columns=tuple(columns))
        elif columns[0] not in frame.columns:
            fmt = TagFormat(tag_format or DELIMITED, delimiter, (columns[0],))  # parse_tags names what is missing
        else:
            guessed = guess_format(frame[columns[0]])
            kind = tag_format or guessed.kind
            fmt = TagFormat(kind, (delimiter or guessed.delimiter or ";") if kind == DELIMITED else None,
                            (columns[0],))
    if delimiter and fmt.kind == DELIMITED:
        fmt = TagFormat(DELIMITED, delimiter, fmt.columns)
    return MultilabelMapping(text, fmt)


def prepare_from_args(args: Any, table: ParsedTable, split_kw: dict[str, Any]) -> PreparedDataset:
    """`protolab datasets add --task multilabel`: the flags' mapping and options, the rest guessed."""
    if getattr(args, "unlabelled", False):
        raise DatasetError("--unlabelled applies to --task classification only")
    mapping = mapping_from_flags(table.frame, args.text_col, getattr(args, "labels_col", None) or args.label_col,
                                 getattr(args, "tag_format", None), getattr(args, "delimiter", None))
    options = MultilabelOptions(merge_similar=getattr(args, "merge_similar_tags", False),
                                drop_rare=getattr(args, "drop_rare_tags", False) or args.drop_rare_classes,
                                drop_constant=getattr(args, "drop_constant_tags", False),
                                drop_duplicates=args.drop_duplicates)
    return prepare_multilabel(table, mapping, SplitConfig(**split_kw), options)
