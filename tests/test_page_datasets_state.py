"""Datasets page state (issue 12, item 8): the rename box belongs to the inspected dataset, a rename keeps it
selected and says so, a column in two roles is said in words, the splits figure is a chart that fits, and the
Evaluate page's marks table shows its "relabel to" column first."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from streamlit.testing.v1 import AppTest

from core.charts.datasets import split_sizes
from core.data.storage import write_dataset
from db import datasets as dataset_queries
from db import session_scope
from db.enums import TaskKind
from tests.conftest import sentiment_frame, sklearn_predictions, store_completed_run, with_splits
from tests.helpers import form_key

PAGES = Path(__file__).resolve().parents[1] / "pages"


def store(name: str) -> int:
    with session_scope() as s:
        return write_dataset(s, name=name, task=TaskKind.CLASSIFICATION, frame=with_splits(sentiment_frame(60)),
                             mapping={"text": "text", "label": "label"}).id


def datasets_page() -> AppTest:
    return AppTest.from_file(str(PAGES / "datasets.py"), default_timeout=60).run()


def test_rename_box_shows_the_inspected_dataset_and_a_rename_keeps_it_selected() -> None:
    first, second, third = store("alpha"), store("beta"), store("gamma")
    at = datasets_page()
    assert at.selectbox(key="inspect").options == ["gamma", "beta", "alpha"]  # newest first
    assert at.selectbox(key="inspect").value == third
    assert [t.value for t in at.text_input if t.label == "Rename to"] == ["gamma"]
    at.selectbox(key="inspect").set_value(second).run()
    assert [t.value for t in at.text_input if t.label == "Rename to"] == ["beta"]
    at.text_input(key=f"rename_to_{second}").set_value("beta renamed")
    at.button(key="rename").click().run()
    assert not at.exception and not at.error
    assert at.selectbox(key="inspect").value == second  # still the renamed dataset, not the first one
    assert [s.value for s in at.success] == ["Renamed 'beta' to 'beta renamed'."]
    assert [t.value for t in at.text_input if t.label == "Rename to"] == ["beta renamed"]
    with session_scope() as s:
        assert [d.name for d in dataset_queries.list_datasets(s)] == ["gamma", "beta renamed", "alpha"]
    at.run()
    assert not at.success  # said once, not on every rerun
    assert at.selectbox(key="inspect").value == second and first != second


def test_a_column_in_two_roles_is_said_in_words() -> None:
    at = datasets_page()
    frame = pd.DataFrame({"text": [f"a review number {i}" for i in range(30)], "label": ["a", "b", "c"] * 10})
    at.file_uploader(key="upload").set_value(("r.csv", frame.to_csv(index=False).encode(), "text/csv"))
    at.run()
    at.selectbox(key=form_key(at, "map_label")).set_value("text").run()
    assert [e.value for e in at.error] == [
        "r.csv: column 'text' is mapped as both text and label; pick a different column for each role"]


def test_splits_are_a_figure_with_every_count() -> None:
    dataset = store("splits")
    at = datasets_page()
    assert not at.exception
    charts = {el.proto.id.rsplit("-", 1)[-1]: json.loads(el.proto.spec) for el in at.get("plotly_chart")}
    texts = [t["text"][0] for t in charts["chart_splits"]["data"]]
    with session_scope() as s:
        counts = dataset_queries.get_dataset(s, dataset).split_counts
    assert texts == [f"{k} {counts[k]:,} ({counts[k] / sum(counts.values()):.0%})"
                     for k in ("train", "validation", "test")]
    assert not [m for m in at.metric if "/" in m.label]  # no "24,000 / 3,000 / 3,000" tile to cut off


def test_split_sizes_chart_labels_large_counts() -> None:
    fig = split_sizes({"train": 24000, "validation": 3000, "test": 3000})
    assert [t.text[0] for t in fig.data] == ["train 24,000 (80%)", "validation 3,000 (10%)", "test 3,000 (10%)"]
    assert fig.layout.barmode == "stack"


def test_marks_table_shows_relabel_before_the_long_text() -> None:
    with session_scope() as s:
        dataset = write_dataset(s, name="noisy", task=TaskKind.CLASSIFICATION,
                                frame=with_splits(sentiment_frame(200)), mapping={"text": "text", "label": "label"}).id
    labels, preds = sklearn_predictions(dataset)
    for frame in preds.values():  # some mistakes to mark
        frame.loc[frame.index[::4], "pred"] = [labels[0] if p != labels[0] else labels[1]
                                               for p in frame.loc[frame.index[::4], "pred"]]
    run = store_completed_run(dataset, labels, preds, model_kind="lstm", name="lstm")
    at = AppTest.from_file(str(PAGES / "evaluate.py"), default_timeout=60)
    at.query_params["run"] = str(run)
    at.run()
    assert not at.exception
    marks = at.dataframe(key=f"marks_{run}_validation_(any)_(any)")  # Error analysis opens on validation
    order = list(marks.proto.column_order)
    assert order[:3] == ["row", "exclude", "relabel_to"] and order[-1] == "text"


def test_a_file_of_texts_alone_starts_as_no_labels_yet() -> None:
    at = datasets_page()
    frame = pd.DataFrame({"text": [f"a support ticket about screen {i}" for i in range(12)]})
    at.file_uploader(key="upload").set_value(("tickets.csv", frame.to_csv(index=False).encode(), "text/csv"))
    at.run()
    assert not at.error and at.checkbox(key=form_key(at, "unlabelled")).value
    at.checkbox(key=form_key(at, "unlabelled")).uncheck().run()  # unticked, the one column says what to do
    assert ["No labels" in e.value and "one column" in e.value for e in at.error] == [True]


def test_checks_passed_names_the_split_sizes_in_words() -> None:
    at = datasets_page()
    frame = pd.DataFrame({"text": [f"a review number {i}" for i in range(30)], "label": ["a", "b", "c"] * 10})
    at.file_uploader(key="upload").set_value(("r.csv", frame.to_csv(index=False).encode(), "text/csv"))
    at.run()
    [passed] = [s.value for s in at.success if "Checks passed" in s.value]
    assert passed == "Checks passed: 30 rows; 24 train, 3 validation, 3 test"


def test_the_profile_shows_short_examples_of_a_few_classes() -> None:
    from core.data.profiling import SAMPLE_CHARS, SAMPLE_CLASSES, classification_profile

    frame = pd.DataFrame({"text": [f"class {i % 31} " + "long review " * 100 for i in range(310)],
                          "label": [f"c{i % 31}" for i in range(310)]})
    profile = classification_profile(frame)
    assert len(profile["classes"]) == 31 and len(profile["samples"]) == SAMPLE_CLASSES < 31
    assert all(len(t) <= SAMPLE_CHARS + 1 for texts in profile["samples"].values() for t in texts)
