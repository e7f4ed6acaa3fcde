"""Reading tag sets from an upload: a delimited string (`billing;bug`), a JSON list per row, or one 0/1 column per tag.

The format and delimiter are guessed from the cells and said back to the user; a column that parses one way on some
rows and another way on others is refused, naming the rows, rather than read half right.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.data.mapping import as_text, texts_of
from core.data.types import DatasetError, ParsedTable

DELIMITED, JSON_LIST, ONE_HOT = "delimited", "json", "one-hot"
FORMATS = (DELIMITED, JSON_LIST, ONE_HOT)
DELIMITERS = (";", "|", ",")  # in the order a tie is broken: ';' and '|' rarely occur inside a tag, ',' may
TAG_COLUMN_NAMES = ("labels", "tags", "genres", "categories", "topics", "label", "tag", "genre", "category")
TRUE_CELLS = frozenset({"1", "1.0", "true", "yes", "y", "t", "x"})
FALSE_CELLS = frozenset({"0", "0.0", "false", "no", "n", "f", ""})


@dataclass(frozen=True)
class TagFormat:
    """How one upload holds its tags: the format, the delimiter (delimited) and the tag columns (one-hot)."""

    kind: str  # DELIMITED, JSON_LIST or ONE_HOT
    delimiter: str | None = None
    columns: tuple[str, ...] = ()  # ONE_HOT: one 0/1 column per tag; else the one column of tag sets

    def describe(self) -> str:
        if self.kind == DELIMITED:
            return f"tags separated by '{self.delimiter}'"
        if self.kind == JSON_LIST:
            return "a JSON list of tags per row"
        return f"one 0/1 column per tag ({len(self.columns)} columns)"


# --- guessing --------------------------------------------------------------------------------------------

def _is_json_list(text: str) -> bool:
    if not (text.startswith("[") and text.endswith("]")):
        return False
    try:
        return isinstance(json.loads(text), list)
    except ValueError:
        return False


def guess_delimiter(cells: Sequence[str]) -> str:
    """The candidate delimiter found in the most cells (';' then '|' then ',' on a tie; ';' when none is used)."""
    counts = {d: sum(d in c for c in cells) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: (counts[d], -DELIMITERS.index(d)))
    return best if counts[best] else DELIMITERS[0]


def guess_format(column: pd.Series) -> TagFormat:
    """JSON lists when most filled cells are one, else a delimited string with its delimiter guessed."""
    cells = [c for c in as_text(column).tolist() if c]
    if cells and sum(_is_json_list(c) or isinstance(c, list) for c in cells) / len(cells) > 0.5:
        return TagFormat(JSON_LIST, columns=(str(column.name),))
    return TagFormat(DELIMITED, guess_delimiter(cells), (str(column.name),))


def binary_columns(frame: pd.DataFrame, exclude: Sequence[str | None] = ()) -> list[str]:
    """Columns whose every cell reads as 0/1 (true/false, yes/no, empty): the one-hot tag columns a guess offers."""
    skip = set(exclude)
    cells = texts_of(frame)
    found = []
    for col in frame.columns:
        if col in skip:
            continue
        values = set(cells[col].str.lower().unique())
        if values <= TRUE_CELLS | FALSE_CELLS and values & TRUE_CELLS:
            found.append(str(col))
    return found


def guess_tag_column(frame: pd.DataFrame, text: str | None) -> str | None:
    """A column named like tags, else one whose cells are JSON lists or hold a delimiter most often."""
    columns = [str(c) for c in frame.columns if c != text]
    lower = {c.lower().rsplit(".", 1)[-1]: c for c in columns}
    for name in TAG_COLUMN_NAMES:
        if name in lower:
            return lower[name]
    sample = frame.head(2000)
    best, best_share = None, 0.0
    for col in columns:
        cells = [c for c in as_text(sample[col]).tolist() if c]
        if not cells:
            continue
        share = max(sum(_is_json_list(c) for c in cells), *(sum(d in c for c in cells) for d in DELIMITERS))
        if share / len(cells) > best_share and np.mean([len(c) for c in cells]) < 200:
            best, best_share = col, share / len(cells)
    return best if best_share >= 0.2 else None


CLAIM_SAMPLE = 500  # rows a task guess looks at: enough to tell tag sets from prose, cheap on a big file
MIN_ONE_HOT_COLUMNS = 3  # "several" 0/1 columns: two could be a 0/1 label beside one flag such as "verified"


def tag_set_column(frame: pd.DataFrame, text: str | None) -> str | None:
    """A column whose cells are tag sets by their shape alone (not by name: a classification `label` column is
    named so too): mostly JSON lists, or short cells split by one delimiter into a small vocabulary of pieces."""
    sample = frame.head(CLAIM_SAMPLE)
    for col in (c for c in sample.columns if c != text):
        cells = [c for c in as_text(sample[col]).tolist() if c]
        if not cells:
            continue
        if sum(_is_json_list(c) for c in cells) * 2 > len(cells):
            return str(col)
        delimiter = guess_delimiter(cells)
        if sum(delimiter in c for c in cells) < 0.2 * len(cells) or np.mean([len(c) for c in cells]) > 80:
            continue
        pieces = [t for c in cells for t in split_tags(c, delimiter)]
        # A vocabulary: pieces repeat (names, addresses and numbers split by commas mostly do not).
        if 2 <= len(set(pieces)) <= len(pieces) / 3:
            return str(col)
    return None


def looks_like_tag_sets(frame: pd.DataFrame, text: str | None) -> bool:
    """The table holds tag sets: a column of them, or several 0/1 columns (one per tag)."""
    if tag_set_column(frame, text) is not None:
        return True
    return len(binary_columns(frame.head(CLAIM_SAMPLE), exclude=[text])) >= MIN_ONE_HOT_COLUMNS


# --- parsing -----------------------------------------------------------------------------------------------

def split_tags(cell: str, delimiter: str) -> list[str]:
    """'billing; bug' -> ['billing', 'bug']: spaces around each tag dropped, empty pieces ('a;;b', 'a;') dropped."""
    return [t.strip() for t in str(cell).split(delimiter) if t.strip()]


def json_tags(cell: str) -> list[str] | None:
    """The tags of a JSON list cell as written ('[]' is no tag); None when the cell is not a list of names."""
    if not cell.strip():
        return []
    try:
        value = json.loads(cell)
    except ValueError:
        return None
    if not isinstance(value, list) or any(isinstance(v, (dict, list)) or v is None for v in value):
        return None
    return [str(v) for v in value if str(v).strip()]


def unique(tags: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(tags))  # a tag given twice on one row is one tag


def parse_tags(table: ParsedTable, fmt: TagFormat) -> list[list[str]]:
    """The tag set of every row, in file order; a DatasetError names the rows that parse differently."""
    frame, name = table.frame, table.filename
    missing = [c for c in fmt.columns if c not in frame.columns]
    if missing or not fmt.columns:
        listed = ", ".join(map(str, list(frame.columns)[:20]))
        raise DatasetError(f"{name}: no tag column {'named ' + repr(missing[0]) if missing else 'is chosen'}; "
                           f"columns are: {listed}")
    if fmt.kind == ONE_HOT:
        return _one_hot(table, fmt.columns)
    col = fmt.columns[0]
    cells = as_text(frame[col]).tolist()
    if fmt.kind == JSON_LIST:
        parsed = [json_tags(c) for c in cells]
        bad = [i for i, p in enumerate(parsed) if p is None]
        if bad:
            raise DatasetError(f"{name}: column '{col}' holds JSON lists of tags on most rows but not on "
                               f"{table.rows(bad)} (e.g. {cells[bad[0]][:60]!r}); write every row as a list "
                               "like [\"billing\", \"bug\"] (or [] for none)")
        return [unique(p or []) for p in parsed]
    if fmt.kind != DELIMITED or not fmt.delimiter:
        raise DatasetError(f"unknown tag format {fmt.kind!r}; expected one of {', '.join(FORMATS)}")
    _require_one_delimiter(table, col, cells, fmt.delimiter)
    return [unique(split_tags(c, fmt.delimiter)) for c in cells]


def _require_one_delimiter(table: ParsedTable, col: str, cells: list[str], delimiter: str) -> None:
    """Refuse a column where some rows separate tags with one delimiter and others with another (or are JSON)."""
    json_rows = [i for i, c in enumerate(cells) if _is_json_list(c)]
    if json_rows:
        raise DatasetError(f"{table.filename}: column '{col}' separates tags with '{delimiter}' on most rows but "
                           f"holds JSON lists on {table.rows(json_rows)}; write every row the same way")
    for other in DELIMITERS:
        if other == delimiter:
            continue
        rows = [i for i, c in enumerate(cells) if other in c and delimiter not in c]
        if rows and any(delimiter in c for c in cells):
            raise DatasetError(
                f"{table.filename}: column '{col}' parses differently on different rows: tags are separated by "
                f"'{delimiter}' on most rows but by '{other}' on {table.rows(rows)} (e.g. {cells[rows[0]][:60]!r}); "
                f"use one delimiter throughout")


def _one_hot(table: ParsedTable, columns: Sequence[str]) -> list[list[str]]:
    cells = texts_of(table.frame[list(columns)])
    for col in columns:
        low = cells[col].str.lower()
        bad = np.flatnonzero(~low.isin(TRUE_CELLS | FALSE_CELLS).to_numpy())
        if len(bad):
            raise DatasetError(f"{table.filename}: tag column '{col}' holds {cells[col].iloc[bad[0]][:40]!r} on "
                               f"{table.rows(bad)}; one-hot tag columns hold only 0/1 (or true/false, yes/no)")
    on = np.column_stack([cells[c].str.lower().isin(TRUE_CELLS).to_numpy() for c in columns])
    names = [str(c) for c in columns]
    return [[names[j] for j in np.flatnonzero(row)] for row in on]


# --- checks over the parsed tag sets ------------------------------------------------------------------------

def normal_form(tag: str) -> str:
    """What two spellings of one tag share: case and runs of spaces ignored ('Bug ' and 'bug')."""
    return re.sub(r"\s+", " ", tag).strip().casefold()


def similar_tags(tag_sets: Sequence[Sequence[str]]) -> dict[str, list[str]]:
    """Groups of tags that differ only by case or spaces, by normal form, most used spelling first."""
    counts: dict[str, int] = {}
    for tags in tag_sets:
        for t in tags:
            counts[t] = counts.get(t, 0) + 1
    groups: dict[str, list[str]] = {}
    for tag in sorted(counts, key=lambda t: (-counts[t], t)):
        groups.setdefault(normal_form(tag), []).append(tag)
    return {k: v for k, v in groups.items() if len(v) > 1}


def merge_similar(tag_sets: Sequence[Sequence[str]]) -> tuple[list[list[str]], dict[str, str]]:
    """Every spelling of a tag replaced by its most used one; (new tag sets, {spelling: kept})."""
    renames = {t: group[0] for group in similar_tags(tag_sets).values() for t in group[1:]}
    return [unique([renames.get(t, t) for t in tags]) for tags in tag_sets], renames


def tag_counts(tag_sets: Sequence[Sequence[str]]) -> dict[str, int]:
    """Rows per tag, most frequent first (ties by name)."""
    counts: dict[str, int] = {}
    for tags in tag_sets:
        for t in tags:
            counts[t] = counts.get(t, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def to_matrix(tag_sets: Sequence[Sequence[str]], tags: Sequence[str]) -> np.ndarray:
    """(rows, tags) 0/1 matrix in `tags` order; a tag outside `tags` is ignored."""
    index = {t: j for j, t in enumerate(tags)}
    out = np.zeros((len(tag_sets), len(tags)), dtype=np.int8)
    for i, row in enumerate(tag_sets):
        for t in row:
            if t in index:
                out[i, index[t]] = 1
    return out


def encode(tags: Sequence[str]) -> str:
    """How a row's tag set is stored (the dataset's `labels` column): a JSON list, in a stable order."""
    return json.dumps(sorted(tags), ensure_ascii=False)


def decode(stored: str) -> list[str]:
    value = json.loads(stored) if stored else []
    return [str(v) for v in value]
