"""MLflow configured in the app (Home, "Experiment tracking") rather than by MLFLOW_TRACKING_URI: the saved URI is
checked before it is stored, the environment wins over it, the worker process reads it when a run starts and logs
to a real local store, export-mlflow uses it, and Home's expander shows and changes it under AppTest."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from streamlit.testing.v1 import AppTest

from core.cli import main as cli_main
from core.text.config import build_config
from core.tracking import setting
from db import app_settings, read_scope
from db.enums import AppSettingKey, RunStatus
from tests.helpers import queue_run, wait_until_finished
from tests.test_mlflow import row, wait_for_state

HOME_PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "home.py")


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Neither MLflow variable set; the artifacts of a `sqlite:` store go under tmp_path (its default is ./mlruns)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("PROTOLAB_MLFLOW_EXPERIMENT", raising=False)
    monkeypatch.setenv("PROTOLAB_MLFLOW_ARTIFACTS", str(tmp_path / "mlflow-artifacts"))
    return tmp_path


def _saved() -> dict[AppSettingKey, str]:
    with read_scope() as s:
        return app_settings.saved_settings(s)


@pytest.mark.parametrize(("raw", "reason"), [
    ("localhost:5000", "http://localhost:5000"), ("ftp://host/x", "no store for ftp"), ("http://", "no host"),
    ("sqlite://", "names no file"), ("my store", "spaces"), ("", "empty"),
])
def test_a_uri_mlflow_would_not_take_is_refused_and_nothing_is_saved(no_env: Path, raw: str, reason: str) -> None:
    with pytest.raises(setting.TrackingSettingError, match=reason):
        setting.save(raw, "team")
    assert _saved() == {} and not setting.current().enabled


def test_the_forms_mlflow_takes_are_saved_with_local_paths_made_absolute(no_env: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(no_env)  # a worker started from another folder must reach the same store
    assert setting.check_uri("sqlite:///mlflow.db") == f"sqlite:///{no_env / 'mlflow.db'}"
    assert setting.check_uri("mlruns") == str(no_env / "mlruns")
    assert setting.check_uri("file:mlruns") == (no_env / "mlruns").as_uri()
    for kept in ("http://127.0.0.1:5000", "https://mlflow.example.com", "databricks", "postgresql://u@db/mlflow"):
        assert setting.check_uri(kept) == kept
    assert setting.shown_uri("postgresql://u:secret@db/mlflow") == "postgresql://u:***@db/mlflow"


def test_saved_then_cleared_and_the_environment_wins(no_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert setting.current().uri_from == setting.OFF
    store = f"sqlite:///{no_env / 'saved.db'}"
    saved = setting.save(store, "team")
    assert (saved.uri, saved.uri_from, saved.experiment, saved.experiment_from) == (
        store, setting.SAVED, "team", setting.SAVED)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("PROTOLAB_MLFLOW_EXPERIMENT", "from-env")
    now = setting.current()  # read again, not cached: a long-lived worker daemon follows a change
    assert (now.uri, now.uri_from, now.experiment, now.experiment_from) == (
        "http://127.0.0.1:9", setting.ENVIRONMENT, "from-env", setting.ENVIRONMENT)
    assert now.saved_uri == store and now.saved_experiment == "team"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.delenv("PROTOLAB_MLFLOW_EXPERIMENT")
    assert setting.save(store).experiment_from == setting.DEFAULT  # a blank experiment forgets the saved one
    cleared = setting.clear()
    assert not cleared.enabled and cleared.uri_from == setting.OFF and _saved() == {}


def test_a_run_logs_to_the_store_saved_in_the_app(classification_dataset: int, no_env: Path) -> None:
    """MLFLOW_TRACKING_URI is unset: the worker (its own process) finds the saved store in the database."""
    store = f"sqlite:///{no_env / 'app-mlflow.db'}"
    setting.save(store, "from-the-app")
    run_id = queue_run(dataset_id=classification_dataset, model_kind="tfidf", config=build_config("tfidf", {}))
    assert wait_until_finished(run_id) == RunStatus.COMPLETED
    done = wait_for_state(run_id, ("logged", "failed"))
    assert done["mlflow_state"] == "logged", done["events"]
    found = mlflow.MlflowClient(tracking_uri=store).search_runs(
        [mlflow.MlflowClient(tracking_uri=store).get_experiment_by_name("from-the-app").experiment_id],
        f"tags.`protolab.run_id` = '{run_id}'")
    assert [r.info.run_id for r in found] == [done["mlflow_run_id"]]
    assert found[0].data.metrics["macro_f1"] == pytest.approx(done["metrics"]["macro_f1"])


def test_export_mlflow_uses_the_saved_store_and_says_both_ways_when_there_is_none(
        classification_dataset: int, no_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = queue_run(dataset_id=classification_dataset, model_kind="tfidf", config=build_config("tfidf", {}))
    assert wait_until_finished(run_id) == RunStatus.COMPLETED
    assert row(run_id)["mlflow_state"] is None  # off: nothing tried
    assert cli_main(["runs", "export-mlflow", "--all"]) == 1
    err = capsys.readouterr().err
    assert "MLFLOW_TRACKING_URI" in err and "Experiment tracking" in err
    store = f"sqlite:///{no_env / 'export.db'}"
    setting.save(store)
    assert cli_main(["runs", "export-mlflow", "--all", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(r["run_id"], r["outcome"]) for r in out] == [(run_id, "exported")]
    client = mlflow.MlflowClient(tracking_uri=store)
    assert client.get_run(out[0]["mlflow_run_id"]).data.tags["protolab.run_id"] == str(run_id)


def _home() -> AppTest:
    return AppTest.from_file(HOME_PAGE, default_timeout=60).run()


def _expander_text(at: AppTest) -> str:
    return " ".join(m.value for m in at.markdown)


def test_home_shows_saves_and_clears_the_tracking_uri(no_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _home()
    assert not at.exception, at.exception
    assert "Experiment tracking (MLflow)" in [e.label for e in at.expander]
    assert "MLflow is **off**" in _expander_text(at)

    at.text_input(key="mlflow_uri").input("localhost:5000").run()
    at.button(key="mlflow_save").click().run()
    assert not at.exception and "http://localhost:5000" in at.error[0].value and _saved() == {}

    store = f"sqlite:///{no_env / 'home.db'}"
    at.text_input(key="mlflow_uri").input(store)
    at.text_input(key="mlflow_experiment").input("team").run()
    at.button(key="mlflow_test").click().run()
    assert not at.exception and "reached" in at.success[0].value, [e.value for e in at.error]
    at.button(key="mlflow_save").click().run()
    assert not at.exception, at.exception
    assert _saved() == {AppSettingKey.MLFLOW_TRACKING_URI: store, AppSettingKey.MLFLOW_EXPERIMENT: "team"}
    assert f"Runs log to `{store}`, set here" in _expander_text(at) and "`team` (set here)" in _expander_text(at)

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    at = _home()
    assert "from `MLFLOW_TRACKING_URI` (the environment wins)" in _expander_text(at)
    assert f"`{store}`, is not in effect" in _expander_text(at)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")

    at.button(key="mlflow_clear").click().run()
    assert not at.exception and _saved() == {} and "MLflow is **off**" in _expander_text(at)
    assert at.text_input(key="mlflow_uri").value == ""


def test_a_searchs_driver_opens_its_parent_run_in_the_store_saved_in_the_app(classification_dataset: int,
                                                                               no_env: Path) -> None:
    from core.tracking.mlflow_searches import start_search_tracking
    from db import searches as search_queries
    from db import session_scope
    from db.enums import SearchStatus

    with session_scope() as s:
        search_id = search_queries.create_search(
            s, dataset_id=classification_dataset, model_kind="tfidf", config={}, space=[], metric="macro_f1",
            n_trials=2, parallel=1, settings={}, status=SearchStatus.RUNNING, stop_requested=False).id
    assert start_search_tracking(search_id) is None  # off
    store = f"sqlite:///{no_env / 'search.db'}"
    setting.save(store, "searches")
    tracker = start_search_tracking(search_id)  # the same process: the saved setting is read again, not cached
    assert tracker is not None and not tracker.failed
    parent = mlflow.MlflowClient(tracking_uri=store).get_run(tracker.mlflow_run_id)
    assert parent.data.tags["protolab.search_id"] == str(search_id)
    assert mlflow.MlflowClient(tracking_uri=store).get_experiment(parent.info.experiment_id).name == "searches"
