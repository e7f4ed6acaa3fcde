"""AppTest of the Label page (and the Datasets page's "No labels yet" upload): label set, one text at a time
with skip and undo, labels that survive a restart, the table batch, saving a version, the background retrain."""

from __future__ import annotations

from pathlib import Path

# AppTest puts pages/ first on sys.path, where pages/datasets.py would shadow Hugging Face `datasets` when
# sentence-transformers first imports it during a page run; a real server runs app.py from the repository root.
import datasets as _hf_datasets  # noqa: F401
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.labelling import pool, retrain
from db import datasets as dataset_queries
from db import dispose_engines, read_scope, session_scope
from db import runs as run_queries
from tests.conftest import sentiment_frame
from tests.helpers import form_key
from tests.test_labelling import import_pool

PAGES = Path(__file__).resolve().parents[1] / "pages"


def label_page() -> AppTest:
    return AppTest.from_file(str(PAGES / "label.py"), default_timeout=120).run()


def state_of(dataset_id: int) -> pool.LabelState:
    with read_scope() as s:
        return pool.label_state(s, dataset_id)


def test_datasets_page_stores_texts_without_labels() -> None:
    at = AppTest.from_file(str(PAGES / "datasets.py"), default_timeout=60).run()
    frame = pd.DataFrame({"id": range(12), "body": [f"ticket {i}: the app crashes on screen {i}" for i in range(12)]})
    at.file_uploader(key="upload").set_value(("tickets.csv", frame.to_csv(index=False).encode(), "text/csv"))
    at.run()
    at.checkbox(key=form_key(at, "unlabelled")).check().run()
    assert not at.exception and not at.error
    assert at.selectbox(key=form_key(at, "map_text")).value == "body"
    at.text_input(key=form_key(at, "name")).set_value("tickets").run()
    at.button(key=form_key(at, "save")).click().run()
    assert not at.exception and not at.error
    with read_scope() as s:
        [stored] = pool.unlabelled_datasets(s)
        assert stored.name == "tickets" and stored.row_count == 12


def test_label_page_without_unlabelled_datasets_says_where_to_get_one() -> None:
    at = label_page()
    assert not at.exception
    assert "No labels yet" in at.info[0].value


def test_label_set_then_label_skip_undo_and_everything_survives_a_restart() -> None:
    dataset_id = import_pool(sentiment_frame(30)[["text"]])
    at = label_page()
    assert not at.exception and "Define the label set first" in at.info[-1].value
    at.text_area(key=f"label_set_{dataset_id}").set_value("positive: a happy customer\nnegative")
    at.button(key="save_label_set").click().run()
    assert not at.exception and not at.error
    assert at.button(key="label_0").label == "1 · positive" and at.button(key="label_1").label == "2 · negative"
    first = at.session_state[f"current_{dataset_id}"]
    at.button(key="label_0").click().run()
    second = at.session_state[f"current_{dataset_id}"]
    assert second != first
    at.button(key="label_1").click().run()
    at.button(key="skip").click().run()
    assert state_of(dataset_id).labels == {first: "positive", second: "negative"}
    at.button(key="undo").click().run()  # takes back the skip: its text is shown again
    assert not at.exception and len(state_of(dataset_id).skipped) == 0
    at.button(key="undo").click().run()  # takes back the second label
    assert at.session_state[f"current_{dataset_id}"] == second
    assert any("picked as the text whose label you took back" in c.value for c in at.caption)
    assert state_of(dataset_id).labels == {first: "positive"}
    at.button(key="label_1").click().run()

    dispose_engines()  # a server restart: a fresh session and fresh connections see the stored labels
    again = label_page()
    assert not again.exception
    assert any("2 of 30 texts labelled" in c.value for c in again.caption)
    assert state_of(dataset_id).labels == {first: "positive", second: "negative"}


def test_diverse_first_picks_cover_distinct_clusters() -> None:
    dataset_id = import_pool(sentiment_frame(40)[["text"]])
    with session_scope() as s:
        pool.set_label_set(s, dataset_id, [("positive", ""), ("negative", "")])
    at = label_page()
    assert any("picked as diverse" in c.value for c in at.caption)
    at.radio(key="strategy").set_value("random").run()
    at.button(key="label_0").click().run()
    assert not at.exception and any("picked as random" in c.value for c in at.caption)


def test_table_batch_shows_and_the_labels_save_as_a_version() -> None:
    frame = sentiment_frame(40)
    dataset_id = import_pool(frame[["text"]])
    truth = dict(zip(frame.text, frame.label, strict=True))
    with session_scope() as s:
        pool.set_label_set(s, dataset_id, [("positive", ""), ("negative", "")])
    at = label_page()
    at.radio(key="mode").set_value("table batch").run()
    assert not at.exception
    assert at.button(key="save_batch")
    # label 12 rows as the batch table would, then save them as a version from the page
    from core.data.storage import load_frame

    with read_scope() as s:
        stored = load_frame(dataset_queries.get_dataset(s, dataset_id))["text"]
    with session_scope() as s:
        for row in range(12):
            pool.record_label(s, dataset_id, row, truth[stored[row]])
    at.run()
    at.text_input(key="version_name").set_value("tickets v1").run()
    at.button(key="save_version").click().run()
    assert not at.exception and not at.error
    assert any("Saved 'tickets v1'" in s.value for s in at.success)
    with read_scope() as s:
        version = dataset_queries.get_dataset_by_name(s, "tickets v1")
        assert version.row_count == 12 and version.parent_id == dataset_id


def test_a_retrain_is_queued_every_n_new_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.runs import jobs

    started: list[int] = []
    # The worker itself is tested in tests/test_setfit.py; here only that the page queues it, off its thread.
    monkeypatch.setattr(jobs, "launch_worker", lambda run_id, gpus=1: started.append(run_id) or 0)
    dataset_id = import_pool(sentiment_frame(30)[["text"]])
    with session_scope() as s:
        pool.set_label_set(s, dataset_id, [("positive", ""), ("negative", "")])
    at = label_page()
    at.number_input(key="retrain_every").set_value(3).run()
    at.button(key="label_0").click().run()
    at.button(key="label_1").click().run()
    assert started == []
    at.button(key="label_0").click().run()
    assert not at.exception
    with read_scope() as s:
        runs = run_queries.list_runs(s)
        assert [(r.model_kind, r.dataset_id) for r in runs] == [(retrain.RETRAIN_KIND, dataset_id)]
    assert started == [runs[0].id]
    at.button(key="label_1").click().run()  # one retrain at a time
    assert len(started) == 1


def test_train_page_refuses_other_models_on_a_dataset_being_labelled() -> None:
    import_pool(sentiment_frame(30)[["text"]])
    at = AppTest.from_file(str(PAGES / "train.py"), default_timeout=60).run()
    at.radio(key="family").set_value("tfidf").run()
    at.button(key="start").click().run()
    assert not at.exception
    assert any("is unlabelled: label it on the Label page" in e.value for e in at.error)
    with read_scope() as s:
        assert run_queries.list_runs(s) == []
