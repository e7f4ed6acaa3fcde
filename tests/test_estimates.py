"""Pre-flight estimates cover the whole run (start-up, tokenising, training, evaluation, saving) for every
model kind, recommenders included, and running work shows an ETA that includes the evaluation still to come."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.runs.estimates import estimate_any
from core.runs.timing import format_eta, remaining_seconds, startup_seconds
from db import datasets as dataset_queries
from db import read_scope
from db.enums import TaskKind
from tests.test_training import RecordingContext


def dataset(dataset_id: int):  # noqa: ANN201
    with read_scope() as s:
        row = dataset_queries.get_dataset(s, dataset_id)
        s.expunge(row)
        return row


def test_a_text_estimate_adds_start_up_tokenising_and_evaluation(classification_dataset: int, launches: list) -> None:
    from core.text.config import build_config

    config = build_config("lstm", {"batch_size": 8, "max_length": 32, "device": "cpu", "init_embeddings": False,
                                   "epochs": 2})
    est = estimate_any(dataset(classification_dataset), "lstm", config)
    assert list(est.parts) == ["start-up", "loading data", "loading the model", "tokenising", "training",
                               "evaluation", "saving"]
    assert est.seconds == pytest.approx(sum(est.parts.values()), abs=0.05)
    assert est.parts["start-up"] == 3.0  # the launch's (faked: test_a_fresh_process_times_... launches a real one)
    assert all(v > 0 for v in est.parts.values())
    assert "start-up" in est.breakdown()
    tfidf = estimate_any(dataset(classification_dataset), "tfidf", build_config("tfidf", {}))
    assert {"start-up", "training", "evaluation", "saving"} <= set(tfidf.parts)
    assert tfidf.parts["start-up"] == 3.0


@pytest.mark.parametrize("kind", ["popularity", "itemknn", "ease", "bpr", "sequential"])
def test_every_recommender_gets_an_estimate(interactions_dataset: int, kind: str) -> None:
    from core.recs.config import build_config

    options = {"epochs": 2, "device": "cpu"} if kind in ("bpr", "sequential") else {}
    if kind == "sequential":
        options["split_protocol"] = "leave_last_out"
    est = estimate_any(dataset(interactions_dataset), kind, build_config(kind, options))
    assert {"start-up", "loading data", "training", "evaluation", "saving"} <= set(est.parts)
    assert est.seconds == pytest.approx(sum(est.parts.values()), abs=0.05) and est.device == "cpu"


def test_epoch_models_scale_the_quickest_probe_epoch_by_the_epochs_asked_for() -> None:
    """The rule itself, on fixed timings: comparing two measured estimates instead failed whenever a burst of
    other work landed in one probe's set-up (which dwarfs an epoch of the tiny test data)."""
    from core.recs.estimate import _scale_fit

    # Probe from t=10: epochs end at 10.5 (set-up + first), 10.6 and 10.8; the quickest later epoch is 0.1 s.
    ticks = [10.5, 10.6, 10.8]
    # (has epochs, how the fit grows): what the registry entry and the model class say (BPR, GRU, EASE)
    assert _scale_fit(True, "interactions", 0.8, 10.0, ticks, 400, 1.0, 1.0) == pytest.approx(0.4 + 400 * 0.1)
    assert _scale_fit(True, "interactions", 0.8, 10.0, ticks, 2, 0.5, 1.0) == pytest.approx((0.4 + 2 * 0.1) / 0.5)
    assert _scale_fit(True, "interactions", 0.3, 10.0, [10.3], 1, 1.0, 1.0) == pytest.approx(0.3)  # one epoch
    assert _scale_fit(False, "items_cubed", 0.2, 10.0, [], 1, 0.5, 2.0) == pytest.approx(0.2 * 8)  # EASE: items³


def test_bpr_run_reports_an_eta_each_epoch(tmp_path: Path, interactions_dataset: int) -> None:
    from core.recs.config import build_config
    from core.recs.training import execute_run

    ctx = RecordingContext(model_kind="bpr", config=build_config("bpr", {"epochs": 4, "device": "cpu"}),
                           dataset_id=interactions_dataset, artifact_dir=tmp_path / "run",
                           task=TaskKind.INTERACTIONS)
    execute_run(ctx)
    epochs = [t for t in ctx.progress_texts if t.startswith("epoch ")]
    assert len(epochs) == 4
    assert all(" · ETA " in t for t in epochs[:3]) and " · ETA " not in epochs[-1]


