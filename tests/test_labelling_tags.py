"""Labelling with tag sets: a pool whose label set gives several tags per text, tag sets stored as multi-label
datasets store them (an empty set is a label, not a skip), saved as a multi-label dataset, and the background
retrain that suggests tags (multi-label SetFit through a real worker)."""

from __future__ import annotations

import pandas as pd
import pytest

from core.data import datasets as ds
from core.labelling import pool, retrain
from core.labelling.pool import LabellingError
from db import dispose_engines, read_scope, session_scope
from db.enums import TaskKind
from tests.test_labelling import import_pool

TOPICS = {"billing": ("invoice", "refund", "charged"), "bug": ("crash", "error", "broken"),
          "delivery": ("parcel", "courier", "late")}


def ticket_frame(n: int = 36) -> pd.DataFrame:
    """Tickets about one or two topics each (and a few about none), the topics' words in the text."""
    names = list(TOPICS)
    texts = []
    for i in range(n):
        if i % 9 == 8:
            texts.append(f"hello there, just saying thanks {i}")
            continue
        tags = [names[i % 3]] + ([names[(i + 1) % 3]] if i % 2 else [])
        texts.append(" and ".join(f"the {TOPICS[t][i % 3]}" for t in tags) + f" on ticket {i}")
    return pd.DataFrame({"text": texts})


def truth(text: str) -> list[str]:
    return [t for t, words in TOPICS.items() if any(w in text for w in words)]


@pytest.fixture
def tag_pool() -> int:
    dataset_id = import_pool(ticket_frame())
    with session_scope() as s:
        pool.set_label_set(s, dataset_id, pool.parse_label_set("billing: money\nbug\ndelivery"), TaskKind.MULTILABEL)
    return dataset_id


def texts_of(dataset_id: int) -> pd.Series:
    from core.data.storage import load_frame

    with read_scope() as s:
        return load_frame(ds._get(s, dataset_id))["text"]


def test_tag_sets_are_stored_encoded_an_empty_set_is_a_label_and_undo_works(tag_pool: int) -> None:
    with session_scope() as s:
        pool.record_labels(s, tag_pool, 0, ["bug", "billing"])
        pool.record_labels(s, tag_pool, 1, [])  # no tag: labelled, not skipped
        pool.record_labels(s, tag_pool, 2, None)  # a skip
        pool.record_labels(s, tag_pool, 3, ["delivery"])
    dispose_engines()
    with read_scope() as s:
        state = pool.label_state(s, tag_pool)
    assert state.task == TaskKind.MULTILABEL and state.labelling.several
    assert state.labels[0] == '["billing", "bug"]' and state.labels[1] == "[]"  # as multi-label datasets store them
    assert state.sets == {0: ["billing", "bug"], 1: [], 3: ["delivery"]} and state.skipped == {2}
    assert state.counts == {"billing": 1, "bug": 1, "delivery": 1}
    with session_scope() as s:
        assert pool.undo_last(s, tag_pool) == 3
    with read_scope() as s:
        assert pool.label_state(s, tag_pool).sets == {0: ["billing", "bug"], 1: []}


def test_tag_sets_refuse_unknown_tags_and_the_kind_of_label_set_is_fixed_once_labelled(tag_pool: int) -> None:
    with session_scope() as s, pytest.raises(LabellingError, match="'refund' is not in the label set"):
        pool.record_labels(s, tag_pool, 0, ["bug", "refund"])
    with session_scope() as s:
        pool.record_labels(s, tag_pool, 0, ["bug"])
    with session_scope() as s, pytest.raises(LabellingError, match="'bug' is already given to 1 rows"):
        pool.set_label_set(s, tag_pool, [("billing", ""), ("delivery", "")])
    with session_scope() as s, pytest.raises(LabellingError, match="already labelled with several tags per text"):
        pool.set_label_set(s, tag_pool, [("billing", ""), ("bug", ""), ("delivery", "")], TaskKind.CLASSIFICATION)
    with session_scope() as s:  # a new tag may be added; the kind stays
        pool.set_label_set(s, tag_pool, [("billing", ""), ("bug", ""), ("delivery", ""), ("other", "")])
    with read_scope() as s:
        state = pool.label_state(s, tag_pool)
    assert state.task == TaskKind.MULTILABEL and state.class_names[-1] == "other"


def test_a_pool_without_a_chosen_kind_labels_one_class_a_text() -> None:
    dataset_id = import_pool(ticket_frame(12))
    with session_scope() as s:
        pool.set_label_set(s, dataset_id, [("a", ""), ("b", "")])
        with pytest.raises(LabellingError, match="one label per text: got 2"):
            pool.record_labels(s, dataset_id, 0, ["a", "b"])
    with read_scope() as s:
        assert pool.label_state(s, dataset_id).task == TaskKind.CLASSIFICATION


