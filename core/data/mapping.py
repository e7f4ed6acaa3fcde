"""Which column plays which role: guessing the mapping from names and content, and checking a chosen one.

Also the small cell helpers every prepare step shares (as_text, extra_columns, mapping_meta).
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd

from core.data.types import (
    CatalogueMapping,
    ClassificationMapping,
    CleanOptions,
    DatasetError,
    InteractionsMapping,
    ParsedTable,
    SplitConfig,
)

CANONICAL = ("text", "label", "user", "item", "rating", "timestamp", "split")
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


# --- guessing the mapping ------------------------------------------------------------------------------

def _numeric_share(col: pd.Series) -> float:
    values = col[as_text(col) != ""]
    if values.empty:
        return 0.0
    return float(pd.to_numeric(values, errors="coerce").notna().mean())


def _sample(frame: pd.DataFrame) -> pd.DataFrame:
    return frame if len(frame) <= GUESS_SAMPLE else frame.sample(GUESS_SAMPLE, random_state=0)


def _named(columns: Sequence[str], words: Sequence[str], exact: bool = False) -> list[str]:
    found: dict[str, None] = {}  # ordered and O(1) to test: a wide file has thousands of matching columns
    names = [(col, col.lower()) for col in columns]
    for word in words:  # earlier words win
        for col, low in names:
            leaf = low.rsplit(".", 1)[-1]  # a flattened JSON field "ticket.body" is named by "body"
            if col not in found and (word in (low, leaf) or (
                    not exact and (low.startswith(word) or word in re.split(r"[^a-z0-9]+", low)))):
                found[col] = None
    return list(found)


def column_facts(frame: pd.DataFrame) -> pd.DataFrame:
    """Per column of `frame` (rows: its columns): share of non-empty cells that are numbers ("numeric") and
    that are JSON objects or lists ("container"), mean text length ("length"), distinct non-empty values
    ("distinct"). One pass over all cells, not pandas calls per column: a 10,000-column file stays quick."""
    raw = frame.to_numpy(dtype=object)
    texts = texts_of(frame).to_numpy(dtype=object)
    filled = texts != ""
    present = np.maximum(filled.sum(axis=0), 1)
    numbers = pd.to_numeric(pd.Series(texts.ravel()).where(filled.ravel()), errors="coerce").notna()
    containers = np.frompyfunc(_is_container, 1, 1)(raw).astype(bool) & filled
    codes = pd.factorize(texts.ravel())[0].reshape(texts.shape)
    cols = np.broadcast_to(np.arange(texts.shape[1]), texts.shape)
    pairs = np.unique(cols[filled].astype(np.int64) * (int(codes.max(initial=0)) + 1) + codes[filled])
    distinct = np.bincount(pairs // (int(codes.max(initial=0)) + 1), minlength=texts.shape[1])
    return pd.DataFrame({
        "numeric": numbers.to_numpy().reshape(texts.shape).sum(axis=0) / present * (filled.any(axis=0)),
        "container": containers.sum(axis=0) / present,
        "length": np.frompyfunc(len, 1, 1)(texts).astype(float).mean(axis=0) if len(texts) else 0.0,
        "distinct": distinct}, index=frame.columns)


def max_plausible_classes(n_rows: int) -> int:
    """The most distinct labels a table of `n_rows` can sensibly have: every class needs a row in each of
    the three splits, so more than n/3 classes means an id, free text or JSON was picked as the label."""
    return max(2, n_rows // 3)


def _guessable_classes(n_rows: int) -> int:
    # Guessing is stricter than validation: a column with hundreds of values is rarely the intended label.
    return max(2, min(100, n_rows // 2))


def container_share(col: pd.Series) -> float:
    """Share of non-empty cells that hold a JSON object or list (a dict/list cell, or its JSON text)."""
    values = col[as_text(col) != ""]
    if values.empty:
        return 0.0
    return float(values.map(_is_container).mean())


def _is_container(value: Any) -> bool:
    if isinstance(value, (dict, list, tuple, np.ndarray)):
        return True
    text = str(value).strip()
    if (text[:1], text[-1:]) not in (("{", "}"), ("[", "]")):
        return False
    try:
        return isinstance(json.loads(text), (dict, list))
    except ValueError:
        return False


def label_candidates(frame: pd.DataFrame, exclude: Sequence[str | None] = ()) -> list[str]:
    """Columns that could be a label: 2 to 100 distinct plain values (no JSON), named like a
    label first, then fewest classes first."""
    sample = _sample(frame)
    limit = _guessable_classes(len(sample))
    facts = column_facts(sample)
    skip = set(exclude)
    distinct = {c: int(k) for c, k, share in zip(facts.index, facts["distinct"], facts["container"], strict=True)
                if c not in skip and share <= 0.5}
    fits = [c for c, k in distinct.items() if 2 <= k <= limit]
    named = _named(fits, LABEL_NAMES)
    return named + sorted((c for c in fits if c not in named), key=lambda c: distinct[c])


def guess_classification(frame: pd.DataFrame) -> ClassificationMapping:
    """The long free-text column is the text; a low-cardinality column (by name first) is the label.

    Columns of JSON objects or lists (nested data not flattened) are never guessed: their text is not prose
    and their values are not class names.
    """
    sample = _sample(frame)
    facts = column_facts(sample)
    plain_facts = facts[facts["container"] <= 0.5]
    plain = list(plain_facts.index)
    wordy_facts = plain_facts[plain_facts["numeric"] < 0.5]
    wordy = list(wordy_facts.index)
    lengths = dict(zip(wordy, wordy_facts["length"].astype(float), strict=True))
    text_col = next(iter(_named(wordy, TEXT_NAMES, exact=True)), None)
    if text_col is None and lengths:
        text_col = max(lengths, key=lambda c: lengths[c])
    n = len(sample)
    distinct = {c: int(k) for c, k in zip(plain, plain_facts["distinct"], strict=True) if c != text_col}
    # A column named like a label is taken even with one class, so validation can say what is wrong.
    named = _named([c for c, k in distinct.items() if 1 <= k <= _guessable_classes(n)], LABEL_NAMES)
    low_card = [c for c, k in distinct.items() if 2 <= k <= _guessable_classes(n)]
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


# --- cells and columns ---------------------------------------------------------------------------------

def as_text(col: pd.Series) -> pd.Series:
    """Strings, stripped, with missing values as "" and integral floats without '.0' (labels 1, not 1.0)."""
    if pd.api.types.is_string_dtype(col.dtype) and not pd.api.types.is_object_dtype(col.dtype):
        return col.fillna("").str.strip()
    if pd.api.types.is_float_dtype(col.dtype):
        return col.map(lambda v: "" if pd.isna(v) else (str(int(v)) if float(v).is_integer() else str(v)))
    return col.map(_cell_text).astype(str)


# A named or numeric character reference with its semicolon (&amp; &quot; &#39; &#x27;): exported web text (tweets,
# scraped reviews) carries these escaped, and a model or a reader should see the character. Without the semicolon
# ("AT&T", "&copy 2020") it is left alone: plain text means the ampersand.
HTML_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")


def unescape_html(texts: pd.Series, name: str) -> tuple[pd.Series, str | None]:
    """`texts` with HTML character references turned into their characters, and a note saying how many texts
    changed (None when none did)."""
    has = texts.str.contains(HTML_ENTITY, regex=True).to_numpy(dtype=bool)
    if not has.any():
        return texts, None
    fixed = texts.copy()
    fixed[has] = texts[has].map(_unescape_entities)
    changed = int((fixed[has] != texts[has]).sum())
    if not changed:
        return texts, None
    return fixed, (f"{name}: unescaped HTML entities (&amp; &quot; &#39; ...) in {changed:,} text"
                   f"{'s' if changed != 1 else ''}, so they read as &, \" and '")


def _unescape_entities(text: str) -> str:
    # Only the references HTML_ENTITY matches, one at a time: html.unescape alone would also turn "&copy" or
    # "&lt" without a semicolon into characters.
    return HTML_ENTITY.sub(lambda m: html.unescape(m.group(0)), text)


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
    roles_of: dict[str, list[str]] = {}
    for role, col in mapping.items():
        if col:
            roles_of.setdefault(col, []).append(role)
    for col, roles in roles_of.items():
        if {"text", "label"} <= set(roles) and len(cols) == 1:  # a file of texts alone: nothing else to pick
            raise DatasetError(f"{table.filename} has one column, '{col}': texts without labels? Tick \"No labels "
                               "yet\" and label them on the Label page")
        if len(roles) > 1:
            raise DatasetError(f"{table.filename}: column '{col}' is mapped as both {' and '.join(roles)}; "
                               "pick a different column for each role")


def extra_columns(frame: pd.DataFrame, used: Sequence[str | None]) -> pd.DataFrame:
    """Unmapped columns are kept (as text) but never clash with canonical names."""
    extra = frame.drop(columns=[c for c in used if c])
    extra = extra.rename(columns={c: f"orig_{c}" for c in extra.columns if c in CANONICAL})
    return texts_of(extra)


def texts_of(frame: pd.DataFrame) -> pd.DataFrame:
    """as_text of every column, in one pass over the cells rather than a pandas call per column (wide files)."""
    cells = np.frompyfunc(_cell_text, 1, 1)(frame.to_numpy(dtype=object)) if frame.shape[1] else frame
    return pd.DataFrame(cells, index=frame.index, columns=frame.columns, dtype=object)


def mapping_meta(table: ParsedTable, split: SplitConfig, options: CleanOptions | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"split": {"fractions": list(split.fractions), "seed": split.seed, "method": split.method},
                            "format": table.file_format}
    if options is not None:
        meta["options"] = asdict(options)
    return meta
