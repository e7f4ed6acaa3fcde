"""A time budget's plan (issue 28, item 6): when the estimate of the whole run is over `--minutes N`, the sample,
max length and epochs that fit, chosen from the estimate's own parts; what it costs, from the label curve."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core import training
from core.cli import main
from core.runs import calibration
from core.runs.budget_plan import KNOBS, plan_budget, predicted_seconds
from core.text.estimate import Estimate, estimate_from_parts
from core.text.executor import execute_run
from db import datasets as dataset_queries
from db import read_scope
from db import runs as run_queries
from tests.test_training import make_ctx

# 37k tweets on a 2-core CPU, roughly as the Transformer's estimate said (1 h 26 min): start-up and loading fixed,
# training 80 min for 3 epochs at 128 tokens. Tweets are short: 95 % of the probe's texts within 48 tokens.
LENGTHS = tuple([20] * 60 + [30] * 25 + [40] * 10 + [60] * 5)
PARTS = {"start-up": 10.0, "loading data": 2.0, "loading the model": 3.0, "tokenising": 20.0,
         "training": 4800.0, "evaluation": 300.0, "saving": 1.0}
SIZES = {"train": 29_600, "validation": 3_700, "test": 3_700}
CLASSES = {"negative": 9_000, "neutral": 12_000, "positive": 8_600}
ASKED = {"minutes": 10.0, "epochs": 3, "max_length": 128, "batch_size": 32}


def fake_estimate(**kwargs) -> Estimate:  # noqa: ANN003
    return estimate_from_parts(PARTS, peak_memory_bytes=None, warning=None,
                               **{"sizes": SIZES, "token_lengths": LENGTHS} | kwargs)


def test_a_run_over_its_budget_gets_a_shorter_length_one_epoch_and_the_largest_sample_that_fits() -> None:
    est = fake_estimate()
    plan = plan_budget(est, ASKED, KNOBS, CLASSES)
    assert plan is not None and plan.fits
    assert plan.changes["max_length"] == (128, 48)  # the shortest standard length that keeps 95 % whole
    assert plan.changes["epochs"] == (3, 1)
    asked_rows, rows = plan.changes["train_rows"]
    assert asked_rows == 29_600 and 1_000 < rows < 29_600
    assert plan.planned_s <= 600 < predicted_seconds(est, ASKED, rows + 50, 48, 1)  # the largest that fits
    assert plan.apply({**ASKED, "seed": 1}) == {**ASKED, "seed": 1, "train_rows": rows, "max_length": 48,
                                                "epochs": 1}
    assert "Expected loss unknown: no label curve" in plan.message  # no curve, so no guess
    assert "stratified sample of" in plan.message and "10-minute budget" in plan.message
    event = plan.event()
    assert event["event"] == "budget_plan" and event["changes"]["epochs"] == [3, 1] and event["message"]


def test_the_label_curve_says_what_the_sample_costs() -> None:
    plan = plan_budget(fake_estimate(), ASKED, KNOBS, CLASSES, curve={8: 0.40, 16: 0.48, 32: 0.55, 64: 0.60},
                       curve_model="Transformer")
    per_class = plan.changes["train_rows"][1] / 3
    doublings = __import__("math").log2((29_600 / 3) / per_class)
    assert f"at most about {0.05 * doublings:.2f} macro-F1" in plan.expected_loss
    assert "Transformer's label curve gains +0.050 per doubling" in plan.expected_loss


def test_no_plan_when_the_run_fits_or_the_kind_has_no_knob() -> None:
    assert plan_budget(fake_estimate(), {**ASKED, "minutes": 120}, KNOBS, CLASSES) is None
    assert plan_budget(fake_estimate(), {**ASKED, "minutes": None}, KNOBS, CLASSES) is None
    assert plan_budget(fake_estimate(), ASKED, (), CLASSES) is None  # e.g. a kind with none of the options


def test_only_the_knobs_a_kind_has_are_turned_and_a_budget_too_small_says_so() -> None:
    plan = plan_budget(fake_estimate(), ASKED, ("epochs",), CLASSES)
    assert set(plan.changes) == {"epochs"} and not plan.fits and "still over the budget" in plan.message
    tiny = plan_budget(fake_estimate(), {**ASKED, "minutes": 0.5}, KNOBS, CLASSES)
    assert tiny.changes["train_rows"][1] == 8 * 3 and not tiny.fits  # the floor: 8 rows a class


def test_scaling_follows_the_parts() -> None:
    est = fake_estimate()
    full = predicted_seconds(est, ASKED, 29_600, 128, 3)
    assert full == pytest.approx(est.seconds)
    fixed = 16.0
    half = predicted_seconds(est, ASKED, 14_800, 128, 3)
    assert half - fixed == pytest.approx(10 + 4800 / 2 + 300, rel=0.01)


def test_the_cli_plans_a_run_over_its_budget_records_the_plan_and_the_run_trains_the_sample(
        tmp_path: Path, classification_dataset: int, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`protolab train --minutes 1` on a run estimated at 2 minutes: the CLI queues the planned config with the plan
    as the run's event (and in its --json), and the run trains on that stratified sample."""
    monkeypatch.setenv("PROTOLAB_DISPATCH", "queue")  # queued only: the run is executed in this process below
    with read_scope() as s:
        n_train = int(dataset_queries.get_dataset(s, classification_dataset).split_counts["train"])
    slow = estimate_from_parts({"start-up": 10.0, "training": 110.0}, peak_memory_bytes=None, warning=None,
                               sizes={"train": n_train, "validation": 10, "test": 10})
    monkeypatch.setattr(training, "estimate_any", lambda dataset, kind, config: slow)
    assert main(["train", "--dataset", str(classification_dataset), "--model", "lstm", "--minutes", "1",
                 "--epochs", "1", "--max-length", "32", "--batch-size", "16", "--device", "cpu", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [e["event"] for e in out["events"]] == ["budget_plan"]
    with read_scope() as s:
        run = run_queries.get_run(s, out["run_id"])
        config, events = dict(run.config), list(run.events)
    rows = config["train_rows"]
    assert 8 * 2 <= rows < n_train and rows == pytest.approx(n_train * 50 / 110, abs=2)
    plan = next(e for e in events if e["event"] == "budget_plan")
    assert plan["changes"] == {"train_rows": [n_train, rows]} and "Expected loss unknown" in plan["message"]
    ctx = make_ctx(tmp_path, classification_dataset, "lstm", **{k: config[k] for k in (
        "train_rows", "epochs", "max_length", "batch_size", "device")}, init_embeddings=False)
    metrics = execute_run(ctx)
    threads = __import__("torch").get_num_threads()
    real = calibration.lookup(calibration.key_of("lstm", config, "cpu", threads))  # the next estimate's rate
    assert real[calibration.REAL] == pytest.approx(1 / metrics["train_samples_per_s"])
    assert metrics["train_rows"] == rows  # trained on the sample, stratified: every label kept
    assert set(metrics["labels"]) == {"negative", "positive"}