def test_labelled_tag_sets_become_a_multilabel_dataset_the_tag_runs_train_on(tag_pool: int) -> None:
    from core.multilabel.training import load_tag_splits

    texts = texts_of(tag_pool)
    with session_scope() as s:
        for row in range(30):
            pool.record_labels(s, tag_pool, row, truth(texts[row]))
    with session_scope() as s:
        version = pool.save_labelled_version(s, tag_pool, "tickets tagged")
        version_id = version.id
    with read_scope() as s:
        stored = ds._get(s, version_id)
        assert stored.task == TaskKind.MULTILABEL and stored.parent_id == tag_pool and not pool.is_unlabelled(stored)
        assert stored.row_count == 30 and stored.stats["n_tags"] == 3
        splits = load_tag_splits(stored)
    rows = pd.concat(splits.values())
    assert len(rows) == 30 and {t for tags in rows["tags"] for t in tags} == set(TOPICS)
    assert all(sorted(tags) == truth(text) for text, tags in zip(rows["text"], rows["tags"], strict=True))
    assert any(tags == [] for tags in rows["tags"])  # texts labelled with no tag are kept


def test_tag_suggestions_and_uncertainty_read_each_tags_probability() -> None:
    import numpy as np

    scores = retrain.PoolScores(7, ["billing", "bug", "delivery"], np.array([4, 5]),
                                np.array([[0.9, 0.55, 0.1], [0.2, 0.3, 0.97]]), (0.5, 0.5, 0.5))
    assert scores.suggested_tags(4) == {"billing": 0.9, "bug": 0.55} and scores.suggested_tags(5) == {"delivery": 0.97}
    assert scores.suggested_tags(6) is None
    assert np.allclose(scores.margins, [0.1, 0.4])  # row 4's 'bug' at 0.55 is the nearest call to make


def test_setfit_on_a_tag_pool_from_the_cli_queues_a_multilabel_retrain(tag_pool: int, monkeypatch,  # noqa: ANN001
                                                                          capsys) -> None:  # noqa: ANN001
    import json

    from core.cli import main
    from core.runs import jobs
    from db import runs as run_queries

    monkeypatch.setattr(jobs, "launch_worker", lambda run_id, gpus=1: 0)  # the job itself: the test below
    assert main(["train", "--dataset", str(tag_pool), "--model", "setfit", "--json"]) == 0
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    with read_scope() as s:
        run = run_queries.get_run(s, run_id)
        assert (run.model_kind, run.task) == (retrain.RETRAIN_KIND, TaskKind.MULTILABEL)


def test_migration_0015_keeps_the_labels_given_before_it(tmp_path) -> None:  # noqa: ANN001
    from sqlalchemy import create_engine, text
    from sqlalchemy.orm import Session

    from db import upgrade_database

    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade_database(url, "0014")
    engine = create_engine(url)
    with engine.begin() as conn:  # plain SQL with the 0014 columns: a pool labelled one class a text
        conn.execute(text("INSERT INTO datasets (name, task, mapping, content_hash, row_count, split_counts, stats, "
                          "warnings, storage_path, changes, created_at) VALUES ('pool', 'classification', "
                          "'{\"unlabelled\": true}', 'x', 3, '{}', '{}', '[]', 'pool', '{}', CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO label_classes (dataset_id, name, description, position) VALUES "
                          "(1, 'a', '', 0), (1, 'b', '', 1)"))
        conn.execute(text("INSERT INTO label_events (dataset_id, row_index, label, created_at) VALUES "
                          "(1, 0, 'b', CURRENT_TIMESTAMP)"))
    upgrade_database(url, "head")
    with Session(engine) as s:
        state = pool.label_state(s, 1)
    assert state.task == TaskKind.CLASSIFICATION and state.sets == {0: ["b"]}


@pytest.mark.slow
def test_a_tag_pools_retrain_is_a_multilabel_setfit_run_that_suggests_tags(tag_pool: int,  # noqa: ANN001
                                                                             tiny_text_encoder) -> None:
    from core.multilabel.serving import load_run_tagger
    from db import runs as run_queries
    from tests.test_worker_runs import finished, wait_until, worker_log

    texts = texts_of(tag_pool)
    with session_scope() as s:
        for row in range(18):
            pool.record_labels(s, tag_pool, row, truth(texts[row]))
        run_id = retrain.start_retrain(s, tag_pool, "tickets", {"num_iterations": 2, "max_pairs": 48,
                                                                "max_length": 32, "device": "cpu",
                                                                "model_id": str(tiny_text_encoder)})
    row = wait_until(run_id, finished, timeout=240)
    assert row["status"].value == "completed", f"{row['error']}\n{worker_log(run_id)}"
    assert row["metrics"]["n_labels"] == 18 and row["metrics"]["learnt_tags"] == list(TOPICS)
    scores = retrain.pool_scores(run_id)
    assert scores is not None and scores.labels == list(TOPICS) and scores.proba.shape == (36, 3)
    assert ((scores.proba >= 0) & (scores.proba <= 1)).all()
    suggested = scores.suggested_tags(35)
    assert suggested is not None and set(suggested) <= set(TOPICS) and all(p >= 0.5 for p in suggested.values())
    with read_scope() as s:
        run = run_queries.get_run(s, run_id)
        assert run.task == TaskKind.MULTILABEL and run.model_kind == retrain.RETRAIN_KIND
        assert retrain.retrain_status(s, tag_pool).latest_completed_id == run_id
    assert load_run_tagger(run_id).labels == list(TOPICS)  # served as a multi-label SetFit run
