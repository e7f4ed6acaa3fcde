"""A test set that stays put (issue 24): versions keep the test rows, Compare qualifies runs on different test sets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from core.data import versions
from core.data.storage import ROW_ID, load_frame
from core.evaluation import predictions, testsets
from core.runs import jobs
from core.text.config import build_config
from db import runs as run_queries
from db import session_scope
from db.datasets import get_dataset
from db.enums import TaskKind
from tests.conftest import sklearn_predictions, store_completed_run

ROOT = Path(__file__).resolve().parent.parent


def _run_worker(run_id: int) -> None:
    subprocess.run([sys.executable, "-m", "core.runs.worker", str(run_id)], capture_output=True, timeout=300,
                   cwd=ROOT, check=False)
    with session_scope() as s:
        run = run_queries.get_run(s, run_id)
        assert run.status.value == "completed", run.error


def _frame(dataset_id: int) -> pd.DataFrame:
    with session_scope() as s:
        return load_frame(get_dataset(s, dataset_id))


def _other(label: str) -> str:
    return "negative" if label == "positive" else "positive"


def test_relabelling_a_test_row_then_retraining_keeps_the_test_set(classification_dataset: int,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop that once 'improved' a model by editing its test set: the retrained run's test rows and labels
    are exactly the first run's."""
    import core.runs.jobs

    with session_scope() as s:
        first = run_queries.create_run(s, dataset_id=classification_dataset, task=TaskKind.CLASSIFICATION,
                                       model_kind="tfidf", config=build_config("tfidf", {}), name="first").id
    _run_worker(first)
    test_preds = predictions.load_predictions(first, "test")
    val_preds = predictions.load_predictions(first, "validation")
    t, v = test_preds.iloc[0], val_preds.iloc[0]
    changes = [{"action": "relabel", "split": "test", "text": t["text"], "label": t["label"], "to": _other(t["label"])},
               {"action": "exclude", "split": "test", "text": test_preds.iloc[1]["text"],
                "label": test_preds.iloc[1]["label"]},
               {"action": "relabel", "split": "validation", "text": v["text"], "label": v["label"],
                "to": _other(v["label"])}]
    with session_scope() as s:
        version = versions.create_dataset_version(s, classification_dataset, changes, source_run_id=first)
        version_id = version.id
        assert len(versions.pending_test_marks(version)) == 2  # marked, not applied
        assert versions.test_set_name(version) == "tiny-sentiment test set"
    monkeypatch.setattr(core.runs.jobs, "launch_worker", lambda run_id, gpus=1: 0)  # run it here, synchronously
    with session_scope() as s:
        second = jobs.retrain(s, first, version_id)
    _run_worker(second)
    before, after = predictions.load_predictions(first, "test"), predictions.load_predictions(second, "test")
    key = [ROW_ID, "text", "label"]
    assert before[key].sort_values(ROW_ID).reset_index(drop=True).equals(
        after[key].sort_values(ROW_ID).reset_index(drop=True))
    with session_scope() as s:
        runs = [run_queries.get_run(s, first), run_queries.get_run(s, second)]
        assert runs[0].metrics["test_set"] == runs[1].metrics["test_set"]
        assert testsets.check_test_sets(runs).same
    # The validation change did happen, and only to that row.
    new = _frame(version_id)
    assert new.loc[(new["split"] == "validation") & (new["text"] == v["text"]), "label"].eq(_other(v["label"])).all()


def test_validation_changes_never_reach_test_rows_with_the_same_text(classification_dataset: int) -> None:
    frame = _frame(classification_dataset)
    row = frame[frame["split"] == "test"].iloc[0]
    # The same text and label said to be in validation: a stale hint, never a test edit.
    with session_scope() as s, pytest.raises(versions.VersionError, match="none of the marked rows"):
        versions.create_dataset_version(s, classification_dataset, [
            {"action": "exclude", "split": "validation", "text": row["text"], "label": row["label"]}])
    with session_scope() as s, pytest.raises(versions.VersionError, match="stays as it was uploaded"):
        versions.create_dataset_version(s, classification_dataset, [
            {"action": "exclude", "split": "test", "text": row["text"], "label": row["label"]}])


