"""The SetFit model kind: config, offline training on tiny data, saving without pickle, serving, and runs through
real workers (a labelled dataset; and the Label page's background retrain on an unlabelled one)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.runs import registry
from core.settings import run_dir
from core.text.config import TrainingError
from core.text.fewshot import SetFitConfig, build_config, load_fewshot, save_fewshot, train_setfit
from db import read_scope
from db import runs as run_queries
from tests.conftest import sentiment_frame
from tests.test_worker_runs import finished, wait_until, worker_log

TINY = SetFitConfig(num_iterations=1, max_pairs=32, batch_size=8, max_length=32, device="cpu")


def test_setfit_is_a_registered_classification_kind_with_its_own_options() -> None:
    kind = registry.get_kind("setfit")
    assert kind.task.value == "classification" and kind.option("num_iterations") is not None
    config = kind.make_config({"num_iterations": 4, "seed": 3})
    assert config["num_iterations"] == 4 and config["max_pairs"] == SetFitConfig.max_pairs
    with pytest.raises(TrainingError, match="patience do not apply to the setfit model"):
        build_config("setfit", {"patience": 2})
    with pytest.raises(TrainingError, match="num_iterations must be a positive whole number"):
        build_config("setfit", {"num_iterations": 0})


@pytest.mark.slow  # ~40 s on the shared 2-core box (imports setfit, datasets and MiniLM)
def test_setfit_learns_eight_examples_a_class_offline_and_round_trips(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    frame = sentiment_frame(16, seed=5)
    steps = []
    model = train_setfit(frame.text, frame.label, ["negative", "positive"], TINY, on_step=steps.append)
    assert steps and steps[-1].step == steps[-1].total_steps == 4  # 32 pairs / batch 8
    test = sentiment_frame(40, seed=9)
    proba = model.predict_proba(list(test.text))
    assert proba.shape == (40, 2) and np.allclose(proba.sum(axis=1), 1)
    accuracy = np.mean(np.array(model.labels)[proba.argmax(axis=1)] == test.label.to_numpy())
    assert accuracy >= 0.8
    save_fewshot(model, tmp_path / "m")
    assert not list((tmp_path / "m").rglob("*.pkl"))  # no pickle anywhere
    again = load_fewshot(tmp_path / "m")
    assert again.labels == ["negative", "positive"]
    assert np.allclose(again.predict_proba(list(test.text[:5])), proba[:5], atol=1e-5)


def test_setfit_refuses_a_single_label() -> None:
    with pytest.raises(TrainingError, match="at least two different labels"):
        train_setfit(["a", "b"], ["x", "x"], ["x", "y"], TINY)


@pytest.mark.slow
def test_setfit_run_trains_evaluates_and_serves(classification_dataset: int, tiny_text_encoder,  # noqa: ANN001
                                                 capsys) -> None:  # noqa: ANN001
    from core.cli import main
    from core.text.serving import load_classifier

    # Queued the way `protolab train` does, with SetFit's own flags.
    assert main(["train", "--dataset", str(classification_dataset), "--model", "setfit", "--num-iterations", "2",
                 "--model-id", str(tiny_text_encoder),
                 "--max-pairs", "64", "--batch-size", "16", "--max-length", "32", "--device", "cpu", "--json"]) == 0
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    row = wait_until(run_id, finished, timeout=240)
    assert row["status"].value == "completed", f"{row['error']}\n{worker_log(run_id)}"
    assert row["metrics"]["macro_f1"] > 0.7 and row["metrics"]["split"] == "test"
    with read_scope() as s:
        config = run_queries.get_run(s, run_id).config
    assert config["num_iterations"] == 2 and config["max_pairs"] == 64
    meta = json.loads((run_dir(run_id) / "meta.json").read_text())
    assert meta["kind"] == "setfit" and meta["labels"] == ["negative", "positive"]
    classifier = load_classifier(run_id)
    [prediction] = classifier.predict(["great excellent amazing product, I love it"])
    assert prediction.label == "positive" and set(prediction.probabilities) == {"negative", "positive"}

    assert main(["predict", "--run", str(run_id), "--json", "awful terrible broken, I hate it"]) == 0
    [printed] = json.loads(capsys.readouterr().out)
    assert printed["label"] == "negative"


def start_kind(dataset_id: int, **options) -> int:  # noqa: ANN003
    from tests.helpers import queue_run

    return queue_run(dataset_id=dataset_id, model_kind="setfit", config=build_config("setfit", options))


@pytest.mark.slow
def test_background_retrain_scores_the_pool_and_adds_a_learning_curve_point(tiny_text_encoder) -> None:  # noqa: ANN001
    from core.data.storage import load_frame
    from core.labelling import pool, retrain
    from core.text.serving import load_classifier
    from db import runs as run_queries
    from db import session_scope
    from tests.test_labelling import import_pool

    pool_id = import_pool(sentiment_frame(40, seed=2)[["text"]])
    with session_scope() as s:
        pool.set_label_set(s, pool_id, [("positive", ""), ("negative", "")])
        dataset = pool._pool(s, pool_id)
        texts = load_frame(dataset)["text"]
        for row in range(12):
            happy = any(w in texts[row] for w in ("great", "love", "excellent", "wonderful", "fantastic", "happy",
                                                  "perfect", "amazing"))
            pool.record_label(s, pool_id, row, "positive" if happy else "negative")
        run_id = retrain.start_retrain(s, dataset.id, dataset.name,
                                       {"num_iterations": 2, "max_pairs": 48, "max_length": 32, "device": "cpu",
                                        "model_id": str(tiny_text_encoder)})
    row = wait_until(run_id, finished, timeout=240)
    assert row["status"].value == "completed", f"{row['error']}\n{worker_log(run_id)}"
    assert row["metrics"]["n_labels"] == 12 and 0 <= row["metrics"]["cv_accuracy"] <= 1
    scores = retrain.pool_scores(run_id)
    assert scores is not None and scores.proba.shape == (40, 2)
    label, confidence = scores.suggestion(39)
    assert label in ("positive", "negative") and 0.5 <= confidence <= 1
    with read_scope() as s:
        assert retrain.learning_curve(s, pool_id) == [(12, row["metrics"]["cv_accuracy"])]
        assert retrain.retrain_status(s, pool_id).latest_completed_id == run_id
        # A job of its own kind, whose model is a SetFit model: served (the Sentiment demo) by SetFit's loader.
        assert run_queries.get_run(s, run_id).model_kind == retrain.RETRAIN_KIND
    assert load_classifier(run_id).family == "setfit"



@pytest.mark.slow
def test_train_page_starts_a_setfit_run_that_completes(classification_dataset: int) -> None:
    from streamlit.testing.v1 import AppTest

    from tests.test_page_train import PAGE, _wait_until_finished

    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.radio(key="family").set_value("setfit").run()
    at.number_input(key="setfit.num_iterations").set_value(1)
    at.number_input(key="setfit.max_pairs").set_value(32)
    at.number_input(key="setfit.max_length").set_value(32)
    at.selectbox(key="setfit.device").set_value("cpu")
    at.button(key="start").click().run()
    assert not at.exception and not at.error
    run_id = int(at.query_params["run"][0] if isinstance(at.query_params["run"], list) else at.query_params["run"])
    assert _wait_until_finished(run_id, timeout_s=240).value == "completed", worker_log(run_id)
    from db import read_scope
    from db import runs as run_queries

    with read_scope() as s:
        run = run_queries.get_run(s, run_id)
        assert run.model_kind == "setfit" and run.config["num_iterations"] == 1 and run.metrics["macro_f1"] > 0.6
