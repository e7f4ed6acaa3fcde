"""Multi-label uploads: the three ways of writing tags (guessed), each validation case with what and where, the
iterative-stratification split, the profile and its charts, and a hypothesis test of the tag parser."""

from __future__ import annotations

import json
import random

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.charts import multilabel as charts
from core.data.types import DatasetError, ParsedTable, SplitConfig
from core.multilabel.dataset import (
    MultilabelMapping,
    MultilabelOptions,
    guess_multilabel,
    multilabel_profile,
    prepare_multilabel,
)
from core.multilabel.labels import (
    DELIMITED,
    DELIMITERS,
    JSON_LIST,
    ONE_HOT,
    TagFormat,
    decode,
    guess_format,
    parse_tags,
    split_tags,
)
from core.multilabel.metrics import baselines, report, tune_thresholds

TAGS = ["billing", "bug", "feature", "praise"]


def tickets(n: int = 60, seed: int = 0, empty_every: int = 7) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        tags = [] if i % empty_every == 0 else rng.sample(TAGS, rng.choice([1, 1, 2]))
        rows.append({"text": f"ticket {i} about {' and '.join(tags) or 'nothing'}", "tags": tags})
    return pd.DataFrame(rows)


def table(frame: pd.DataFrame, name: str = "tickets.csv") -> ParsedTable:
    return ParsedTable(frame=frame, filename=name, file_format="csv", encoding="utf-8")


def delimited(frame: pd.DataFrame, delimiter: str = ";") -> pd.DataFrame:
    return frame.assign(tags=[f"{delimiter} ".join(t) for t in frame["tags"]])


@pytest.mark.parametrize("delimiter", DELIMITERS)
def test_a_delimited_column_is_guessed_with_its_delimiter_and_empty_sets_counted(delimiter: str) -> None:
    frame = delimited(tickets(), delimiter)
    mapping = guess_multilabel(frame)
    assert (mapping.text, mapping.tags) == ("text", TagFormat(DELIMITED, delimiter, ("tags",)))
    prepared = prepare_multilabel(table(frame), mapping)
    assert prepared.stats["rows_without_tags"] == 9  # rows 0, 7, ..., 56: empty tag sets are valid rows
    assert len(prepared.frame) == 60 and set(prepared.stats["tags"]) == set(TAGS)
    assert decode(prepared.frame.loc[1, "labels"]) == sorted(tickets().loc[1, "tags"])


def test_json_lists_and_one_hot_columns_are_guessed() -> None:
    frame = tickets()
    as_json = frame.assign(tags=[json.dumps(t) for t in frame["tags"]])
    assert guess_multilabel(as_json).tags.kind == JSON_LIST
    one_hot = pd.DataFrame({"text": frame["text"], **{t: [int(t in s) for s in frame["tags"]] for t in TAGS},
                            "priority": ["high", "low"] * 30})
    mapping = guess_multilabel(one_hot)
    assert mapping.tags == TagFormat(ONE_HOT, columns=tuple(TAGS))  # the 0/1 columns, not 'priority'
    a, b = prepare_multilabel(table(as_json), guess_multilabel(as_json)), prepare_multilabel(table(one_hot), mapping)
    assert a.frame["labels"].tolist() == b.frame["labels"].tolist()


def test_a_column_that_parses_differently_on_some_rows_is_refused_with_its_rows() -> None:
    frame = delimited(tickets())
    frame.loc[5, "tags"], frame.loc[9, "tags"] = "billing, bug", "bug, praise"
    with pytest.raises(DatasetError) as refused:
        prepare_multilabel(table(frame), guess_multilabel(frame))
    said = str(refused.value)
    assert "parses differently" in said and "by ','" in said and "rows 7, 11" in said  # header is row 1
    frame = tickets().assign(tags=[json.dumps(t) for t in tickets()["tags"]])
    frame.loc[3, "tags"] = "billing;bug"
    with pytest.raises(DatasetError, match=r"JSON lists of tags on most rows but not on row 5"):
        prepare_multilabel(table(frame), guess_multilabel(frame))


def test_tags_differing_only_by_case_or_spaces_are_refused_or_merged() -> None:
    frame = tickets().assign(tags=[json.dumps(t) for t in tickets()["tags"]])
    frame.loc[4, "tags"], frame.loc[8, "tags"] = json.dumps(["Bug "]), json.dumps(["BUG", "praise"])
    with pytest.raises(DatasetError) as refused:
        prepare_multilabel(table(frame), guess_multilabel(frame))
    assert "differ only by case or spaces" in str(refused.value) and "'bug'" in str(refused.value)
    assert "merge them" in str(refused.value)
    merged = prepare_multilabel(table(frame), guess_multilabel(frame), options=MultilabelOptions(merge_similar=True))
    assert "bug" in merged.stats["tags"] and not {"Bug ", "BUG"} & set(merged.stats["tags"])
    assert any("merged 2 tag spellings" in w for w in merged.warnings)