def test_marked_test_mistakes_make_a_new_named_test_set_only_when_asked(classification_dataset: int) -> None:
    frame = _frame(classification_dataset)
    test = frame[frame["split"] == "test"]
    first = test.iloc[0]
    mark = {"action": "relabel", "split": "test", "text": first["text"], "label": first["label"],
            "to": _other(first["label"]), ROW_ID: int(first[ROW_ID])}
    with session_scope() as s:
        assert versions.mark_test_rows(s, classification_dataset, [mark]) == 1
    assert _frame(classification_dataset).equals(frame)  # marking changes nothing
    with session_scope() as s:
        version = versions.create_dataset_version(s, classification_dataset, [], new_test_set=True)
        version_id, name = version.id, versions.test_set_name(version)
        assert versions.pending_test_marks(version) == []
    assert name == "tiny-sentiment test set 2"
    new = _frame(version_id)
    changed = new[new[ROW_ID] == int(first[ROW_ID])]
    assert changed["label"].tolist() == [_other(first["label"])] and changed["split"].tolist() == ["test"]
    assert new[new["split"] == "train"][["text", "label", ROW_ID]].reset_index(drop=True).equals(
        frame[frame["split"] == "train"][["text", "label", ROW_ID]].reset_index(drop=True))


def test_compare_qualifies_runs_on_different_test_sets(classification_dataset: int) -> None:
    labels, preds = sklearn_predictions(classification_dataset)
    a = store_completed_run(classification_dataset, labels, preds, name="a")
    b = store_completed_run(classification_dataset, labels, preds, name="b")
    edited = {**preds, "test": preds["test"].iloc[1:].reset_index(drop=True)}  # one test row fewer
    edited["test"].loc[0, "label"] = _other(edited["test"].loc[0, "label"])  # and one relabelled
    c = store_completed_run(classification_dataset, labels, edited, name="c")
    with session_scope() as s:
        same = testsets.check_test_sets([run_queries.get_run(s, a), run_queries.get_run(s, b)])
        differ = testsets.check_test_sets([run_queries.get_run(s, a), run_queries.get_run(s, c)])
    assert same.same and same.message == ""
    n = len(preds["test"])
    assert not differ.same and differ.shared_rows == n - 2 and "different test sets" in differ.message
    shared = testsets.scores_on_shared_rows([a, c])
    assert shared["rows"].tolist() == [n - 2, n - 2]
    assert shared["macro_f1"].iloc[0] == pytest.approx(shared["macro_f1"].iloc[1])  # same model, same rows


def test_runs_on_unrelated_test_sets_share_no_rows(classification_dataset: int) -> None:
    labels, preds = sklearn_predictions(classification_dataset)
    a = store_completed_run(classification_dataset, labels, preds, name="a")
    other = {**preds, "test": preds["test"].assign(text=preds["test"]["text"] + " (elsewhere)")}
    b = store_completed_run(classification_dataset, labels, other, name="b")
    with session_scope() as s:
        check = testsets.check_test_sets([run_queries.get_run(s, a), run_queries.get_run(s, b)])
    assert not check.same and check.shared_rows == 0 and "share no test rows" in check.message


def test_evaluate_page_marks_test_mistakes_and_compare_says_the_test_sets_differ(classification_dataset: int) -> None:
    from streamlit.testing.v1 import AppTest

    labels, preds = sklearn_predictions(classification_dataset)
    first = store_completed_run(classification_dataset, labels, preds, name="first")
    at = AppTest.from_file(str(ROOT / "pages" / "evaluate.py"), default_timeout=60)
    at.query_params["run"] = str(first)
    at.run()
    assert not at.exception and at.radio(key="err_split").value == "validation"
    at.radio(key="err_split").set_value("test").run()
    assert at.button(key="new_test_set").disabled  # nothing marked yet
    assert not any(b.key == "save_version" for b in at.button)  # test rows are never saved into a version
    wrong = preds["test"][preds["test"]["label"] != preds["test"]["pred"]]
    row = (wrong if len(wrong) else preds["test"]).iloc[0]
    with session_scope() as s:
        versions.mark_test_rows(s, classification_dataset, [{"action": "relabel", "split": "test", "text": row["text"],
                                                            "label": row["label"], "to": _other(row["label"])}])
    at.run()
    at.button(key="new_test_set").click().run()
    assert not at.exception
    _, version_id, name = at.session_state["new_version"]
    with session_scope() as s:
        assert versions.test_set_name(get_dataset(s, version_id)) == "tiny-sentiment test set 2"
    labels2, preds2 = sklearn_predictions(version_id)
    second = store_completed_run(version_id, labels2, preds2, name="second")
    at = AppTest.from_file(str(ROOT / "pages" / "evaluate.py"), default_timeout=60)
    at.session_state["compare_preset"] = [first, second]
    at.run()
    at.segmented_control(key="mode").set_value("Compare runs").run()
    assert not at.exception
    assert any("different test sets" in w.value for w in at.warning)
    shared = next(d.value for d in at.dataframe if "rows" in d.value.columns)  # st.dataframe keeps no key here
    assert shared["rows"].tolist() == [len(preds["test"]) - 1] * 2