def test_text_run_eta_includes_the_evaluation_to_come(tmp_path: Path) -> None:
    from core.text.config import build_config, config_from_dict
    from core.text.executor import Reporter
    from core.text.loop import EpochLog, StepLog

    ctx = RecordingContext(model_kind="lstm", config={}, dataset_id=0, artifact_dir=tmp_path)
    reporter = Reporter(ctx, config_from_dict(build_config("lstm", {"epochs": 2})), n_val=300, n_test=300)
    step = StepLog(step=1, total_steps=20, epoch=0, epoch_float=0.05, loss=1.0, learning_rate=1e-3,
                   samples_per_s=100.0, eta_s=10.0)
    # Before any validation ran: a forward pass at a third of a training step (1/300 s per example),
    # for validation after epochs 1 and 2, again at the end, and the test split: 10 s + 1200/300 s.
    reporter.on_step(step)
    assert ctx.progress_texts[-1].endswith("ETA 14s")
    fields = {f: 0.0 for f in EpochLog.__dataclass_fields__} | {"epoch": 1, "step": 10, "improved": True}
    reporter.on_epoch(EpochLog(**fields))
    assert reporter.eval_s_per_sample is not None and reporter.eval_s_per_sample >= 0


def test_timing_helpers() -> None:
    assert remaining_seconds(0, 10, 5.0) is None
    assert remaining_seconds(2, 10, 4.0, after_s=3.0) == pytest.approx(19.0)
    assert [format_eta(s) for s in (5, 65, 3700)] == ["5s", "1m 5s", "1h 1m"]
    first = startup_seconds("popularity")
    assert first > 0 and startup_seconds("popularity") == first  # measured once per process


def test_train_page_estimates_a_recommender_and_says_where_the_time_goes(interactions_dataset: int) -> None:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file("../pages/train.py", default_timeout=180).run()
    at.radio(key="rec_model").set_value("ease").run()
    at.button(key="rec_estimate").click().run()
    assert not at.exception, at.exception
    assert any(i.value.startswith("About **") for i in at.info)
    assert any("start-up" in c.value and "training" in c.value for c in at.caption)
    labels = at.radio(key="rec_model").options
    assert labels and not any("instant" in label.lower() for label in labels)


def test_tfidf_baseline_uses_the_fast_seeded_solver() -> None:
    from core.text.tfidf import TfidfConfig, train_tfidf
    from tests.conftest import sentiment_frame

    frame = sentiment_frame(400, seed=1)
    fits = [train_tfidf(frame.text.tolist(), frame.label.tolist(), TfidfConfig(seed=7)) for _ in range(2)]
    clf = [f.pipeline.named_steps["clf"] for f in fits]
    assert clf[0].solver == "saga" and clf[0].tol == 1e-3
    assert (clf[0].coef_ == clf[1].coef_).all()  # SAGA shuffles: seeded, the same run gives the same model
    assert fits[0].predict(["love great wonderful", "awful hate terrible"]) == ["positive", "negative"]


def test_a_kind_without_an_estimator_says_so_in_words():
    import pytest

    from core.errors import ProtolabError
    from core.runs.estimates import estimate_any

    with pytest.raises(ProtolabError, match="no time estimate for SetFit"):
        estimate_any(object(), "setfit", {})