def test_a_rare_tag_says_how_many_rows_it_needs() -> None:
    frame = delimited(tickets())
    frame.loc[10, "tags"] = "billing; refund"
    with pytest.raises(DatasetError) as refused:
        prepare_multilabel(table(frame), guess_multilabel(frame))
    said = str(refused.value)
    assert "tag 'refund' is on only 1 row(s) (row 12)" in said and "at least 3 rows" in said
    two_splits = prepare_multilabel(table(frame), guess_multilabel(frame), SplitConfig((0.9, 0.1, 0.0)),
                                    MultilabelOptions(drop_rare=True))
    assert "refund" not in two_splits.stats["tags"]


def test_a_tag_on_every_row_is_refused() -> None:
    frame = tickets(empty_every=10**6)
    frame["tags"] = [[*t, "support"] for t in frame["tags"]]
    frame = delimited(frame, "|")
    with pytest.raises(DatasetError, match=r"tag 'support' is on every row \(all 60\)"):
        prepare_multilabel(table(frame), guess_multilabel(frame))
    kept = prepare_multilabel(table(frame), guess_multilabel(frame), options=MultilabelOptions(drop_constant=True))
    assert "support" not in kept.stats["tags"]


def test_one_tag_in_all_is_refused_and_a_missing_column_named() -> None:
    frame = pd.DataFrame({"text": [f"t {i}" for i in range(12)], "tags": ["a"] * 6 + [""] * 6})
    with pytest.raises(DatasetError, match="hold 1 different tag"):
        prepare_multilabel(table(frame), guess_multilabel(frame))
    with pytest.raises(DatasetError, match="no tag column named 'labels'"):
        prepare_multilabel(table(frame), MultilabelMapping("text", TagFormat(DELIMITED, ";", ("labels",))))


def test_iterative_stratification_puts_every_tag_in_every_split() -> None:
    frame = delimited(tickets(n=200, seed=3))
    prepared = prepare_multilabel(table(frame), guess_multilabel(frame))
    per_split = prepared.stats["tags_per_split"]
    assert all(set(per_split[s]) == set(TAGS) for s in ("train", "validation", "test"))
    assert not [w for w in prepared.warnings if "too rare for iterative stratification" in w]
    counts = prepared.frame["split"].value_counts()
    assert 150 <= counts["train"] <= 170 and 14 <= counts["test"] <= 26


def test_a_tag_too_rare_for_a_split_is_said() -> None:
    frame = delimited(tickets(n=200, seed=3))
    for i in (1, 2, 3):  # three rows carry 'refund' alongside other tags: enough in count, rarely in place
        frame.loc[i, "tags"] += "; refund"
    prepared = prepare_multilabel(table(frame), guess_multilabel(frame), SplitConfig((0.98, 0.01, 0.01)))
    absent = [w for w in prepared.warnings if "too rare for iterative stratification" in w]
    assert absent and "'refund' (3 rows)" in absent[0]


def test_profile_and_charts() -> None:
    prepared = prepare_multilabel(table(delimited(tickets())), guess_multilabel(delimited(tickets())))
    profile = multilabel_profile(prepared.frame)
    assert profile["rows_without_tags"] == 9 and sum(profile["tags_per_row"].values()) == 60
    co = profile["cooccurrence"]
    assert [co["counts"][i][i] for i in range(len(co["tags"]))] == [profile["tags"][t] for t in co["tags"]]
    assert list(charts.tag_frequency(profile["tags"], 60).data[0].x) == list(profile["tags"])
    assert charts.cooccurrence(co["tags"], co["counts"]).data[0].z.shape == (4, 4)
    assert list(charts.tags_per_row(profile["tags_per_row"]).data[0].x) == [0, 1, 2]


def test_thresholds_are_tuned_per_tag_and_baselines_scored() -> None:
    import numpy as np

    y = np.array([[1, 0], [1, 0], [0, 1], [0, 0], [1, 1], [0, 0]])
    proba = np.array([[0.3, 0.1], [0.35, 0.2], [0.1, 0.9], [0.05, 0.6], [0.4, 0.95], [0.1, 0.55]])
    tuned = tune_thresholds(y, proba)
    assert tuned["per_tag"][0] == pytest.approx(0.3) and tuned["per_tag"][1] >= 0.6  # each tag its own cut
    scores = report(y, proba >= np.array(tuned["per_tag"]), ["a", "b"])
    assert scores["macro_f1"] == pytest.approx(1.0) and report(y, proba >= 0.5, ["a", "b"])["macro_f1"] < 0.6
    base = baselines(y, y, ["a", "b"])
    assert base["no_tags"]["micro_f1"] == 0.0 and base["most_frequent"]["tags"] == ["a"]


TAG = st.text(st.characters(blacklist_characters=";|,\"[]", blacklist_categories=("Cs", "Cc")), min_size=1,
              max_size=12).filter(lambda t: t.strip() == t and t)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(TAG, max_size=4, unique=True), min_size=1, max_size=8), st.sampled_from(DELIMITERS))
def test_parser_reads_back_what_was_written(rows: list[list[str]], delimiter: str) -> None:
    cells = [f"{delimiter} ".join(tags) for tags in rows]
    frame = pd.DataFrame({"tags": cells})
    assert parse_tags(table(frame), TagFormat(DELIMITED, delimiter, ("tags",))) == rows
    assert [split_tags(c, delimiter) for c in cells] == rows
    as_json = pd.DataFrame({"tags": [json.dumps(t) for t in rows]})
    assert parse_tags(table(as_json), guess_format(as_json["tags"])) == rows
