"""Unlabelled classification datasets: a table of texts without a label column, to be labelled in the app.

Stored like any classification dataset (text, label, split) with every label empty and every row in `train`,
and `unlabelled: true` in its mapping; the labels people give live in the database (core.labelling.pool).
"""

from __future__ import annotations

import pandas as pd

from core.data.mapping import as_text, require_columns, unescape_html
from core.data.storage import content_digest
from core.data.types import DatasetError, ParsedTable, PreparedDataset
from db.enums import TaskKind

MIN_TEXTS = 4  # fewer cannot even make a labelled version with two classes in every split


def prepare_unlabelled(table: ParsedTable, text_col: str | None, max_chars: int = 5000) -> PreparedDataset:
    """Keep the non-empty texts of one column, each text once (labelling a duplicate twice is wasted work)."""
    name, frame = table.filename, table.frame
    require_columns(table, {"text": text_col})
    text, unescaped = unescape_html(as_text(frame[text_col]), name)
    warnings: list[str] = []
    empty = text == ""
    if empty.all():
        raise DatasetError(f"{name}: every text in column '{text_col}' is empty")
    if empty.any():
        warnings.append(f"{name}: dropped {int(empty.sum())} rows with an empty text "
                        f"({table.rows(empty.to_numpy().nonzero()[0])})")
    kept = text[~empty.to_numpy()]
    dup = kept.duplicated(keep="first")
    if dup.any():
        warnings.append(f"{name}: dropped {int(dup.sum())} exact duplicate texts ({table.rows(kept.index[dup])})")
    kept = kept[~dup.to_numpy()]
    if len(kept) < MIN_TEXTS:
        raise DatasetError(f"{name}: column '{text_col}' has {len(kept)} distinct texts; at least {MIN_TEXTS} "
                           "are needed to label and train on")
    long = kept.str.len() > max_chars
    if long.any():
        warnings.append(f"{name}: {int(long.sum())} texts are longer than {max_chars} characters; kept, "
                        "models truncate them")
    out = pd.DataFrame({"text": kept.to_numpy(), "label": pd.Series([None] * len(kept), dtype="object"),
                        "split": "train"})
    lengths = out["text"].str.len()
    stats = {"unlabelled": True, "classes": {}, "texts": len(out), "duplicates": int(dup.sum()),
             "long_texts": int(long.sum()), "dropped_empty": int(empty.sum()),
             "text_chars": {"mean": round(float(lengths.mean()), 1), "median": float(lengths.median()),
                            "max": int(lengths.max())}}
    return PreparedDataset(
        task=TaskKind.CLASSIFICATION, frame=out, mapping={"text": text_col, "label": None, "unlabelled": True},
        stats=stats, warnings=warnings, encoding=table.encoding, source_filename=name,
        content_hash=content_digest(out[["text"]]), notes=[*table.notes, *filter(None, [unescaped])])
