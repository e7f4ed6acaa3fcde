"""Hyperparameter search (issue 27): the space from the option schema and --space, a real search whose trials are
ordinary runs started by real worker processes, pruning from the epochs' validation scores, stop and resume."""

from __future__ import annotations

import json

import pytest

from core.cli import main as cli
from core.runs import registry
from core.search import searches
from core.search.space import SpaceError, default_space, defaults_inside, parse_space
from core.search.study import open_study
from db import read_scope, session_scope
from db import runs as run_queries
from db.enums import RunStatus, SearchStatus


def test_the_default_space_is_the_kinds_declared_ranges_and_space_overrides_them() -> None:
    tfidf = registry.get_kind("tfidf")
    assert {p.name for p in default_space(tfidf)} == {"tfidf_c", "tfidf_ngram_max", "tfidf_min_df"}
    params = {p.name: p for p in parse_space("tfidf_c=float(1,2);seed=int(1,3)", tfidf)}
    assert (params["tfidf_c"].low, params["tfidf_c"].high, params["tfidf_c"].log) == (1.0, 2.0, False)
    assert params["seed"].type == "int" and "tfidf_min_df" in params
    assert defaults_inside(tfidf, default_space(tfidf)) == {"tfidf_c": 4.0, "tfidf_ngram_max": 2, "tfidf_min_df": 1}
    lstm = registry.get_kind("lstm")
    assert parse_space("learning_rate=log(1e-5,1e-3);epochs=int(1,5)", lstm)[-1].high == 5


@pytest.mark.parametrize(("space", "says"), [
    ("nope=int(1,2)", "has no option 'nope'"), ("epochs=log(1,2)", "whole number"),
    ("learning_rate=log(0,1)", "log scale needs a low above 0"), ("epochs=int(1,500)", "within [1, 100]"),
    ("learning_rate=float(2,1e-3)", "above high"), ("epochs", "NAME=FORM"), ("epochs=int(a,2)", "not a number"),
])
def test_a_bad_space_says_which_entry_and_why(space: str, says: str) -> None:
    with pytest.raises(SpaceError, match=says.replace("[", r"\[").replace("(", r"\(")):
        parse_space(space, registry.get_kind("lstm"))


def test_a_bad_search_stores_nothing(classification_dataset: int) -> None:
    assert cli(["search", "--dataset", "tiny-sentiment", "--model", "tfidf", "--trials", "2", "--space",
                "tfidf_c=log(-1,2)"]) == 1
    assert cli(["search", "--dataset", "tiny-sentiment", "--model", "ease", "--trials", "2"]) == 1
    with read_scope() as s:
        assert searches.search_queries.list_searches(s) == []


