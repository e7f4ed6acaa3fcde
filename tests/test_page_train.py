"""The Train page (AppTest) and its chart builders: empty state, widgets, a real tiny run started from the page."""

from __future__ import annotations

import time

import pytest
from streamlit.testing.v1 import AppTest

from core import settings
from core.charts.training import loss_curve, smooth, throughput_chart, validation_curve
from core.runs import scheduling
from db import runs as run_queries
from db import session_scope
from db.enums import RunStatus, TaskKind
from db.models import MetricPoint

PAGE = "../pages/train.py"


# --- charts -------------------------------------------------------------------------------------------

def _points() -> list:
    pts = [{"name": "train_loss", "value": 1.0 / (s + 1), "step": s, "epoch": s / 10, "split": "train"}
           for s in range(1, 21)]
    pts += [{"name": "samples_per_s", "value": 100.0 + s, "step": s, "epoch": None, "split": "train"}
            for s in range(1, 21)]
    pts += [{"name": name, "value": v, "step": 10 * e, "epoch": float(e), "split": "validation"}
            for e, v in ((1, 0.6), (2, 0.8)) for name in ("macro_f1", "accuracy", "loss")]
    return pts


def test_loss_curve_has_raw_smoothed_and_validation_traces() -> None:
    fig = loss_curve(_points())
    names = [t.name for t in fig.data]
    assert names == ["loss", "loss (smoothed)", "validation loss"]
    assert list(fig.data[0].x) == list(range(1, 21))
    assert fig.data[0].y[0] == pytest.approx(0.5) and len(fig.data[1].y) == 20
    assert list(fig.data[2].x) == [10, 20]


def test_validation_curve_by_epoch_from_orm_rows() -> None:
    rows = [MetricPoint(**p) for p in _points()]  # MetricPoint-like objects work as well as dicts
    fig = validation_curve(rows)
    assert [t.name for t in fig.data] == ["macro_f1", "accuracy"]
    assert list(fig.data[0].x) == [1.0, 2.0] and list(fig.data[0].y) == [0.6, 0.8]


def test_throughput_and_smoothing() -> None:
    fig = throughput_chart(_points())
    assert len(fig.data) == 1 and fig.data[0].y[-1] == 120.0
    assert smooth([2.0, 2.0, 2.0]) == pytest.approx([2.0, 2.0, 2.0])  # debiased: no pull towards 0
    assert smooth([1.0, 0.0], 0.5)[1] == pytest.approx(1 / 3)


@pytest.mark.parametrize("builder", [loss_curve, validation_curve, throughput_chart])
def test_empty_input_gives_an_annotated_figure(builder) -> None:
    for empty in ([], None, [{"name": "other", "value": 1.0, "step": 1, "epoch": None, "split": "train"}]):
        fig = builder(empty)
        assert len(fig.data) == 0
        assert fig.layout.annotations and "no" in fig.layout.annotations[0].text


# --- the page -----------------------------------------------------------------------------------------

def test_empty_database_points_to_datasets() -> None:
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert "No dataset yet" in at.info[0].value
    assert not at.button  # nothing to start


def test_an_interactions_dataset_offers_recommenders_and_trains_one(interactions_dataset: int) -> None:
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert at.selectbox(key="dataset").options == ["tiny-interactions (320 rows · interactions)"]
    assert "BPR matrix factorisation" in at.radio(key="rec_model").options
    assert "family" not in [r.key for r in at.radio]
    at.radio(key="rec_model").set_value("itemknn").run()
    at.button(key="rec_start").click().run()
    assert not at.exception, at.exception
    with session_scope() as s:
        (run,) = run_queries.list_runs(s)
        run_id, task, model, config = run.id, run.task, run.model_kind, run.config
    # The split chosen at upload is what the run uses unless the user picks another (and the form says so).
    assert (task, model, config["k"], config["split_protocol"]) == (TaskKind.INTERACTIONS, "itemknn", 10,
                                                                    "dataset")
    assert any("the split chosen at upload" in c.value for c in at.caption)
    assert _wait_until_finished(run_id) == RunStatus.COMPLETED
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["Test NDCG@10"]) > 0


