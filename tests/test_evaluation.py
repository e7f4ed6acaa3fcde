"""core.evaluation (predictions, analysis, comparison), dataset versions and retraining: the error-to-data loop."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from core.data import versions
from core.evaluation import analysis, comparison, predictions
from core.evaluation.metrics import classification_report
from core.runs import jobs
from core.settings import run_dir
from db import runs as run_queries
from db import session_scope
from tests.conftest import sklearn_predictions, store_completed_run, store_lstm_runs, store_ranking_run


def hand_preds() -> pd.DataFrame:
    # 3 classes; "c" is never predicted. Confusion matrix (rows true a,b,c; cols predicted a,b,c):
    # a: [2, 1, 0]   b: [0, 2, 0]   c: [1, 1, 0]
    rows = [("a", "a", 0.9), ("a", "a", 0.8), ("a", "b", 0.7), ("b", "b", 0.6), ("b", "b", 0.95),
            ("c", "a", 0.55), ("c", "b", 0.85)]
    proba = {"a": [0.8, 0.1, 0.1], "b": [0.1, 0.8, 0.1]}
    return pd.DataFrame({"text": [f"t{i}" for i in range(len(rows))], "label": [r[0] for r in rows],
                         "pred": [r[1] for r in rows], "confidence": [r[2] for r in rows],
                         "proba": [proba[r[1]] for r in rows]})


def test_report_matches_hand_computed_confusion_matrix_with_never_predicted_class() -> None:
    preds = hand_preds()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # zero_division must be handled, not warned about
        report = classification_report(preds["label"], preds["pred"], ["a", "b", "c"],
                                       np.asarray(preds["proba"].tolist()))
    assert report["confusion_matrix"] == [[2, 1, 0], [0, 2, 0], [1, 1, 0]]
    pc = report["per_class"]
    assert pc["a"]["precision"] == pytest.approx(2 / 3) and pc["a"]["recall"] == pytest.approx(2 / 3)
    assert pc["b"]["precision"] == pytest.approx(2 / 4) and pc["b"]["recall"] == pytest.approx(1.0)
    assert pc["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert report["accuracy"] == pytest.approx(4 / 7)
    f1_a, f1_b = 2 / 3, 2 * 0.5 * 1 / 1.5
    assert report["macro_f1"] == pytest.approx((f1_a + f1_b + 0) / 3)
    assert report["weighted_f1"] == pytest.approx((3 * f1_a + 2 * f1_b) / 7)
    assert report["majority_rate"] == pytest.approx(3 / 7) and report["majority_label"] == "a"


def test_misclassified_most_confident_first_and_cell_filter() -> None:
    wrong = analysis.misclassified(hand_preds())
    assert list(wrong.columns) == ["row", "text", "true", "predicted", "confidence"]
    assert wrong["confidence"].tolist() == [0.85, 0.7, 0.55]
    assert wrong["row"].tolist() == [6, 2, 5]
    cell = analysis.misclassified(hand_preds(), true="c", predicted="a")
    assert cell[["true", "predicted", "text"]].values.tolist() == [["c", "a", "t5"]]
    assert analysis.misclassified(hand_preds(), true="b").empty


def test_calibration_bins_and_ece_by_hand() -> None:
    preds = pd.DataFrame({"text": list("abcd"), "label": ["x", "x", "y", "y"], "pred": ["x", "y", "y", "y"],
                          "confidence": [0.95, 0.95, 0.55, 0.55]})
    cal = analysis.calibration(preds, n_bins=10)
    assert sum(cal.count) == 4 and cal.count[9] == 2 and cal.count[5] == 2
    assert cal.accuracy[9] == pytest.approx(0.5) and cal.accuracy[5] == pytest.approx(1.0)
    # ECE = 2/4 * |0.5 - 0.95| + 2/4 * |1.0 - 0.55|
    assert cal.ece == pytest.approx(0.5 * 0.45 + 0.5 * 0.45)
    assert cal.accuracy[0] is None


def test_curves_auc_match_sklearn() -> None:
    from sklearn.metrics import average_precision_score, roc_auc_score

    preds = hand_preds()
    roc, pr = analysis.curves(preds, ["a", "b", "c"])
    proba = np.asarray(preds["proba"].tolist())
    for i, label in enumerate(["a", "b", "c"]):
        truth = preds["label"] == label
        assert roc[label].area == pytest.approx(roc_auc_score(truth, proba[:, i]))
        assert pr[label].area == pytest.approx(average_precision_score(truth, proba[:, i]))
        assert roc[label].x[0] == 0.0 and roc[label].x[-1] == 1.0


def test_threshold_table_binary() -> None:
    preds = pd.DataFrame({"text": list("abcd"), "label": ["n", "p", "p", "n"], "pred": ["n", "p", "n", "p"],
                          "confidence": [0.9, 0.8, 0.6, 0.7],
                          "proba": [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]]})
    table = analysis.threshold_table(preds, ["n", "p"], "p", steps=11)
    at_half = table[table["threshold"].round(2) == 0.5].iloc[0]
    assert at_half["precision"] == pytest.approx(0.5) and at_half["recall"] == pytest.approx(0.5)
    at_zero = table.iloc[0]
    assert at_zero["recall"] == 1.0 and at_zero["predicted_positive"] == 4
    assert table.iloc[-1]["precision"] == 0.0  # nothing predicted positive at 1.0: 0, not a warning


def test_stored_metrics_are_read_not_recomputed(completed_classification_run: int) -> None:
    with session_scope() as s:
        run = run_queries.get_run(s, completed_classification_run)
        run.metrics = {**run.metrics, "reports": {**run.metrics["reports"],
                                                 "test": {**run.metrics["reports"]["test"], "accuracy": 0.123}}}
    with session_scope() as s:
        run = run_queries.get_run(s, completed_classification_run)
        assert predictions.split_report(run, "test")["accuracy"] == 0.123
        assert predictions.split_report(run, "val")["n"] > 0


def test_missing_or_corrupted_artifacts_raise_clear_error(completed_classification_run: int) -> None:
    path = predictions.predictions_path(completed_classification_run, "test")
    path.write_bytes(b"not parquet at all")
    with pytest.raises(predictions.ArtifactsMissing, match="corrupted"):
        predictions.load_predictions(completed_classification_run, "test")
    import shutil

    shutil.rmtree(run_dir(completed_classification_run))
    with pytest.raises(predictions.ArtifactsMissing, match="no validation predictions"):
        predictions.load_predictions(completed_classification_run, "val")
    with pytest.raises(predictions.ArtifactsMissing):
        predictions.load_meta(completed_classification_run)


def _two_tfidf_runs_and_an_lstm(dataset_id: int) -> tuple[int, int, int]:
    """Three completed runs on one dataset, in this order: the TF-IDF baselines first, then an LSTM."""
    labels, preds = sklearn_predictions(dataset_id)
    return tuple(store_completed_run(dataset_id, labels, preds, model_kind=kind)  # type: ignore[return-value]
                 for kind in ("tfidf", "tfidf", "lstm"))


def test_baseline_is_best_other_tfidf_run_on_same_dataset(classification_dataset: int) -> None:
    weak, strong, lstm = _two_tfidf_runs_and_an_lstm(classification_dataset)
    with session_scope() as s:
        run_queries.get_run(s, weak).metrics = {**run_queries.get_run(s, weak).metrics, "macro_f1": 0.1}
    with session_scope() as s:
        assert comparison.baseline_run(s, run_queries.get_run(s, lstm)).id == strong
        assert comparison.baseline_run(s, run_queries.get_run(s, strong)) is None  # a baseline has none
        table = comparison.headline_table(predictions.split_report(run_queries.get_run(s, lstm), "test"),
                                  run_queries.get_run(s, strong).metrics)
    assert table["TF-IDF baseline"].notna().all()
    assert table.loc[table["metric"] == "accuracy", "majority class"].iloc[0] == pytest.approx(0.5, abs=0.2)


def test_leaderboard_sorted_with_differing_hyperparameters(classification_dataset: int) -> None:
    a, b = store_lstm_runs(classification_dataset, 1, 3)
    with session_scope() as s:
        run_queries.get_run(s, a).metrics = {**run_queries.get_run(s, a).metrics, "macro_f1": 0.2}
    with session_scope() as s:
        runs = [run_queries.get_run(s, a), run_queries.get_run(s, b)]
        assert comparison.config_differences(runs) == ["epochs"]
        board = comparison.leaderboard(runs)
    assert board["run"].tolist() == [b, a]
    assert {"model", "epochs", "learning_rate", "duration_s", "device", "macro_f1"} <= set(board.columns)


def test_tfidf_runs_differ_only_in_settings_tfidf_uses(classification_dataset: int) -> None:
    # Every classification run stores the full shared config; TF-IDF never reads epochs or a learning rate.
    labels, preds = sklearn_predictions(classification_dataset)
    shared = {"batch_size": 32, "tfidf_c": 4.0, "seed": 0}
    a = store_completed_run(classification_dataset, labels, preds, config={**shared, "epochs": 1,
                                                                            "learning_rate": 0.1})
    b = store_completed_run(classification_dataset, labels, preds, config={**shared, "epochs": 3,
                                                                            "learning_rate": 0.2, "tfidf_c": 1.0})
    lstm = store_completed_run(classification_dataset, labels, preds, model_kind="lstm",
                               config={**shared, "epochs": 3, "learning_rate": 0.2})
    with session_scope() as s:
        runs = [run_queries.get_run(s, i) for i in (a, b)]
        assert comparison.config_differences(runs) == ["tfidf_c"]
        board = comparison.leaderboard(runs)
        assert comparison.settings_of(runs[0]) == {"tfidf_c": 4.0, "seed": 0}
        assert comparison.config_differences([runs[1], run_queries.get_run(s, lstm)]) == []
    assert not {"epochs", "learning_rate", "batch_size"} & set(board.columns)
    assert board["tfidf_c"].tolist() == [4.0, 1.0]


def test_tfidf_run_is_the_baseline_not_one_without_a_baseline(classification_dataset: int) -> None:
    first, second, lstm = _two_tfidf_runs_and_an_lstm(classification_dataset)
    with session_scope() as s:
        run = run_queries.get_run(s, second)
        caption = comparison.baseline_caption(run, comparison.baseline_run(s, run))
        assert "TF-IDF baseline" in caption and "No completed" not in caption
        assert not comparison.has_epochs(run)
        other = run_queries.get_run(s, lstm)
        assert comparison.baseline_caption(other, run_queries.get_run(s, first)).startswith(f"Baseline: #{first}")
        assert comparison.has_epochs(other)


def test_ranking_metrics_read_from_run(interactions_dataset: int) -> None:
    run_id = store_ranking_run(interactions_dataset)
    with session_scope() as s:
        run = run_queries.get_run(s, run_id)
        assert predictions.is_ranking(run)
        by_k = comparison.ranking_by_k(run)
        head = comparison.ranking_headline(run)
    assert list(by_k) == [1, 5, 10, 20]
    assert head["ndcg@10"] == pytest.approx(by_k[10]["ndcg"]) and "coverage" in head


def test_dataset_version_relabel_and_exclude(classification_dataset: int) -> None:
    from core.data.storage import load_frame
    from db.datasets import get_dataset

    with session_scope() as s:
        frame = load_frame(get_dataset(s, classification_dataset))
    val_rows = frame[frame["split"] == "validation"]  # the test split stays as uploaded (tests/test_testsets.py)
    first, second = val_rows.iloc[0], val_rows.iloc[1]
    other = "negative" if first["label"] == "positive" else "positive"
    changes = [{"action": "relabel", "split": "validation", "text": first["text"], "label": first["label"],
                "to": other},
               {"action": "exclude", "split": "validation", "text": second["text"], "label": second["label"]}]
    with session_scope() as s:
        version = versions.create_dataset_version(s, classification_dataset, changes, source_run_id=None)
    with session_scope() as s:
        child = get_dataset(s, version.id)
        new = load_frame(child)
        assert child.parent_id == classification_dataset and child.name == "tiny-sentiment v2"
        assert child.changes["relabelled"] >= 1 and child.changes["excluded"] >= 1
        assert [c["action"] for c in child.changes["changes"]] == ["relabel", "exclude"]
    assert len(new) == len(frame) - child.changes["excluded"]
    assert (new[new["text"] == first["text"]]["label"] == other).all()
    assert second["text"] not in set(new.loc[new["split"] == "validation", "text"])
    test_rows = frame[frame["split"] == "test"].reset_index(drop=True)
    assert new[new["split"] == "test"].reset_index(drop=True).equals(test_rows)
    with session_scope() as s:
        again = versions.create_dataset_version(s, version.id, [changes[0] | {"label": other, "to": first["label"]}])
    assert again.name == "tiny-sentiment v3"


def test_dataset_version_rejects_bad_marks(classification_dataset: int) -> None:
    with session_scope() as s, pytest.raises(versions.VersionError, match="no rows are marked"):
        versions.create_dataset_version(s, classification_dataset, [])
    with session_scope() as s, pytest.raises(versions.VersionError, match="not a label"):
        versions.create_dataset_version(s, classification_dataset, [{"action": "relabel", "split": "validation",
                                                                      "text": "x", "to": "<script>"}])
    with session_scope() as s, pytest.raises(versions.VersionError, match="none of the marked rows were found"):
        versions.create_dataset_version(s, classification_dataset, [{"action": "exclude", "split": "validation",
                                                                      "text": "nope"}])


def test_retrain_starts_run_with_same_model_and_config(completed_classification_run: int, classification_dataset: int,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import core.runs.jobs

    monkeypatch.setattr(core.runs.jobs, "launch_worker", lambda run_id, gpus=1: 0)  # no worker process in a unit test
    with session_scope() as s:
        new_id = jobs.retrain(s, completed_classification_run, classification_dataset)
    with session_scope() as s:
        old, new = run_queries.get_run(s, completed_classification_run), run_queries.get_run(s, new_id)
        assert (new.model_kind, new.config, new.dataset_id) == (old.model_kind, old.config, classification_dataset)
        assert new.parent_run_id == old.id and new.status.value == "queued"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, protolab_home) -> str:  # noqa: ANN001
    if request.param == "sqlite":
        return f"sqlite:///{protolab_home / 'protolab.db'}"
    return request.getfixturevalue("fresh_postgres_url")


def test_run_records_and_baseline_query_json_in_sql(db_url: str) -> None:
    """Leaderboard rows and the baseline come from JSON extracted in SQL, on SQLite and PostgreSQL."""
    from db import init_db
    from db.enums import RunStatus, TaskKind
    from db.models import Dataset

    init_db(db_url)
    with session_scope(db_url) as s:
        ds = Dataset(name="d", task=TaskKind.CLASSIFICATION, mapping={}, content_hash="0" * 64, storage_path="/x")
        s.add(ds)
        s.flush()
        ids = {}
        for kind, f1 in (("tfidf", 0.61), ("tfidf", 0.72), ("lstm", 0.9), ("tfidf", None)):
            run = run_queries.create_run(s, dataset_id=ds.id, task=TaskKind.CLASSIFICATION, model_kind=kind,
                                         config={"epochs": 1})
            run.status = RunStatus.COMPLETED
            run.metrics = {"macro_f1": f1, "accuracy": 0.5, "reports": {"test": {"big": list(range(50))}},
                           "ndcg@10": None} if f1 is not None else {}
            ids[(kind, f1)] = run.id
        queued = run_queries.create_run(s, dataset_id=ds.id, task=TaskKind.CLASSIFICATION, model_kind="tfidf",
                                        config={})
    with session_scope(db_url) as s:
        lstm = run_queries.get_run(s, ids[("lstm", 0.9)])
        assert comparison.baseline_run(s, lstm).id == ids[("tfidf", 0.72)]
        assert run_queries.best_completed_run_of_kind(s, ds.id, "tfidf", exclude_run_id=ids[("tfidf", 0.72)],
                                                      metric_key="macro_f1").id == ids[("tfidf", 0.61)]
        assert comparison.baseline_run(s, run_queries.get_run(s, ids[("tfidf", 0.72)])) is None
        records = run_queries.run_records(s, comparison.RECORD_METRICS, dataset_ids=[ds.id])
    assert queued.id not in {r.id for r in records} and len(records) == 4
    by_id = {r.id: r for r in records}
    assert by_id[ids[("lstm", 0.9)]].metrics == {"macro_f1": 0.9, "accuracy": 0.5}  # no reports, no nulls
    assert by_id[ids[("tfidf", None)]].metrics == {}
    assert comparison.leaderboard(records)["run"].iloc[0] == ids[("lstm", 0.9)]


def test_marks_to_changes() -> None:
    marks = pd.DataFrame({"row": [0, 1, 2, 3], "text": ["a", "b", "c", "d"], "true": ["x", "y", "x", "y"],
                          "predicted": ["y", "x", "y", "x"], "confidence": [0.9, 0.8, 0.7, 0.6],
                          "exclude": [True, False, False, True], "relabel_to": [None, "x", "x", "x"]})
    assert versions.marks_to_changes(marks, "validation") == [
        {"action": "exclude", "split": "validation", "text": "a", "label": "x"},
        {"action": "relabel", "split": "validation", "text": "b", "label": "y", "to": "x"},
        {"action": "exclude", "split": "validation", "text": "d", "label": "y"}]  # exclude wins; c is a no-op


def test_majority_scores_match_sklearn_on_an_always_majority_predictor() -> None:
    y_true = ["a"] * 5 + ["b"] * 3 + ["c"] * 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        real = classification_report(y_true, ["a"] * len(y_true), ["a", "b", "c"])
    expected = comparison.majority_scores(classification_report(y_true, y_true, ["a", "b", "c"]))
    for key, value in expected.items():
        assert real[key] == pytest.approx(value), key
    table = comparison.headline_table(real, None)
    assert table["majority class"].notna().all() and table["TF-IDF baseline"].isna().all()


def test_predictions_csv_neutralises_formulas(completed_classification_run: int) -> None:
    import io

    path = predictions.predictions_path(completed_classification_run, "test")
    frame = pd.read_parquet(path)
    frame.loc[0, "text"] = '=HYPERLINK("http://evil","x")'
    frame.loc[1, "text"] = "@SUM(A1)"
    frame.to_parquet(path, index=False)
    data = predictions.predictions_csv(completed_classification_run, "test")
    back = pd.read_csv(io.BytesIO(data), encoding="utf-8-sig")
    assert back.loc[0, "text"] == "'=HYPERLINK(\"http://evil\",\"x\")" and back.loc[1, "text"] == "'@SUM(A1)"
    assert list(back.columns) == ["text", "label", "pred", "confidence", "correct"]


def test_dataset_version_finds_rows_of_a_split_cut_by_training(classification_dataset: int) -> None:
    """Validation predictions of a dataset without a validation split come from its train rows."""
    from core.data.storage import load_frame
    from db.datasets import get_dataset

    with session_scope() as s:
        frame = load_frame(get_dataset(s, classification_dataset))
    row = frame[frame["split"] == "train"].iloc[0]
    with session_scope() as s:
        version = versions.create_dataset_version(s, classification_dataset, [
            {"action": "exclude", "split": "validation", "text": row["text"], "label": row["label"]}])
    with session_scope() as s:
        new = load_frame(get_dataset(s, version.id))
    assert len(new) == len(frame) - int(((frame["text"] == row["text"]) & (frame["label"] == row["label"])).sum())


def test_error_to_data_loop_with_real_worker_runs(classification_dataset: int) -> None:
    """Train TF-IDF for real, exclude its most confident mistakes, retrain on the version, compare."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    from core.text.config import build_config
    from db.enums import TaskKind

    with session_scope() as s:
        first = run_queries.create_run(s, dataset_id=classification_dataset, task=TaskKind.CLASSIFICATION,
                                       model_kind="tfidf", config=build_config("tfidf", {}), name="first").id
    subprocess.run([sys.executable, "-m", "core.runs.worker", str(first)], capture_output=True, timeout=300,
                   cwd=Path(__file__).resolve().parent.parent)
    preds = predictions.load_predictions(first, "validation")
    marks = analysis.misclassified(preds).head(3).assign(exclude=True, relabel_to=None)
    if len(marks) < 2:  # a (nearly) perfect first run: mark its most confident rows instead
        marks = preds.sort_values("confidence", ascending=False).head(2).rename(
            columns={"label": "true", "pred": "predicted"}).assign(exclude=True, relabel_to=None)
    with session_scope() as s:
        changes = versions.marks_to_changes(marks, "validation")
        version = versions.create_dataset_version(s, classification_dataset, changes, source_run_id=first)
    with session_scope() as s:
        second = jobs.retrain(s, first, version.id)  # launches the real worker (detached) after the commit
    deadline = time.time() + 240
    while time.time() < deadline:
        with session_scope() as s:
            status = run_queries.get_run(s, second).status.value
        if status not in ("queued", "running"):
            break
        time.sleep(0.5)
    with session_scope() as s:
        runs = [run_queries.get_run(s, first), run_queries.get_run(s, second)]
        assert runs[1].status.value == "completed", runs[1].error
        assert runs[1].config == runs[0].config and runs[1].parent_run_id == first
        assert runs[1].dataset.parent_id == classification_dataset and runs[1].dataset.changes["excluded"] >= 2
        board = comparison.leaderboard(run_queries.run_records(s, comparison.RECORD_METRICS, run_ids=[first, second]))
    assert sorted(board["run"]) == [first, second] and board["macro_f1"].notna().all()
    assert predictions.predictions_path(second, "test").exists()
