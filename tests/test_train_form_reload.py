"""The Train form's settings survive a reload (issue 28, item 5): a reload is a fresh session, so what the user
changed lives in the URL, and a run in ?run= brings back the settings it was started with."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from db import runs as run_queries
from db import session_scope
from db.enums import RunStatus, TaskKind
from tests.test_page_train_state import store

TRAIN = "../pages/train.py"


def reload(at: AppTest) -> AppTest:
    """A browser reload: a new session that has only the address the old one left."""
    again = AppTest.from_file(TRAIN, default_timeout=60)
    for key, value in at.query_params.items():
        again.query_params[key] = value[0] if isinstance(value, list) else value
    return again.run()


def test_changed_settings_come_back_after_a_reload() -> None:
    dataset = store("reviews")
    at = AppTest.from_file(TRAIN, default_timeout=60).run()
    at.selectbox(key="dataset").set_value(dataset).run()
    at.radio(key="family").set_value("lstm").run()
    at.number_input(key="lstm.max_length").set_value(64).run()
    at.number_input(key="lstm.epochs").set_value(2).run()
    at.checkbox(key="lstm.class_weights").check().run()
    assert not at.exception
    again = reload(at)
    assert not again.exception
    assert again.radio(key="family").value == "lstm"
    assert again.number_input(key="lstm.max_length").value == 64
    assert again.number_input(key="lstm.epochs").value == 2
    assert again.checkbox(key="lstm.class_weights").value is True
    assert "lstm.batch_size" not in again.query_params  # only what changed travels
    # back to the default: the parameter goes, and a reload shows the default
    again.number_input(key="lstm.max_length").set_value(128).run()
    assert "lstm.max_length" not in again.query_params
    assert reload(again).number_input(key="lstm.max_length").value == 128


def test_a_reload_mid_run_shows_the_runs_own_settings() -> None:
    dataset = store("reviews")
    with session_scope() as s:
        run = run_queries.create_run(s, dataset_id=dataset, task=TaskKind.CLASSIFICATION, model_kind="lstm",
                                     config={"epochs": 2, "max_length": 64, "batch_size": 8})
        run.status = RunStatus.RUNNING
        run_id = run.id
    at = AppTest.from_file(TRAIN, default_timeout=60)
    at.query_params["run"] = str(run_id)
    at.run()
    assert not at.exception
    assert at.radio(key="family").value == "lstm"
    assert at.number_input(key="lstm.max_length").value == 64  # not the default 128
    assert at.number_input(key="lstm.batch_size").value == 8


def test_a_hand_edited_link_falls_back_to_the_default() -> None:
    dataset = store("reviews")
    at = AppTest.from_file(TRAIN, default_timeout=60)
    at.query_params.update({"dataset": str(dataset), "model": "lstm", "lstm.max_length": "-5",
                            "lstm.epochs": "two", "lstm.class_weights": "maybe"})
    at.run()
    assert not at.exception
    assert at.number_input(key="lstm.max_length").value == 128
    assert at.number_input(key="lstm.epochs").value >= 1
    assert at.checkbox(key="lstm.class_weights").value is False
