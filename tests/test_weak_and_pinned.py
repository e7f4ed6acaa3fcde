"""Weak runs flagged and the demo model chosen on purpose (issue 24): weakness, demo order, pins, CLI, pages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.cli import main
from core.evaluation.weakness import run_weakness
from core.text.serving import servable_runs
from db import read_scope, session_scope
from db import runs as run_queries
from tests.conftest import sklearn_predictions, store_completed_run

ROOT = Path(__file__).resolve().parent.parent
SENTIMENT = str(ROOT / "pages" / "sentiment.py")


def _majority_level(run_id: int) -> None:
    """Give a stored run the figures of always answering the majority class (macro-F1 0.333 on two classes)."""
    report = {"n": 60, "labels": ["negative", "positive"], "majority_rate": 0.5, "majority_label": "negative",
              "accuracy": 0.5, "macro_f1": 1 / 3}
    with session_scope() as s:
        run = run_queries.get_run(s, run_id)
        run.metrics = {"accuracy": 0.5, "macro_f1": 1 / 3, "reports": {"test": report}}


def _cli_json(capsys: pytest.CaptureFixture, *args: str) -> dict:
    assert main(list(args)) == 0
    return json.loads(capsys.readouterr().out)


def test_a_majority_class_level_run_is_flagged_weak_everywhere(make_served_run,  # noqa: ANN001
                                                                capsys: pytest.CaptureFixture) -> None:
    good, weak = make_served_run("tfidf", macro_f1=0.9), make_served_run("tfidf", macro_f1=0.3)
    _majority_level(weak)
    with read_scope() as s:
        found = run_weakness(run_queries.get_run(s, weak), s)
        assert not run_weakness(run_queries.get_run(s, good), s).weak
    assert found.weak and "majority class" in found.reason
    shown = _cli_json(capsys, "runs", "show", str(weak), "--json")
    assert shown["weak"] is True and "majority class" in shown["weak_reason"] and shown["pinned"] is False
    assert _cli_json(capsys, "runs", "show", str(good), "--json")["weak"] is False
    assert main(["runs", "list"]) == 0
    lines = {int(line.split()[0]): line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "weak" in lines[weak] and "weak" not in lines[good]


def test_a_run_within_its_interval_of_the_tfidf_baseline_is_weak_and_never_the_demo_default(
        classification_dataset: int) -> None:
    """One more right answer than the TF-IDF baseline: the higher macro-F1, but no evidence it is better."""
    labels, preds = sklearn_predictions(classification_dataset)
    baseline = store_completed_run(classification_dataset, labels, preds, model_kind="tfidf", name="tfidf")
    test = preds["test"].copy()
    wrong = np.flatnonzero(test["label"] != test["pred"])
    if len(wrong):
        test.loc[wrong[0], "pred"] = test.loc[wrong[0], "label"]
    else:  # a perfect baseline: make the other run a hair worse instead, still within the interval
        test.loc[0, "pred"] = "negative" if test.loc[0, "label"] == "positive" else "positive"
    lucky = store_completed_run(classification_dataset, labels, {**preds, "test": test}, model_kind="lstm",
                                name="lucky")
    with read_scope() as s:
        weakness = run_weakness(run_queries.get_run(s, lucky), s)
    assert weakness.weak and f"TF-IDF baseline #{baseline}" in weakness.reason
    with read_scope() as s:
        ordered = [r.run_id for r in servable_runs(s)]
        shown = [r.run_id for r in servable_runs(s, present=True)]
    assert ordered == [baseline, lucky]  # the weak run last, even with the higher score
    assert shown == [baseline]  # and presentation mode leaves it out


def test_the_default_is_the_best_lower_bound_on_the_largest_test_set(make_served_run) -> None:  # noqa: ANN001
    """A 60-text score never outranks a 3,700-text one: the issue's 'Model 1 · tweets_600 v2'."""
    small, large = make_served_run("tfidf", macro_f1=0.7), make_served_run("tfidf", macro_f1=0.62)
    for run_id, n, (low, high) in ((small, 60, (0.58, 0.82)), (large, 3724, (0.60, 0.64))):
        with session_scope() as s:
            run = run_queries.get_run(s, run_id)
            value = run.metrics["macro_f1"]
            run.metrics = {**run.metrics, "intervals": {"test": {"macro_f1": {
                "value": value, "ci_low": low, "ci_high": high, "n": n}}}}
    with read_scope() as s:
        assert [r.run_id for r in servable_runs(s)] == [large, small]


def test_runs_pin_and_unpin(make_served_run, capsys: pytest.CaptureFixture) -> None:  # noqa: ANN001
    first, second = make_served_run("tfidf", macro_f1=0.9), make_served_run("tfidf", macro_f1=0.3)
    _majority_level(second)
    assert main(["runs", "pin", str(second)]) == 0
    assert "pinned for demos" in capsys.readouterr().out
    assert _cli_json(capsys, "runs", "show", str(second), "--json")["pinned"] is True
    with read_scope() as s:
        assert [r.run_id for r in servable_runs(s, present=True)] == [second, first]  # pinned: shown, even weak
    assert main(["runs", "pin", str(first)]) == 0  # one pinned run per task
    capsys.readouterr()
    assert _cli_json(capsys, "runs", "show", str(second), "--json")["pinned"] is False
    assert main(["runs", "unpin", str(first)]) == 0
    capsys.readouterr()
    assert _cli_json(capsys, "runs", "show", str(first), "--json")["pinned"] is False
    assert main(["runs", "pin", "999"]) != 0


def test_presentation_mode_shows_the_pinned_run_and_hides_weak_ones(make_served_run) -> None:  # noqa: ANN001
    good, weak = make_served_run("tfidf", macro_f1=0.9), make_served_run("tfidf", macro_f1=0.3)
    _majority_level(weak)
    at = AppTest.from_file(SENTIMENT, default_timeout=60)
    at.session_state["present"] = True
    at.run()
    assert not at.exception and at.selectbox(key="run").options == ["Model 1 · tiny-sentiment"]
    assert at.selectbox(key="run").value == good
    with session_scope() as s:
        run_queries.set_pinned(s, run_queries.get_run(s, weak), True)
    at = AppTest.from_file(SENTIMENT, default_timeout=60)
    at.session_state["present"] = True
    at.run()
    assert not at.exception and at.selectbox(key="run").value == weak  # chosen on purpose
    workbench = AppTest.from_file(SENTIMENT, default_timeout=60).run()
    labels = workbench.selectbox(key="run").options  # AppTest lists the formatted labels
    assert "📌 pinned for demos" in labels[0] and "⚠ weak" in labels[0] and "weak" not in labels[1]


def test_evaluate_pins_a_run_for_demos(completed_classification_run: int) -> None:
    run_id = completed_classification_run
    at = AppTest.from_file(str(ROOT / "pages" / "evaluate.py"), default_timeout=60)
    at.query_params["run"] = str(run_id)
    at.run()
    at.button(key="pin_demo").click().run()
    assert not at.exception
    with read_scope() as s:
        assert run_queries.get_run(s, run_id).pinned
    assert "Unpin" in at.button(key="pin_demo").label
