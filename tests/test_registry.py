"""The model-kind registry and the run-folder layout: one entry per kind, read by every list of kinds and runs."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from streamlit.testing.v1 import AppTest

from core import settings, tasks
from core.api.app import create_app
from core.api.keys import create_key
from core.api.served import ServedModels
from core.cli import main
from core.data.storage import load_split
from core.errors import ProtolabError
from core.runs import registry
from core.runs.files import RunFiles
from core.text.serving import load_classifier
from core.training import start_training
from db import datasets as dataset_queries
from db import read_scope, session_scope
from db import runs as run_queries
from db.enums import TaskKind
from tests.conftest import store_ranking_run
from tests.helpers import form_key
from tests.test_worker_runs import finished, wait_until


def test_every_built_in_kind_builds_its_default_config() -> None:
    names = registry.kind_names()
    assert set(registry.kind_names(TaskKind.CLASSIFICATION)) == {"transformer", "lstm", "tfidf", "setfit"}
    assert {"ease", "itemknn", "bpr", "sequential", "content", "popularity"} <= set(names)
    for kind in registry.all_kinds():
        assert isinstance(kind.make_config({}), dict), kind.name
        assert callable(kind.executor()) and callable(kind.loader())


def test_every_option_names_a_config_key_and_its_default_fits_its_range() -> None:
    """The schema the form, the CLI and a search read agrees with the configs the kinds really build."""
    for kind in registry.all_kinds(jobs=True):
        config, defaults = kind.make_config({}), kind.defaults()
        for option in kind.options:
            where = f"{kind.name}.{option.name}"
            assert option.name in config, where
            default = defaults[option.name]
            if option.choices:
                assert default in option.choices, where
            elif default is not None and option.type in (int, float):
                assert isinstance(default, option.type) and not isinstance(default, bool), where
                assert option.low is None or option.low <= default, where
                assert option.high is None or default <= option.high, where
            assert not option.log or option.low is None or option.low > 0, f"{where}: a log range lies above 0"
        assert kind.learning_rate is None or config.get("learning_rate") == kind.learning_rate, kind.name
    assert registry.get_kind("tfidf").exports == ("skops",)
    assert registry.baseline_kind(TaskKind.CLASSIFICATION).name == "tfidf"


def test_cli_flags_are_the_schema_s_options() -> None:
    flags = {o.cli_flag for o, _ in registry.options_across_kinds(cli=True).values()}
    assert flags == {"--model-id", "--epochs", "--batch-size", "--lr", "--max-length", "--image-size", "--warmup-ratio",
                     "--weight-decay", "--patience", "--device", "--gpus", "--seed", "--num-iterations",
                     "--max-pairs", "--k", "--split-protocol", "--factors", "--minutes", "--train-rows"}


def test_unknown_kind_is_a_clear_error() -> None:
    with pytest.raises(registry.UnknownModelKind, match="unknown model 'gpt-9'"):
        registry.get_kind("gpt-9")


def test_headline_reads_ndcg_at_10_also_from_a_run_cut_at_another_k() -> None:
    headline, value = registry.headline_of("ease", TaskKind.INTERACTIONS, {"k": 5, "by_k": {"10": {"ndcg": 0.4}}})
    assert (headline.label, value) == ("NDCG@10", 0.4)
    assert registry.headline_of("tfidf", TaskKind.CLASSIFICATION, {"macro_f1": 0.8})[1] == 0.8
    # A run of a kind nobody registers any more still gets its task's headline.
    assert registry.headline_of("retired", TaskKind.CLASSIFICATION, {"macro_f1": 0.7})[1] == 0.7


def test_home_and_runs_list_show_ndcg_at_10_for_a_recommender_run(interactions_dataset: int, capsys) -> None:  # noqa: ANN001
    run_id = store_ranking_run(interactions_dataset, model_kind="ease")
    ndcg = 0.1 * 10 ** 0.5
    at = AppTest.from_file("../pages/home.py", default_timeout=60).run()
    assert not at.exception
    assert any(f"#{run_id}" in m.value and f"NDCG@10 {ndcg:.3f}" in m.value for m in at.markdown)
    assert main(["runs", "list"]) == 0
    assert f"NDCG@10 {ndcg:.3f}" in capsys.readouterr().out
    assert main(["runs", "show", str(run_id), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["headline"] == {"metric": "NDCG@10", "key": "ndcg@10",
                                                               "value": pytest.approx(ndcg)}


@pytest.fixture
def toy_kind(monkeypatch: pytest.MonkeyPatch) -> str:
    """tests.toy_kind loaded as a plugin, in this process and in every worker it starts."""
    monkeypatch.setenv(settings.MODEL_KINDS.name, "tests.toy_kind")
    monkeypatch.setattr(registry._registry, "kinds", dict(registry._registry.kinds))
    monkeypatch.setattr(registry._registry, "plugins_loaded", False)
    import importlib

    import tests.toy_kind

    importlib.reload(tests.toy_kind)  # registers again into this test's copy of the registry
    return tests.toy_kind.NAME


def test_a_new_kind_is_one_entry_and_its_module(toy_kind: str, classification_dataset: int, capsys) -> None:  # noqa: ANN001
    assert toy_kind in registry.kind_names(TaskKind.CLASSIFICATION)
    # The CLI has a flag for each option of its schema, with the option's help and the kinds that take it.
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "--smoothing SMOOTHING" in capsys.readouterr().out
    # It offers the kind and trains it through a real worker process, which loads the plugin itself.
    code = main(["train", "--dataset", str(classification_dataset), "--model", toy_kind, "--smoothing", "0.25",
                 "--wait", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0, summary
    assert summary["status"] == "completed" and summary["headline"]["value"] == 0.5
    with read_scope() as s:
        assert run_queries.get_run(s, summary["run_id"]).config == {"seed": 0, "smoothing": 0.25}
    files = RunFiles.of(summary["run_id"])
    assert files.has_model() and not files.incomplete_marker.exists()
    # Serving goes through the kind's loader.
    predictions = load_classifier(summary["run_id"]).predict(["anything at all", "and more"])
    assert len({p.label for p in predictions}) == 1 and predictions[0].confidence == 1.0
    # The Train page offers it beside the built-in kinds, draws its options from the schema (defaults from its
    # build_config) and starts a run with what the form holds.
    at = AppTest.from_file("../pages/train.py", default_timeout=60).run()
    assert "Toy majority" in at.radio(key="family").options
    at.radio(key="family").set_value(toy_kind).run()
    assert at.number_input(key=f"{toy_kind}.smoothing").value == pytest.approx(0.1)
    assert at.number_input(key=f"{toy_kind}.smoothing").label == "Toy smoothing"
    at.number_input(key=f"{toy_kind}.seed").set_value(7)
    at.button(key="start").click().run()
    assert not at.exception, at.exception
    with read_scope() as s:
        newest = run_queries.list_runs(s, task=TaskKind.CLASSIFICATION)[0]
        assert (newest.model_kind, newest.config) == (toy_kind, {"seed": 7, "smoothing": pytest.approx(0.1)})
    assert wait_until(newest.id, finished)["status"].value == "completed"


@pytest.fixture
def toy_task(monkeypatch: pytest.MonkeyPatch) -> str:
    """tests.toy_task (a task and its one model kind) loaded as a plugin, here and in every worker it starts."""
    monkeypatch.setenv(settings.MODEL_KINDS.name, "tests.toy_task")
    monkeypatch.setattr(registry._registry, "kinds", dict(registry._registry.kinds))
    monkeypatch.setattr(registry._registry, "plugins_loaded", False)
    monkeypatch.setattr(tasks._tasks, "tasks", dict(tasks._tasks.tasks))
    monkeypatch.setattr(tasks._tasks, "plugins_loaded", False)
    import importlib

    import tests.toy_task

    importlib.reload(tests.toy_task)  # registers again into this test's copies of the registries
    return tests.toy_task.TASK


def test_a_new_task_is_one_entry_a_kind_and_their_module(toy_task: str, capsys) -> None:  # noqa: ANN001
    root = Path(__file__).resolve().parents[1]
    outside = [p for d in ("core", "db", "ui", "pages") for p in (root / d).rglob("*.py")] + [root / "app.py"]
    assert not [p for p in outside if toy_task in p.read_text() or "toy_task" in p.read_text()]
    # Upload on the Datasets page: the task is offered, its own mapping widgets map and validate the file.
    rows = pd.DataFrame({"text": [f"text {i}" for i in range(20)], "score": [i % 5 for i in range(20)]})
    at = AppTest.from_file("../pages/datasets.py", default_timeout=60).run()
    at.radio(key="task").set_value(toy_task).run()
    at.file_uploader(key="upload").set_value(("scores.csv", rows.to_csv(index=False).encode(), "text/csv")).run()
    assert at.selectbox(key=form_key(at, "map_score")).value == "score"
    at.text_input(key=form_key(at, "name")).set_value("toy scores").run()
    at.button(key=form_key(at, "save")).click().run()
    assert not at.exception and any("Saved 'toy scores'" in m.value for m in at.success)
    assert "Mean score" in [m.label for m in at.metric]  # the stored dataset, inspected by its task's view
    # Train in a real worker process, which loads the plugin itself.
    code = main(["train", "--dataset", "toy scores", "--model", "toy-mean", "--wait", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["status"] == "completed", summary
    run_id = summary["run_id"]
    assert summary["headline"]["metric"] == "MAE"
    # The Train page shows its form and the run's figures; Evaluate draws the run with the task's view.
    at = AppTest.from_file("../pages/train.py", default_timeout=60).run()
    assert not at.exception and at.button(key="toy_start")
    assert [m.label for m in at.metric] == ["Test MAE"]
    at = AppTest.from_file("../pages/evaluate.py", default_timeout=60).run()
    assert not at.exception and [m.label for m in at.metric] == ["Test MAE"]
    assert at.metric[0].value == f"{summary['headline']['value']:.3f}"
    # Demo: app.py's navigation lists the task's demo page, in the workbench and in presentation mode.
    for present in ("0", "1"):
        at = AppTest.from_file("../app.py", default_timeout=60)
        at.query_params["present"] = present
        at.run().switch_page("tests/toy_demo.py").run()
        assert not at.exception and [t.value for t in at.title] == ["Toy demo"]
    # Serve: the API lists the run with its task's endpoint and answers through the task's serve function.
    models = ServedModels([run_id])
    models.load()
    client = TestClient(create_app(models, require_key=False))
    assert client.get("/v1/runs").json()["runs"][0]["endpoint"] == f"/v1/runs/{run_id}/score"
    answer = client.post(f"/v1/runs/{run_id}/score", json={"texts": ["a", "b"]}).json()
    with session_scope() as s:  # a key's scope holds for the new endpoint too
        _, read_only = create_key(s, "reader", read_only=True)
    guarded = TestClient(create_app(models, require_key=True))
    refused = guarded.post(f"/v1/runs/{run_id}/score", json={"texts": ["a"]},
                           headers={"Authorization": f"Bearer {read_only}"})
    assert refused.status_code == 403, refused.json()
    with session_scope() as s:
        stored = load_split(dataset_queries.get_dataset_by_name(s, "toy scores"), "train")["score"].mean()
    assert answer["scores"] == [pytest.approx(stored)] * 2


def test_the_cli_and_the_train_page_refuse_a_model_of_another_task_alike(classification_dataset: int,
                                                                        capsys) -> None:  # noqa: ANN001
    assert main(["train", "--dataset", str(classification_dataset), "--model", "ease"]) != 0
    said = capsys.readouterr().err.strip()
    assert "model 'ease' needs a dataset of interactions;" in said and "holds labelled texts" in said
    with session_scope() as s:
        dataset = dataset_queries.get_dataset(s, classification_dataset)
        with pytest.raises(ProtolabError) as refused:
            start_training(s, dataset=dataset, model_kind="ease", config={})
    assert str(refused.value) in said


def _hold_write_lock(url: str, ready, release) -> None:  # noqa: ANN001
    """Another process (a worker writing progress, say) inside a write transaction until told to stop."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        conn.execute(text("UPDATE runs SET progress = 0.5"))
        ready.set()
        release.wait(120)  # longer than a reader's busy timeout (30 s): a reader that waited would fail, not pass
        conn.rollback()


def test_readers_do_not_wait_for_a_writer(completed_classification_run: int, capsys) -> None:  # noqa: ANN001
    from core.settings import load_settings

    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    writer = ctx.Process(target=_hold_write_lock, args=(load_settings().database_url, ready, release))
    writer.start()
    try:
        assert ready.wait(60)
        assert main(["runs", "list", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)[0]["run_id"] == completed_classification_run
        at = AppTest.from_file("../pages/home.py", default_timeout=60).run()
        assert not at.exception
        assert any(f"#{completed_classification_run}" in m.value for m in at.markdown)
        # Both read while the write lock was held throughout: the writer lets go only when released below.
        assert writer.is_alive() and not release.is_set()
    finally:
        release.set()
        writer.join(30)
