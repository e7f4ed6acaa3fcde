"""Labelling in the app: unlabelled datasets, the label set, labels stored as given (and undo), saving a labelled
version, the next-text strategies, and the background retrain's bookkeeping."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hyp

from core.data import datasets as ds
from core.data.types import DatasetError
from core.data.unlabelled import prepare_unlabelled
from core.labelling import pool, retrain, strategy
from core.labelling.pool import LabellingError
from db import dispose_engines, read_scope, session_scope
from db.enums import RunStatus
from tests.conftest import sentiment_frame


def csv_of(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def import_pool(frame: pd.DataFrame, name: str = "tickets") -> int:
    prepared = prepare_unlabelled(ds.read_table(csv_of(frame), "tickets.csv"), "text")
    with session_scope() as s:
        return ds.import_dataset(s, prepared, name=name).id


@pytest.fixture
def pool_id() -> int:
    dataset_id = import_pool(sentiment_frame(60)[["text"]])
    with session_scope() as s:
        pool.set_label_set(s, dataset_id, pool.parse_label_set("positive: happy customers\nnegative"))
    return dataset_id


def test_unlabelled_upload_keeps_distinct_nonempty_texts() -> None:
    frame = pd.DataFrame({"text": ["a b", "", "a b", "c d", "e f", "g h"], "other": range(6)})
    prepared = prepare_unlabelled(ds.read_table(csv_of(frame), "t.csv"), "text")
    assert prepared.frame["text"].tolist() == ["a b", "c d", "e f", "g h"]
    assert prepared.frame["label"].isna().all() and set(prepared.frame["split"]) == {"train"}
    assert prepared.mapping["unlabelled"] is True
    assert any("empty" in w for w in prepared.warnings) and any("duplicate" in w for w in prepared.warnings)


def test_unlabelled_upload_names_a_missing_column() -> None:
    with pytest.raises(DatasetError, match="column 'body'"):
        prepare_unlabelled(ds.read_table(csv_of(pd.DataFrame({"text": ["a", "b"]})), "t.csv"), "body")


def test_label_set_parsing_says_which_line_is_wrong() -> None:
    assert pool.parse_label_set("bug: something broke\n\nfeature:  wants   more ") == [
        ("bug", "something broke"), ("feature", "wants more")]
    with pytest.raises(LabellingError, match="line 2.*listed twice"):
        pool.parse_label_set("bug\nbug")
    with pytest.raises(LabellingError, match="at least two labels"):
        pool.parse_label_set("bug")


def test_labels_are_stored_as_given_undone_and_survive_a_new_connection(pool_id: int) -> None:
    with session_scope() as s:
        pool.record_label(s, pool_id, 0, "positive")
        pool.record_label(s, pool_id, 1, "negative")
        pool.record_label(s, pool_id, 1, "positive")  # changed mind: the latest wins
        pool.record_label(s, pool_id, 2, None)  # skip
    dispose_engines()  # as after a server restart: nothing lives in memory
    with read_scope() as s:
        state = pool.label_state(s, pool_id)
    assert state.labels == {0: "positive", 1: "positive"} and state.skipped == {2}
    assert state.counts == {"positive": 2, "negative": 0}
    with session_scope() as s:
        assert pool.undo_last(s, pool_id) == 2
        assert pool.undo_last(s, pool_id) == 1
    with read_scope() as s:
        state = pool.label_state(s, pool_id)
    assert state.labels == {0: "positive", 1: "negative"} and state.skipped == set()


def test_bad_labels_and_rows_are_refused(pool_id: int) -> None:
    with session_scope() as s, pytest.raises(LabellingError, match="'neutral' is not in the label set"):
        pool.record_label(s, pool_id, 0, "neutral")
    with session_scope() as s, pytest.raises(LabellingError, match="row 999 is not in"):
        pool.record_label(s, pool_id, 999, "positive")
    with session_scope() as s:
        pool.record_label(s, pool_id, 0, "negative")
    with session_scope() as s, pytest.raises(LabellingError, match="'negative' is already given to 1 rows"):
        pool.set_label_set(s, pool_id, [("positive", ""), ("neutral", "")])


def test_labelled_rows_become_a_normal_dataset_version(pool_id: int) -> None:
    from core.data.storage import load_frame
    from core.text.executor import load_splits

    with read_scope() as s:
        texts = load_frame(ds._get(s, pool_id))["text"]
    with session_scope() as s:
        for row in range(20):
            pool.record_label(s, pool_id, row, "positive" if any(w in texts[row] for w in
                                                                  ("great", "love", "excellent", "wonderful",
                                                                   "fantastic", "happy", "perfect", "amazing"))
                              else "negative")
        pool.record_label(s, pool_id, 20, None)
    with session_scope() as s:
        version = pool.save_labelled_version(s, pool_id)
        version_id, name, parent = version.id, version.name, version.parent_id
    assert name == "tickets labelled" and parent == pool_id  # the first one: no "v2" before there is a v1
    with session_scope() as s:
        assert pool.save_labelled_version(s, pool_id).name == "tickets labelled v2"
    with read_scope() as s:
        stored = ds._get(s, version_id)
        assert not pool.is_unlabelled(stored)
        splits = load_splits(stored)
    assert sum(len(f) for f in splits.values()) == 20
    assert set(splits["train"]["label"]) == {"positive", "negative"}


def test_a_version_needs_labels(pool_id: int) -> None:
    with session_scope() as s, pytest.raises(LabellingError, match="no labelled rows yet"):
        pool.save_labelled_version(s, pool_id)


# --- what to label next -----------------------------------------------------------------------

def blobs(seed: int = 0) -> np.ndarray:
    """Three tight groups of 10 points: 0-9, 10-19, 20-29."""
    rng = np.random.default_rng(seed)
    centres = np.eye(3) * 10
    return np.vstack([c + rng.normal(0, 0.1, (10, 3)) for c in centres])


def test_diverse_takes_one_text_per_cluster_then_moves_on() -> None:
    clusters = strategy.cluster_pool(blobs(), k=3)
    picks = strategy.pick_diverse(clusters, done=[], n=3)
    assert sorted(p // 10 for p in picks) == [0, 1, 2]
    assert [p // 10 for p in strategy.pick_diverse(clusters, done=[0, 11], n=3)] == [2]
    assert strategy.pick_diverse(clusters, done=[0, 11, 25], n=3) == []


def test_uncertain_picks_the_smallest_margin_among_unlabelled() -> None:
    proba = np.array([[0.9, 0.1], [0.55, 0.45], [0.5, 0.5], [0.7, 0.3]])
    assert strategy.pick_uncertain(proba, done=[2], n=2) == [1, 3]
    assert strategy.pick_uncertain(proba, done=[], n=1, rows=np.array([10, 11, 12, 13])) == [12]


def test_an_uncertain_batch_is_spread_over_clusters() -> None:
    clusters = strategy.cluster_pool(blobs(), k=3)
    proba = np.tile([0.95, 0.05], (30, 1))
    proba[0:4] = [0.5, 0.5]  # the four least sure texts all sit in the first group
    proba[12] = [0.6, 0.4]
    assert strategy.pick_uncertain(proba, done=[], n=2) == [0, 1]
    assert strategy.pick_uncertain(proba, done=[], n=2, clusters=clusters) == [0, 12]


def test_auto_is_diverse_first_then_uncertain_and_random_never_repeats() -> None:
    clusters = strategy.cluster_pool(blobs(), k=3)
    proba = np.tile([0.9, 0.1], (30, 1))
    proba[17] = [0.5, 0.5]
    picks, used = strategy.choose_next("auto", n_rows=30, labelled=[], skipped=[], n=1, clusters=clusters,
                                       proba=proba)
    assert used == "diverse" and len(picks) == 1
    picks, used = strategy.choose_next("auto", n_rows=30, labelled=[0, 10], skipped=[20], n=1, clusters=clusters,
                                       proba=proba)
    assert (picks, used) == ([17], "uncertain")
    picks, used = strategy.choose_next("random", n_rows=30, labelled=range(25), skipped=[], n=10, seed=1)
    assert used == "random" and sorted(picks) == [25, 26, 27, 28, 29]
    with pytest.raises(ValueError, match="unknown strategy"):
        strategy.choose_next("smart", n_rows=3, labelled=[], skipped=[], n=1)


def test_retrain_is_due_every_n_new_labels_one_at_a_time(pool_id: int) -> None:
    with session_scope() as s:
        for row in range(5):
            pool.record_label(s, pool_id, row, "positive" if row % 2 else "negative")
    with read_scope() as s:
        status = retrain.retrain_status(s, pool_id)
    assert status.new_labels == 5 and status.active_run_id is None
    counts = {"positive": 2, "negative": 3}
    assert retrain.should_retrain(status, every=5, class_counts=counts)
    assert not retrain.should_retrain(status, every=6, class_counts=counts)
    assert not retrain.should_retrain(status, every=5, class_counts={"positive": 5, "negative": 0})
    from db import runs as run_queries
    from db.enums import TaskKind

    with session_scope() as s:  # a queued retrain (no worker: created directly) blocks another
        run_queries.create_run(s, dataset_id=pool_id, task=TaskKind.CLASSIFICATION, model_kind=retrain.RETRAIN_KIND,
                               config={})
    with read_scope() as s:
        status = retrain.retrain_status(s, pool_id)
    assert status.active_run_id is not None and status.new_labels == 0
    assert not retrain.should_retrain(status, every=1, class_counts=counts)
    assert RunStatus.QUEUED.is_active


# --- the CLI ----------------------------------------------------------------------------------

def test_cli_adds_an_unlabelled_dataset(tmp_path, capsys) -> None:  # noqa: ANN001
    from core.cli import main

    path = tmp_path / "tickets.csv"
    sentiment_frame(30).rename(columns={"label": "ignored"})[["text"]].to_csv(path, index=False)
    # The command exactly as the issue writes it: no --name, so the dataset is named after the file.
    code = main(["datasets", "add", str(path), "--task", "classification", "--text-col", "text", "--unlabelled"])
    out = capsys.readouterr().out
    assert code == 0 and "30 unlabelled texts" in out
    with read_scope() as s:
        [dataset] = pool.unlabelled_datasets(s)
        assert dataset.name == "tickets" and dataset.row_count == 30
    assert main(["datasets", "add", str(path), "--name", "t2", "--task", "classification", "--unlabelled",
                 "--label-col", "x"]) != 0
    assert "--unlabelled takes no --label-col" in capsys.readouterr().err
    assert main(["train", "--dataset", "tickets", "--model", "tfidf"]) != 0
    assert "is unlabelled: label it on the Label page" in capsys.readouterr().err


def test_setfit_on_a_dataset_being_labelled_runs_as_the_retrain_job(monkeypatch, capsys) -> None:  # noqa: ANN001
    from core.cli import main
    from core.runs import jobs
    from db import runs as run_queries

    monkeypatch.setattr(jobs, "launch_worker", lambda run_id, gpus=1: 0)  # the job itself: tests/test_setfit.py
    dataset_id = import_pool(sentiment_frame(30)[["text"]])
    assert main(["train", "--dataset", str(dataset_id), "--model", "tfidf"]) != 0
    assert "or train SetFit on the labels given so far" in capsys.readouterr().err
    assert main(["train", "--dataset", str(dataset_id), "--model", "setfit", "--json"]) == 0
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    with read_scope() as s:
        assert run_queries.get_run(s, run_id).model_kind == retrain.RETRAIN_KIND
        assert retrain.retrain_status(s, dataset_id).active_run_id == run_id


# --- charts and the label-set parser's contract ---------------------------------------------------

def test_labelling_charts_show_the_counts_and_the_curve() -> None:
    from core.charts import labelling as charts

    bars = charts.labels_per_class({"bug": 3, "feature": 0})
    assert list(bars.data[0].x) == ["bug", "feature"] and list(bars.data[0].y) == [3, 0]
    assert "3 in all" in bars.layout.title.text
    curve = charts.learning_curve([(24, 0.5), (48, 0.625)])
    assert list(curve.data[0].x) == [24, 48] and list(curve.data[0].y) == [0.5, 0.625]


@settings(max_examples=200, deadline=None)
@given(hyp.text(max_size=400))
def test_any_label_set_text_parses_or_says_what_is_wrong(text: str) -> None:
    try:
        parsed = pool.parse_label_set(text)
    except LabellingError as exc:
        assert str(exc)
        return
    names = [name for name, _ in parsed]
    assert 2 <= len(names) <= pool.MAX_LABELS and len(set(names)) == len(names)
    assert all(name and name == name.strip() and ":" not in name and "\n" not in name for name in names)


def test_deleting_a_dataset_deletes_its_label_set_and_labels(pool_id: int) -> None:
    from db import labelling as label_queries

    with session_scope() as s:
        pool.record_label(s, pool_id, 0, "positive")
    with session_scope() as s:
        ds.delete_dataset(s, pool_id)
    with read_scope() as s:
        assert label_queries.label_events(s, pool_id) == [] and list(label_queries.label_classes(s, pool_id)) == []


def test_the_label_pages_retrain_starts_from_the_encoder_the_team_set(monkeypatch, tmp_path) -> None:  # noqa: ANN001
    from core.runs import jobs
    from core.text.pretrained import DEFAULT_MODEL_ID
    from db import runs as run_queries
    from db import session_scope

    monkeypatch.setattr(jobs, "launch_worker", lambda run_id, gpus=1: 0)  # the job itself: tests/test_setfit.py
    dataset_id = import_pool(sentiment_frame(30)[["text"]])
    with session_scope() as s:
        default_run = retrain.start_retrain(s, dataset_id, "pool")
    monkeypatch.setenv("PROTOLAB_LABEL_MODEL", str(tmp_path / "multilingual-encoder"))
    with session_scope() as s:
        chosen_run = retrain.start_retrain(s, dataset_id, "pool")
        explicit_run = retrain.start_retrain(s, dataset_id, "pool", {"model_id": DEFAULT_MODEL_ID})
    with read_scope() as s:
        assert run_queries.get_run(s, default_run).config["model_id"] in (None, DEFAULT_MODEL_ID)
        # recorded in the run when it is queued, so the run says what it started from
        assert run_queries.get_run(s, chosen_run).config["model_id"] == str(tmp_path / "multilingual-encoder")
        assert run_queries.get_run(s, explicit_run).config["model_id"] == DEFAULT_MODEL_ID