def test_widgets_for_each_family(classification_dataset: int) -> None:
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert at.selectbox(key="dataset").options == ["tiny-sentiment (120 rows · labelled texts)"]
    assert at.radio(key="family").value == "transformer"
    assert len(at.selectbox(key="model_choice").options) >= 5
    # Drawn from the registry's option schema, starting from the config dataclass's defaults.
    numbers = {key: at.number_input(key=f"transformer.{key}").value for key in (
        "epochs", "batch_size", "learning_rate", "max_length", "warmup_ratio", "weight_decay", "patience", "seed")}
    assert numbers == {"epochs": 3, "batch_size": 32, "learning_rate": pytest.approx(1e-4), "max_length": 128,
                       "warmup_ratio": pytest.approx(0.1), "weight_decay": pytest.approx(0.01), "patience": 2,
                       "seed": 42}
    assert at.selectbox(key="transformer.device").value == "auto"
    assert at.button(key="start") and at.button(key="estimate")
    at.selectbox(key="model_choice").set_value("other (Hugging Face id or local folder)").run()
    assert at.text_input(key="model_id_custom")
    at.radio(key="family").set_value("lstm").run()
    assert at.checkbox(key="lstm.init_embeddings").value is True
    assert at.number_input(key="lstm.learning_rate").value == pytest.approx(2e-3)
    at.radio(key="family").set_value("tfidf").run()
    assert at.number_input(key="tfidf.tfidf_c").value == pytest.approx(4.0)
    assert not at.exception


def _queued_run(dataset_id: int, **changes) -> int:
    """A run row without a worker (what the page sees between Start and the worker's first report)."""
    with session_scope() as s:
        run = run_queries.create_run(s, dataset_id=dataset_id, task=TaskKind.CLASSIFICATION, model_kind="lstm",
                                     config={"epochs": 1})
        for name, value in changes.items():
            setattr(run, name, value)
        return run.id


def test_cancel_from_the_live_panel(classification_dataset: int) -> None:
    run_id = _queued_run(classification_dataset)
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert any(f"Run #{run_id}" in m.value and "queued" in m.value for m in at.markdown)
    at.button(key="cancel").click().run()
    assert not at.exception
    with session_scope() as s:
        assert run_queries.get_run(s, run_id).status == RunStatus.CANCELLED


def test_dead_worker_is_shown_as_failed_with_resume(classification_dataset: int) -> None:
    import socket
    import subprocess
    import sys

    from core.settings import run_dir

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run_id = _queued_run(classification_dataset, status=RunStatus.RUNNING, pid=dead.pid,
                         host=socket.gethostname(), progress=0.4, status_text="epoch 1/3")
    (run_dir(run_id) / "checkpoint").mkdir(parents=True)
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert "ended without reporting" in at.error[0].value
    assert at.button(key="resume")
    assert not any(b.key == "cancel" for b in at.button)


def test_run_events_read_as_sentences(classification_dataset: int) -> None:
    message = "batch size 128 chosen from a GPU memory probe (learning rate scaled to 2e-4)"
    run_id = _queued_run(classification_dataset, status=RunStatus.COMPLETED, events=[
        {"event": "auto_batch", "batch_size": 128, "learning_rate": 2e-4, "message": message},
        {"event": "claimed", "worker": "gpu-box", "node": 0, "devices": ["cuda:0"]}])
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["run"] = str(run_id)
    at.run()
    shown = [c.value for c in at.caption if c.value.startswith("ℹ️")]
    assert shown == [f"ℹ️ {message}"]  # the sentence, not the stored dict; the claim shows as the placement


def test_query_param_selects_the_run_shown(classification_dataset: int) -> None:
    first = _queued_run(classification_dataset, status=RunStatus.CANCELLED)
    _queued_run(classification_dataset, status=RunStatus.CANCELLED)
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["run"] = str(first)
    at.run()
    assert any(f"Run #{first}" in m.value for m in at.markdown)
    assert not any(b.key == "resume" for b in at.button)  # cancelled before any checkpoint