def test_a_second_estimate_is_a_lookup_and_a_real_run_calibrates_it(classification_dataset: int, launches: list,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 28 item 5: the probe's rates are kept in the data folder, so the next estimate of the same kind, model,
    length, batch, device and threads loads no model and times no step; a completed run's real seconds per
    example then replace the probe's (the LSTM's probe said half of its real time)."""
    import torch

    from core.runs import calibration
    from core.text import estimate as text_estimate
    from core.text.config import build_config

    config = build_config("lstm", {"batch_size": 8, "max_length": 32, "device": "cpu", "init_embeddings": False,
                                   "epochs": 2})
    key = calibration.key_of("lstm", config, "cpu", torch.get_num_threads())
    calibration.remember(key, real_train_s_per_example=0.02)  # a CLI run finished before any estimate probed
    first = estimate_any(dataset(classification_dataset), "lstm", config)

    def no_probe(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("the second estimate probed again")

    monkeypatch.setattr(text_estimate, "build_model", no_probe)
    second = estimate_any(dataset(classification_dataset), "lstm", config)
    measured_again = ("loading data",)  # the split is read each time (the sizes may have changed)
    assert ({k: v for k, v in second.parts.items() if k not in measured_again}
            == {k: v for k, v in first.parts.items() if k not in measured_again})
    assert second.token_lengths == first.token_lengths
    assert first.parts["training"] == pytest.approx(0.02 * first.sizes["train"] * 2)
    calibration.remember(key, real_train_s_per_example=0.01)
    third = estimate_any(dataset(classification_dataset), "lstm", config)
    assert third.parts["training"] == pytest.approx(0.01 * third.sizes["train"] * 2)


def test_the_model_load_is_the_cold_one_a_fresh_process_timed_not_the_warm_probe(
        classification_dataset: int, tiny_text_encoder: Path, launches: list) -> None:
    """Issue 28 item 5: in a process that already loaded the model (here: torch and transformers imported, as in a
    server after an LSTM estimate) the probe's load is warm (0.07 s for MiniLM, several seconds in the worker: the
    Transformer's 0.63). The load part is then the cold load timed in a fresh process, kept for the next estimate;
    the same launch measured the start-up."""
    from core.runs import calibration
    from core.text.config import build_config

    config = build_config("transformer", {"model_id": str(tiny_text_encoder), "batch_size": 8, "max_length": 32,
                                          "device": "cpu", "epochs": 1})
    est = estimate_any(dataset(classification_dataset), "transformer", config)
    assert launches == [("transformer", "core.text.estimate:build_cold")]
    assert est.parts["loading the model"] == pytest.approx(4.2) and est.parts["start-up"] == 3.0
    kept = calibration.lookup(calibration.load_key("transformer", config))
    assert kept == {calibration.COLD_LOAD: pytest.approx(4.2)}
    assert estimate_any(dataset(classification_dataset), "transformer", config).parts["loading the model"] == 4.2
    assert len(launches) == 1  # kept: the next estimate launches nothing


def test_the_measurement_at_start_leaves_the_first_estimate_nothing_to_launch(
        classification_dataset: int, launches: list, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 28 item 5: the first estimate took 11-20 s, mostly the launch timing a worker's start-up. The app
    measures every kind when it starts (text kinds first, kinds that start the same process once), so the first
    estimate of a default run is a probe only."""
    from core.runs import estimates
    from core.runs.timing import startup_key
    from core.text.config import build_config

    estimates.measure_cold_starts()
    kinds = [kind for kind, _ in launches]
    assert kinds[:3] == ["transformer", "lstm", "tfidf"] and "content" in kinds
    # EASE, item k-NN and popularity start the same process: measured once (the neural kinds also time a load)
    assert len({startup_key(kind) for kind in kinds[2:]}) == len(kinds[2:]) < 7
    assert ("transformer", "core.text.estimate:build_cold") in launches and ("lstm", "core.text.estimate:build_cold") \
        in launches
    measured = len(launches)
    est = estimate_any(dataset(classification_dataset), "lstm", build_config("lstm", {
        "batch_size": 8, "max_length": 32, "device": "cpu", "epochs": 1}))
    assert len(launches) == measured  # nothing launched: start-up and the cold load were kept
    assert est.parts["start-up"] == 3.0 and est.parts["loading the model"] == pytest.approx(4.2)
    estimates.measure_cold_starts()
    assert len(launches) == measured  # once per machine

    started = []
    monkeypatch.setattr(estimates, "measure_cold_starts", lambda: started.append(1))
    monkeypatch.setattr(estimates, "_started", __import__("threading").Event())
    assert not estimates.measure_cold_starts_in_background()  # PROTOLAB_MEASURE_AT_START=0 in the tests
    monkeypatch.setenv("PROTOLAB_MEASURE_AT_START", "1")
    assert estimates.measure_cold_starts_in_background() and not estimates.measure_cold_starts_in_background()


