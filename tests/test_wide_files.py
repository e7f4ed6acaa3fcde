"""Wide files: a 100,000-column CSV is refused at once with the limit in the message; up to the limit the import
is linear in the number of columns (column names deduplicated with a set, guesses in one pass over the cells)."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from core.data import datasets as ds
from core.data.reading import MAX_COLUMNS, _clean_columns
from core.data.types import DatasetError
from tests.test_datasets import import_bytes, nothing_stored


def _wide_csv(columns: int, rows: int = 20) -> bytes:
    header = ["text", "label"] + [f"f{i}" for i in range(columns - 2)]
    body = [[f"row {r} was {'good' if r % 2 else 'bad'} today", "good" if r % 2 else "bad"]
            + [str((r * i) % 5) for i in range(columns - 2)] for r in range(rows)]
    return ("\n".join(",".join(line) for line in [header, *body]) + "\n").encode()


@pytest.mark.timeout(60)  # today's quadratic column cleaning was still importing this after 300 s
def test_a_100000_column_csv_is_refused_with_the_limit() -> None:
    with pytest.raises(DatasetError) as info:
        import_bytes(_wide_csv(100_000), "wide.csv")
    message = str(info.value)
    assert message.startswith("wide.csv: 100,000 columns") and f"at most {MAX_COLUMNS:,}" in message
    assert nothing_stored()


def test_wide_json_and_parquet_are_refused_too() -> None:
    record = {f"k{i}": i for i in range(MAX_COLUMNS + 1)}
    with pytest.raises(DatasetError, match=f"10,001 columns; Protolab reads at most {MAX_COLUMNS:,}"):
        ds.read_table(json.dumps([record, record]).encode(), "wide.json")
    buffer = io.BytesIO()
    pd.DataFrame([record]).to_parquet(buffer)
    with pytest.raises(DatasetError, match="10,001 columns"):
        ds.read_table(buffer.getvalue(), "wide.parquet")


@pytest.mark.timeout(120)
def test_repeated_and_clashing_names_stay_unique_in_linear_time() -> None:
    assert _clean_columns(pd.Index(["a", "a", "a.2", "a", "", "b\nc", "a"])) == [
        "a", "a.1", "a.2", "a.3", "column_5", "b c", "a.4"]
    names = _clean_columns(pd.Index(["x"] * 50_000))  # cubic before: every name scanned the list per try
    assert len(set(names)) == 50_000 and names[-1] == "x.49999"


def test_a_wide_file_under_the_limit_imports_with_every_column_kept() -> None:
    prepared = import_bytes(_wide_csv(3_000), "wide.csv", name="wide")
    assert prepared.mapping["text"] == "text" and prepared.mapping["label"] == "label"
    assert prepared.frame.shape[1] == 3_000 + 1 and prepared.frame["f7"].iloc[3] == str((3 * 7) % 5)


@pytest.mark.slow
def test_the_full_limit_imports() -> None:
    prepared = import_bytes(_wide_csv(MAX_COLUMNS), "wide.csv", name="wide")
    assert prepared.frame.shape[1] == MAX_COLUMNS + 1