def test_estimate_button(classification_dataset: int, monkeypatch: pytest.MonkeyPatch) -> None:
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    at.radio(key="family").set_value("tfidf").run()
    at.button(key="estimate").click().run()
    assert not at.exception, at.exception
    assert any(m.value.startswith("About **") for m in at.info)
    # The run started with the settings just estimated is queued with that estimate (a short run then never waits
    # behind a long one: core.runs.scheduling).
    monkeypatch.setenv("PROTOLAB_DISPATCH", "queue")  # no worker: only the queued row is looked at
    at.button(key="start").click().run()
    assert not at.exception, at.exception
    with session_scope() as s:
        run = run_queries.get_run(s, int(at.query_params["run"][0]))
        assert scheduling.estimated_seconds(run.events) == pytest.approx(at.session_state["last_estimate"][3], abs=0.1)


def _wait_until_finished(run_id: int, timeout_s: float = 300) -> RunStatus:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        with session_scope() as s:
            status = run_queries.get_run(s, run_id).status
        if not status.is_active:
            return status
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} still {status} after {timeout_s} s")


def test_start_tfidf_run_from_page_and_see_it_complete(classification_dataset: int,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # From the page's Start to its completed panel, with nothing timed but generous bounds: on a starved machine
    # a worker's heartbeat can fall silent for a while, which is the reaper's business (tested on its own), not
    # a failure of this run, so no heartbeat goes stale here (the worker inherits the setting).
    monkeypatch.setenv(settings.STALE_AFTER_S.name, "600")
    at = AppTest.from_file(PAGE, default_timeout=180).run()
    at.radio(key="family").set_value("tfidf").run()
    at.button(key="start").click().run()
    assert not at.exception, at.exception
    with session_scope() as s:
        runs = run_queries.list_runs(s, task=TaskKind.CLASSIFICATION)
        assert len(runs) == 1 and runs[0].model_kind == "tfidf"
        run_id, config = runs[0].id, runs[0].config
    assert config["tfidf_c"] == 4.0
    # The panel shows the new run straight away (queued or already running), with a Cancel button.
    assert any(f"Run #{run_id}" in m.value for m in at.markdown)
    assert at.get("progress")

    assert _wait_until_finished(run_id) == RunStatus.COMPLETED
    at = AppTest.from_file(PAGE, default_timeout=180).run()  # a fresh browser session finds it
    assert not at.exception
    assert any("completed" in m.value and f"Run #{run_id}" in m.value for m in at.markdown)
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["Test macro-F1"]) > 0.8
    assert not any(b.key == "cancel" for b in at.button)
    assert not at.get("plotly_chart")  # TF-IDF fits in one go: no loss or per-epoch validation to chart
    # Run on its own (no navigation), ui.common.page_link draws its link as a caption.
    assert "→ Evaluate this run" in [c.value for c in at.caption]


def test_runs_without_epochs_show_no_epoch_panels(classification_dataset: int) -> None:
    from tests.conftest import sklearn_predictions, store_completed_run

    labels, preds = sklearn_predictions(classification_dataset)
    tfidf = store_completed_run(classification_dataset, labels, preds, model_kind="tfidf")
    lstm = store_completed_run(classification_dataset, labels, preds, model_kind="lstm")
    for run_id, charts in ((tfidf, set()), (lstm, {f"loss_{lstm}", f"val_{lstm}"})):
        at = AppTest.from_file(PAGE, default_timeout=60)
        at.query_params["run"] = str(run_id)
        at.run()
        assert not at.exception
        assert {el.proto.id.rsplit("-", 1)[-1] for el in at.get("plotly_chart")} == charts


def test_a_re_split_says_it_ignores_the_split_chosen_at_upload(interactions_dataset: int) -> None:
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.radio(key="rec_model").set_value("ease").run()
    at.selectbox(key="ease.split_protocol").set_value("stratified_item").run()
    assert any("not the split chosen at upload" in c.value for c in at.caption)
