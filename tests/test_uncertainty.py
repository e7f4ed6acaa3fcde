"""Uncertainty next to every headline (issue 24): bootstrap intervals, their warnings, the card's words."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.cli import main
from core.data.storage import write_dataset
from core.evaluation import uncertainty
from core.evaluation.cards import classifier_card
from core.evaluation.metrics import classification_report
from core.recs.ranking import RankingAccumulator
from db import session_scope
from db.enums import TaskKind
from tests.conftest import sentiment_frame, sklearn_predictions, store_completed_run, with_splits

LABELS = ["a", "b", "c"]


def _noisy(n: int, seed: int = 0, right: float = 0.75) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    truth = rng.choice(LABELS, size=n)
    guess = np.where(rng.random(n) < right, truth, rng.choice(LABELS, size=n))
    return truth.tolist(), guess.tolist()


def test_intervals_contain_the_point_estimate_and_shrink_as_the_test_set_grows() -> None:
    widths = {}
    for n in (60, 600, 6000):
        truth, guess = _noisy(n)
        found = uncertainty.class_intervals(truth, guess, LABELS)
        report = classification_report(truth, guess, LABELS)
        for key in ("accuracy", "macro_f1"):
            iv = found[key]
            assert iv.value == pytest.approx(report[key]) and iv.n == n  # the very figure the run reports
            assert iv.ci_low < iv.value < iv.ci_high
        widths[n] = found["macro_f1"].ci_high - found["macro_f1"].ci_low
    assert widths[60] > 2 * widths[600] > 4 * widths[6000]  # about 1/sqrt(n): 10x the rows, ~3x narrower


def test_the_same_rows_always_give_the_same_interval() -> None:
    truth, guess = _noisy(300, seed=3)
    assert uncertainty.class_intervals(truth, guess, LABELS) == uncertainty.class_intervals(truth, guess, LABELS)


def test_bootstrap_matches_a_plain_resampling_of_the_rows() -> None:
    """The vectorised confusion counts give what sklearn gives on the very same resample."""
    from sklearn.metrics import f1_score

    truth, guess = _noisy(200, seed=5)
    samples = uncertainty.bootstrap_class_scores(truth, guess, LABELS, n_resamples=5, seed=9)
    rng = np.random.default_rng(9)
    idx = rng.integers(0, 200, size=(5, 200))
    t, g = np.asarray(truth), np.asarray(guess)
    for i in range(5):
        expected = f1_score(t[idx[i]], g[idx[i]], labels=LABELS, average="macro", zero_division=0)
        assert samples["macro_f1"][i] == pytest.approx(expected)
        assert samples["accuracy"][i] == pytest.approx(float((t[idx[i]] == g[idx[i]]).mean()))


def _stored_run(n: int) -> int:
    frame = with_splits(sentiment_frame(n, seed=n))
    with session_scope() as s:
        dataset_id = write_dataset(s, name=f"sentiment-{n}", task=TaskKind.CLASSIFICATION, frame=frame,
                                   mapping={"text": "text", "label": "label"}).id
    labels, preds = sklearn_predictions(dataset_id)
    preds["test"]["pred"] = np.where(np.arange(len(preds["test"])) % 4 == 0,  # one in four wrong: a real spread
                                     preds["test"]["pred"].map({"positive": "negative", "negative": "positive"}),
                                     preds["test"]["pred"])
    return store_completed_run(dataset_id, labels, preds)


def test_eval_json_carries_intervals_that_contain_the_figure_and_shrink(capsys: pytest.CaptureFixture) -> None:
    widths = []
    for n in (120, 1200):
        run_id = _stored_run(n)
        assert main(["eval", str(run_id), "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert {"accuracy", "macro_f1", "n"} <= set(out)  # today's keys stay
        for key in ("accuracy", "macro_f1"):
            iv = out["intervals"][key]
            assert iv["value"] == pytest.approx(out[key]) and iv["n"] == out["n"]
            assert iv["ci_low"] <= iv["value"] <= iv["ci_high"]
        widths.append(out["intervals"]["macro_f1"]["ci_high"] - out["intervals"]["macro_f1"]["ci_low"])
    assert widths[1] < widths[0] / 2
    assert main(["eval", str(run_id)]) == 0
    assert "95 % interval" in capsys.readouterr().out


def test_card_says_how_far_the_score_could_move() -> None:
    card = classifier_card(labels=["negative", "positive"], accuracy=0.8, dataset_name="tweets", technical="#1",
                           n_test=60, accuracy_interval=(0.7, 0.9))
    assert card.how_good == ("It was right 8 times in 10 — between 7 and 9 on a test this size — on 60 texts it "
                             "never saw during training.")
    narrow = classifier_card(labels=["a", "b"], accuracy=0.8, dataset_name="d", technical="#1", n_test=6000,
                             accuracy_interval=(0.79, 0.81))
    assert "between 79 and 81 times in 100 on a test this size" in narrow.how_good


def test_warnings_for_a_small_test_set_and_a_validation_score_that_disagrees() -> None:
    truth, guess = _noisy(60)
    small = uncertainty.class_intervals(truth, guess, LABELS)["macro_f1"]
    assert "cannot be told apart" in uncertainty.too_small_warning(small)
    truth, guess = _noisy(6000)
    assert uncertainty.too_small_warning(uncertainty.class_intervals(truth, guess, LABELS)["macro_f1"]) is None
    val_truth, val_guess = _noisy(600, seed=1, right=0.3)
    validation = uncertainty.class_intervals(val_truth, val_guess, LABELS)["macro_f1"]
    assert "disagree" in uncertainty.disagreement_warning(small, validation)
    assert uncertainty.disagreement_warning(small, small) is None


def test_ranking_intervals_over_users() -> None:
    acc = RankingAccumulator([1, 2], n_catalogue=4, keep_k=2)
    top = np.array([[0, 1], [2, 3], [1, 0], [3, 2]])
    relevant = np.array([[1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=bool)
    acc.add(top, relevant)
    per_user = acc.per_user()
    assert per_user["hit_rate"].tolist() == [1.0, 1.0, 0.0, 1.0]
    iv = uncertainty.mean_interval(per_user["hit_rate"])
    assert iv.value == pytest.approx(acc.result()[2]["hit_rate"]) and iv.ci_low <= iv.value <= iv.ci_high
