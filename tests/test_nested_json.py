"""Nested JSON / JSON Lines uploads: objects flatten to dotted columns, the guess picks among those, and a
label column of JSON objects, ids or free text is refused with a message naming what to pick instead.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.data import datasets as ds
from core.data.classification import prepare_classification
from core.data.mapping import guess_classification
from core.data.reading import flatten_record
from core.data.types import ClassificationMapping, DatasetError, ParsedTable

LABELS = ["billing", "bug", "feature"]


def tickets(n: int = 60) -> list[dict]:
    """Support tickets as a help desk exports them: the text and the label one level down."""
    return [{"id": i, "ticket": {"subject": f"ticket {i}", "body": f"customer {i} writes about a {LABELS[i % 3]} "
                                 f"problem with the account, order number {1000 + i}"},
             "meta": {"label": LABELS[i % 3], "priority": ["low", "high"][i % 2], "tags": ["a", str(i)]}}
            for i in range(n)]


def jsonl(records: list[dict]) -> bytes:
    return "\n".join(json.dumps(r) for r in records).encode()


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_nested_objects_become_dotted_columns_and_the_guess_uses_them(fmt: str) -> None:
    records = tickets()
    data = json.dumps(records).encode() if fmt == "json" else jsonl(records)
    table = ds.read_table(data, f"tickets.{fmt}")
    assert list(table.frame.columns) == ["id", "ticket.subject", "ticket.body", "meta.label", "meta.priority",
                                         "meta.tags"]
    assert table.frame["meta.label"].tolist()[:3] == LABELS
    assert json.loads(table.frame["meta.tags"][1]) == ["a", "1"]  # a list stays one cell, as JSON
    assert any("dotted columns" in note for note in table.notes)
    guess = guess_classification(table.frame)
    assert guess == ClassificationMapping(text="ticket.body", label="meta.label")
    prepared = prepare_classification(table, guess)
    assert set(prepared.stats["classes"]) == set(LABELS)


def table_of(frame: pd.DataFrame) -> ParsedTable:
    return ParsedTable(frame=frame, filename="t.parquet", file_format="parquet", encoding=None, notes=(),
                       header_rows=0)


def test_a_label_column_of_json_objects_is_refused_with_what_to_pick_instead() -> None:
    # As the old reader produced it (and as Parquet struct columns arrive): whole objects in one column.
    records = tickets()
    frame = pd.DataFrame({"body": [r["ticket"]["body"] for r in records],
                          "meta": [json.dumps(r["meta"]) for r in records],
                          "category": [r["meta"]["label"] for r in records]})
    with pytest.raises(DatasetError, match=r"column 'meta' holds JSON objects or lists, not class names; "
                                           r"pick .* instead, e\.g\. 'category'"):
        prepare_classification(table_of(frame), ClassificationMapping("body", "meta"))
    as_dicts = frame.assign(meta=[r["meta"] for r in records])  # real dict cells
    with pytest.raises(DatasetError, match="holds JSON objects or lists"):
        prepare_classification(table_of(as_dicts), ClassificationMapping("body", "meta"))
    # The guess never offers such a column.
    assert guess_classification(frame).label == "category"


def test_a_label_with_about_one_class_per_row_is_refused() -> None:
    records = tickets(90)
    frame = pd.DataFrame({"body": [r["ticket"]["body"] for r in records], "id": [f"T{i}" for i in range(90)],
                          "team": [r["meta"]["label"] for r in records]})
    with pytest.raises(DatasetError, match=r"column 'id' has 90 different values in 90 rows \(at most 30 classes "
                                           r"are plausible\).*e\.g\. 'team'"):
        prepare_classification(table_of(frame), ClassificationMapping("body", "id"))


def test_one_column_in_two_roles_is_said_in_words() -> None:
    frame = pd.DataFrame({"text": ["a b", "c d", "e f"], "label": ["x", "y", "x"]})
    with pytest.raises(DatasetError) as info:
        prepare_classification(table_of(frame), ClassificationMapping("text", "text"))
    assert str(info.value) == ("t.parquet: column 'text' is mapped as both text and label; "
                               "pick a different column for each role")


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-10, 10), st.text(max_size=8),
                      st.lists(st.integers(0, 3), max_size=3))
json_objects = st.recursive(st.dictionaries(st.text(max_size=4), json_leaf, max_size=4),
                            lambda inner: st.dictionaries(st.text(max_size=4), st.one_of(json_leaf, inner), max_size=4),
                            max_leaves=12)


def _leaves(obj: dict) -> list:
    out = []
    for value in obj.values():
        if isinstance(value, dict) and value:
            out.extend(_leaves(value))
        else:
            out.append(json.dumps(value) if isinstance(value, (dict, list)) else value)
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record=json_objects)
def test_flattening_keeps_every_leaf_once_and_nothing_nested(record: dict) -> None:
    flat = flatten_record(record)
    assert not any(isinstance(v, dict) for v in flat.values())
    assert sorted(map(repr, flat.values())) == sorted(map(repr, _leaves(record)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(json_objects, min_size=1, max_size=8))
def test_random_nested_json_lines_give_a_table_or_a_dataset_error(records: list[dict]) -> None:
    try:
        table = ds.read_table(jsonl(records), "r.jsonl")
    except DatasetError as exc:
        assert str(exc).strip()
        return
    assert all("." not in c or not isinstance(v, dict) for c in table.frame.columns for v in table.frame[c])
    try:
        prepare_classification(table, guess_classification(table.frame))
    except DatasetError as exc:
        assert str(exc).strip()