def test_a_fresh_process_times_the_start_up_and_the_cold_load_apart(tiny_text_encoder: Path) -> None:
    """What cold_load_seconds launches: the worker's imports, then the model built by the executor's build_model."""
    import json
    from dataclasses import asdict

    from core.runs import calibration
    from core.runs.timing import cold_start, startup_key
    from core.text.config import build_config, config_from_dict

    cfg = config_from_dict(build_config("transformer", {"model_id": str(tiny_text_encoder)}))
    timed = cold_start("transformer", "core.text.estimate:build_cold", json.dumps(["transformer", asdict(cfg)]))
    assert timed.load_s is not None and timed.load_s > 0 and timed.startup_s > timed.load_s / 100
    assert calibration.lookup(startup_key("lstm")) == {"seconds": pytest.approx(timed.startup_s)}  # the same process


def test_a_real_run_records_its_model_load_and_the_next_estimate_uses_it(
        tmp_path: Path, classification_dataset: int) -> None:
    from core.runs import calibration
    from core.text.config import build_config
    from core.text.executor import execute_run

    config = build_config("lstm", {"batch_size": 8, "max_length": 32, "device": "cpu", "init_embeddings": False,
                                   "epochs": 1})
    execute_run(RecordingContext(model_kind="lstm", config=config, dataset_id=classification_dataset,
                                 artifact_dir=tmp_path / "run"))
    real = calibration.lookup(calibration.load_key("lstm", config))[calibration.REAL_LOAD]
    assert real > 0
    calibration.remember(calibration.load_key("lstm", config), **{calibration.COLD_LOAD: 99.0})  # a real run wins
    est = estimate_any(dataset(classification_dataset), "lstm", config)
    assert est.parts["loading the model"] == pytest.approx(real, abs=1e-3)


def test_the_probe_trains_with_the_threads_the_run_would_get(classification_dataset: int, launches: list,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 28 item 5: a run gives up threads while other programs use cores (CpuThreadGovernor); the probe timed
    its steps on all of them, where OpenMP threads spin for the lost core: 3-9x the real rate on a loaded box. The
    probe now polls the same governor between its steps and puts the thread count back afterwards."""
    import torch

    from core.runs.device import CpuThreadGovernor
    from core.text import estimate as text_estimate
    from core.text.config import build_config

    threads_at_start, seen = torch.get_num_threads(), []

    class Busy(CpuThreadGovernor):  # other programs are using all but one core
        def poll(self) -> None:
            torch.set_num_threads(1)
            seen.append(torch.get_num_threads())

        def restore(self) -> None:
            torch.set_num_threads(threads_at_start)
            seen.append("restored")

    monkeypatch.setattr(text_estimate, "CpuThreadGovernor", Busy)
    config = build_config("lstm", {"batch_size": 8, "max_length": 32, "device": "cpu", "init_embeddings": False,
                                   "epochs": 1})
    estimate_any(dataset(classification_dataset), "lstm", config)
    assert seen == [1] * (1 + 2 * text_estimate.PROBE_STEPS) + ["restored"]
    assert torch.get_num_threads() == threads_at_start


def test_a_probe_whose_model_load_imported_nothing_was_warm_and_is_not_kept_as_cold(
        classification_dataset: int, tiny_text_encoder: Path, launches: list,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Some library of the kind still to import (sklearn.metrics, say) does not make the model's load cold: this
    process built such a model already (the fixture did), its build imports nothing, and the cold load is timed in
    a fresh process instead."""
    from core.text import estimate as text_estimate
    from core.text.config import build_config

    monkeypatch.setattr(text_estimate, "imports_pending", lambda kind: True)
    config = build_config("transformer", {"model_id": str(tiny_text_encoder), "batch_size": 8, "max_length": 32,
                                          "device": "cpu", "epochs": 1})
    est = estimate_any(dataset(classification_dataset), "transformer", config)
    assert ("transformer", "core.text.estimate:build_cold") in launches
    assert est.parts["loading the model"] == pytest.approx(4.2)
