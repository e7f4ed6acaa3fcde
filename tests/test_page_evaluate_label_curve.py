"""AppTest of the Evaluate page's "How many labels do I need?" section: shown for runs trained on few labels, its
button queues the label curve job, a finished job draws the chart and one sentence; hidden in presentation mode
and for runs trained on many labels."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from core import settings
from core.data.storage import load_frame
from core.labelling import curve_job
from core.labelling.label_curve import LabelCurveConfig, measure_label_curve
from core.runs.files import RunFiles
from db import read_scope, session_scope
from db import runs as run_queries
from db.enums import RunStatus, TaskKind
from tests.conftest import sentiment_frame, sklearn_predictions, store_completed_run, with_splits
from tests.helpers import cancel
from tests.test_worker_runs import finished, wait_until, worker_log

PAGE = "../pages/evaluate.py"


def page(run_id: int, present: bool = False) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["run"] = str(run_id)
    if present:
        at.session_state["present"] = True
    return at.run()


def get_dataset_by_id(dataset_id: int):  # noqa: ANN201 - a detached Dataset row
    from db.datasets import get_dataset

    with read_scope() as s:
        dataset = get_dataset(s, dataset_id)
        s.expunge(dataset)
        return dataset


def charts(at: AppTest) -> dict[str, dict]:
    return {el.proto.id.rsplit("-", 1)[-1]: json.loads(el.proto.spec) for el in at.get("plotly_chart")}


@pytest.fixture
def setfit_run(classification_dataset: int) -> int:
    """A completed few-shot run (real scikit-learn predictions stand in for its scores) on ~42 labels a class."""
    labels, preds = sklearn_predictions(classification_dataset)
    return store_completed_run(classification_dataset, labels, preds, model_kind="setfit", name="few-shot")


def test_the_button_queues_the_curve_and_a_finished_curve_draws_the_chart_and_a_sentence(
        setfit_run: int, classification_dataset: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.DISPATCH.name, "queue")  # the default curve takes minutes: keep it queued
    at = page(setfit_run)
    assert not at.exception
    assert [e.label for e in at.expander] == ["How many labels do I need?"]
    at.button(key="curve_start").click().run()
    assert not at.exception and not at.error
    with read_scope() as s:
        queued = curve_job.latest_curve_run(s, classification_dataset)
        assert queued.status == RunStatus.QUEUED and queued.config["sizes"] == [8, 16, 32, 64]
        assert queued.config["models"] == ["setfit", "tfidf", "transformer"]
        assert run_queries.list_runs(s, models_only=True)[0].id == setfit_run  # not listed as a model
    assert any("Label curve running in the background" in p.proto.text for p in at.get("progress"))
    assert "curve_start" not in [b.key for b in at.button]  # no second start while one runs
    assert not [k for k in charts(at) if k.startswith("curve_chart")]  # nothing scored yet
    # The first scores, written where its worker writes them: the running section draws them at once.
    frame = load_frame(get_dataset_by_id(classification_dataset))
    measure_label_curve(frame, LabelCurveConfig(sizes=(8,), models=("tfidf",)),
                        on_point=lambda r: curve_job.write_curve(RunFiles.of(queued.id), r))
    at = page(setfit_run)
    assert [t["name"] for t in charts(at)[f"curve_chart_{queued.id}"]["data"]] == ["TF-IDF"]
    cancel(queued.id)

    monkeypatch.delenv(settings.DISPATCH.name)  # a real worker runs a fast curve: TF-IDF only
    with session_scope() as s:
        job = curve_job.start_label_curve(s, classification_dataset, {"models": ["tfidf"], "seeds": 2})
    row = wait_until(job, finished, timeout=120)
    assert row["status"] == RunStatus.COMPLETED, f"{row['error']}\n{worker_log(job)}"
    at = page(setfit_run)
    assert not at.exception
    figure = charts(at)[f"curve_chart_{job}"]
    [line] = [t for t in figure["data"] if t.get("mode") == "lines+markers"]
    assert line["name"] == "TF-IDF" and line["x"] == [8, 16, 32]
    assert [t for t in figure["data"] if t.get("fill") == "toself"]  # two seeds: a ± std band
    with read_scope() as s:
        run_f1 = run_queries.get_run(s, setfit_run).metrics["reports"]["test"]["macro_f1"]
    assert figure["layout"]["shapes"][0]["y0"] == pytest.approx(run_f1)
    sentence = next(m.value for m in at.markdown if "from 16 to 32 labels a class" in m.value)
    assert sentence.startswith("TF-IDF ") and "64 a class could not be tried" in sentence
    assert at.button(key="curve_start").label == "Draw it again"


def test_the_section_is_hidden_in_presentation_mode_and_for_runs_trained_on_many_labels(setfit_run: int) -> None:
    assert not page(setfit_run, present=True).expander
    from core.data.storage import write_dataset

    frame = with_splits(sentiment_frame(240))  # 168 training rows: 84 a class, past the curve's 64
    with session_scope() as s:
        big = write_dataset(s, name="big", task=TaskKind.CLASSIFICATION, frame=frame,
                            mapping={"text": "text", "label": "label"}).id
    labels, preds = sklearn_predictions(big)
    at = page(store_completed_run(big, labels, preds, model_kind="tfidf"))
    assert not at.exception and not at.expander