def test_a_tfidf_search_runs_its_trials_as_runs_and_reports_the_best(classification_dataset: int,
                                                                       capsys: pytest.CaptureFixture) -> None:
    code = cli(["search", "--dataset", "tiny-sentiment", "--model", "tfidf", "--trials", "2", "--space",
                "tfidf_c=log(0.01,0.1)", "--wait", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out
    assert out["status"] == "completed" and len(out["trials"]) == 2
    # trial 0 runs the defaults (C=4 is outside this space, so it does not): both are TPE's
    assert all(0.01 <= t["params"]["tfidf_c"] <= 0.1 for t in out["trials"])
    assert {t["state"] for t in out["trials"]} == {"complete"}
    best = max(out["trials"], key=lambda t: t["value"])
    assert out["best"]["run_id"] == best["run_id"]
    with read_scope() as s:
        for t in out["trials"]:
            run = run_queries.get_run(s, t["run_id"])
            assert run.status == RunStatus.COMPLETED and run.config["tfidf_c"] == t["params"]["tfidf_c"]
            points = [p for p in run_queries.metric_points(s, run.id, "macro_f1") if p.split == "validation"]
            assert t["value"] == max(p.value for p in points)  # validation, never test
    study = open_study(out["search_id"])
    assert len(study.trials) == 2 and study.best_value == out["best"]["value"]
    assert cli(["search", "--promote", str(out["search_id"])]) == 0
    with read_scope() as s:
        assert run_queries.get_run(s, out["best"]["run_id"]).pinned


def _wait(search_id: int, until, timeout_s: float = 240.0) -> dict:  # noqa: ANN001
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        searches.reap_lost_searches()
        with read_scope() as s:
            summary = searches.summary(s, search_id)
        if until(summary):
            return summary
        time.sleep(0.3)
    raise AssertionError(f"search {search_id} never got there: {summary}")


@pytest.mark.slow
def test_a_trial_below_the_median_is_pruned_within_an_epoch_and_shown_as_pruned(classification_dataset: int) -> None:
    # Trial 0 learns (lr 0.02), trial 1 cannot (lr 1e-7): its first epoch is below trial 0's, so the median pruner
    # (one finished trial is enough here) stops it. The sampler's seed makes TPE's random start try them in order.
    with session_scope() as s:
        dataset = s.get(searches.Dataset, classification_dataset)
        search_id = searches.start_search(
            s, dataset=dataset, model_kind="lstm", trials=2, space="learning_rate=choice(1e-7,0.02)",
            options={"epochs": 4, "batch_size": 8, "init_embeddings": False}, parallel=1,
            search_settings={"seed": 0, "startup_trials": 1})
    out = _wait(search_id, lambda x: not SearchStatus(x["status"]).is_active)
    assert out["status"] == "completed", out
    good, bad = out["trials"]
    assert (good["params"]["learning_rate"], bad["params"]["learning_rate"]) == (0.02, 1e-7)
    assert (good["state"], bad["state"]) == ("complete", "pruned")  # pruned, not failed
    assert out["best"]["run_id"] == good["run_id"]
    with read_scope() as s:
        run = run_queries.get_run(s, bad["run_id"])
        epochs = {p.epoch for p in run_queries.metric_points(s, run.id, "macro_f1") if p.split == "validation"}
        assert run.status == RunStatus.CANCELLED and "pruned" in run.status_text
        assert [e["event"] for e in run.events if e["event"] == "pruned"] == ["pruned"]
    assert len(epochs) < 4  # stopped early: its worker was freed for the next trial


@pytest.mark.slow
def test_a_search_stops_resumes_and_survives_its_driver_being_killed(classification_dataset: int) -> None:
    import os
    import signal

    with session_scope() as s:
        dataset = s.get(searches.Dataset, classification_dataset)
        search_id = searches.start_search(s, dataset=dataset, model_kind="tfidf", trials=3, parallel=1)
    _wait(search_id, lambda x: len(x["trials"]) >= 1)
    with session_scope() as s:
        searches.stop_search(s, search_id)
    stopped = _wait(search_id, lambda x: x["status"] == "stopped")
    with pytest.raises(searches.SearchError, match="only a queued or running search"), session_scope() as s:
        searches.stop_search(s, search_id)
    with session_scope() as s:
        searches.resume_search(s, search_id)
    _wait(search_id, lambda x: x["status"] == "running" and any(t["state"] == "complete" for t in x["trials"]))
    with read_scope() as s:
        pid = searches.search_queries.get_search(s, search_id).pid
    os.kill(pid, signal.SIGKILL)  # a crashed driver: its search fails, saying so, and resumes from the study
    failed = _wait(search_id, lambda x: x["status"] == "failed")
    assert "driver" in failed["error"]
    with session_scope() as s:
        searches.resume_search(s, search_id)
    out = _wait(search_id, lambda x: not SearchStatus(x["status"]).is_active)
    assert out["status"] == "completed", out
    counted = [t for t in out["trials"] if t["state"] != "stopped"]
    assert len(counted) == 3 and {t["state"] for t in counted} == {"complete"}
    assert len(out["trials"]) == 3 + sum(t["state"] == "stopped" for t in stopped["trials"])
    assert out["trials"][0]["params"] == {"tfidf_c": 4.0, "tfidf_ngram_max": 2, "tfidf_min_df": 1}  # the defaults
    study = open_study(search_id)
    assert len(study.trials) == len(out["trials"])  # the study's trials are the search's, one run each
    assert sum(t.state.name == "COMPLETE" for t in study.trials) == 3
    with read_scope() as s:
        assert {run_queries.get_run(s, t["run_id"]).status for t in counted} == {RunStatus.COMPLETED}


def test_a_recommender_search_optimises_validation_ndcg_never_the_test_split(interactions_dataset: int,
                                                                            capsys: pytest.CaptureFixture) -> None:
    code = cli(["search", "--dataset", "tiny-interactions", "--model", "itemknn", "--trials", "2", "--space",
                "neighbours=int(10,100)", "--wait", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["status"] == "completed", out
    assert out["metric"] == "validation ndcg@10" and {t["state"] for t in out["trials"]} == {"complete"}
    with read_scope() as s:
        for t in out["trials"]:
            run = run_queries.get_run(s, t["run_id"])
            points = [p for p in run_queries.metric_points(s, run.id, "ndcg@10") if p.split == "validation"]
            assert t["value"] == max(p.value for p in points) == run.metrics["validation"]["ndcg@10"]
            assert run.metrics["n_validation"] > 0 and run.metrics["ndcg@10"] != t["value"]  # test is apart


def test_a_resumed_driver_still_prunes_the_trial_its_crashed_predecessor_left_running(
        classification_dataset: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.runs import jobs
    from core.search import driver as driving
    from core.search.space import Param

    # No processes: the drivers are driven here step by step, and the trials' runs only queued.
    monkeypatch.setattr(searches, "launch_driver", lambda search_id: 0)
    monkeypatch.setattr(jobs, "launch_worker", lambda run_id, gpus=1: 0)
    settings = {"seed": 0, "startup_trials": 1}
    with session_scope() as s:
        dataset = s.get(searches.Dataset, classification_dataset)
        search_id = searches.start_search(s, dataset=dataset, model_kind="lstm", trials=3, parallel=1,
                                          space="learning_rate=log(1e-4,1e-2)", options={"epochs": 4},
                                          search_settings=settings)
    with read_scope() as s:
        params = [Param.of(p) for p in searches.search_queries.get_search(s, search_id).space]

    def epoch_scored(run_id: int, epoch: int, value: float, status: RunStatus | None = None) -> None:
        with session_scope() as s:
            run_queries.add_metric_points(s, run_id, [{"name": "macro_f1", "value": value, "epoch": epoch,
                                                       "step": epoch, "split": "validation"}])
            if status is not None:
                run_queries.get_run(s, run_id).status = status

    first = driving.Driver(search_id, open_study(search_id, settings), params)
    first.step()  # trial 0 queued
    with read_scope() as s:
        [trial0] = searches.search_queries.trials_of(s, search_id)
    epoch_scored(trial0.run_id, 1, 0.9, RunStatus.COMPLETED)
    first.step()  # trial 0 told complete, trial 1 queued
    with read_scope() as s:
        trial1 = searches.search_queries.trials_of(s, search_id)[1]
    # The first driver dies here; trial 1's run goes on and scores its first epoch far below trial 0's.
    epoch_scored(trial1.run_id, 1, 0.1)

    second = driving.Driver(search_id, open_study(search_id, settings), params)
    driving._take_over_running(second)
    assert trial1.number in second.live
    second.step()
    with read_scope() as s:
        run = run_queries.get_run(s, trial1.run_id)
        assert run.cancel_requested and [e["event"] for e in run.events] == ["pruned"]
