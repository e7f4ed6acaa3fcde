"""Recommenders: configs, split protocols, real training on two taste groups, save/reload, worker runs and CLI."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest

from core.recs.config import build_config, parse_config
from core.recs.encoding import index_train
from core.recs.models import RecommenderError
from core.recs.serving import load_recommender
from core.recs.splits import leave_last_out, split_interactions, stratified_item_split, validation_split
from core.recs.training import evaluate_model, train_model
from db import runs as run_queries
from db import session_scope
from db.enums import RunStatus, TaskKind
from tests.conftest import interactions_frame, items_frame
from tests.helpers import queue_run

METRIC_KEYS = {"ndcg@10", "precision@10", "recall@10", "map@10", "hit_rate@10", "coverage", "k", "by_k",
               "n_users_scored", "train_time_s", "protocol"}
FAST = {"bpr": {"epochs": 60, "factors": 16, "batch_size": 64, "learning_rate": 0.05},
        "sequential": {"epochs": 15, "factors": 16, "batch_size": 16, "learning_rate": 0.01}}


def completed_run(dataset_id: int, kind: str, options: dict | None = None) -> int:
    """A run executed by the real worker code, in this process (no subprocess, so it is quick)."""
    from core.runs.worker import execute

    config = build_config(kind, options if options is not None else FAST.get(kind, {}))
    with session_scope() as s:
        run_id = run_queries.create_run(s, dataset_id=dataset_id, task=TaskKind.INTERACTIONS, model_kind=kind,
                                        config=config).id
    assert execute(run_id) == RunStatus.COMPLETED, _error(run_id)
    return run_id


def _error(run_id: int) -> str:
    with session_scope() as s:
        return str(run_queries.get_run(s, run_id).error)


# --- configs -------------------------------------------------------------------------------

def test_build_config_defaults_and_options() -> None:
    cfg = build_config("bpr", {"epochs": 3, "k": 5, "factors": 8, "device": "cpu"})
    assert cfg["epochs"] == 3 and cfg["k"] == 5 and cfg["factors"] == 8
    assert cfg["split_protocol"] == "stratified_item" and cfg["seed"] == 42
    assert build_config("popularity", {})["k"] == 10
    assert build_config("sequential", {"split_protocol": "leave_last_out"})["split_protocol"] == "leave_last_out"


@pytest.mark.parametrize(("kind", "options", "message"), [
    ("popularity", {"epochs": 3}, "do not apply"),
    ("bpr", {"epochs": 0}, "epochs"),
    ("bpr", {"learning_rate": -1.0}, "learning_rate"),
    ("itemknn", {"k": 0}, "k must be"),
    ("bpr", {"split_protocol": "random"}, "split_protocol"),
    ("bpr", {"device": "tpu"}, "device"),
    ("bpr", {"gpus": 2}, "one device"),
    ("bpr", {"factors": "many"}, "factors"),
    ("svd", {}, "unknown recommender"),
])
def test_build_config_rejects_bad_options(kind: str, options: dict, message: str) -> None:
    with pytest.raises(RecommenderError, match=message):
        build_config(kind, options)


# --- split protocols -----------------------------------------------------------------------

def test_stratified_item_split_keeps_three_quarters_of_each_item_and_is_seeded() -> None:
    frame = interactions_frame(n_users=60, per_user=10)
    train, test = stratified_item_split(frame, 0.75, "item", 42)
    assert len(train) + len(test) == len(frame)
    counts, in_train = frame["item"].value_counts(), train["item"].value_counts()
    for item, n in counts.items():
        assert in_train.get(item, 0) == round(0.75 * n)
    again, _ = stratified_item_split(frame, 0.75, "item", 42)
    other, _ = stratified_item_split(frame, 0.75, "item", 7)
    assert sorted(again.index) == sorted(train.index)
    assert sorted(other.index) != sorted(train.index)


def test_leave_last_out_holds_out_each_users_latest_interaction() -> None:
    frame = interactions_frame()
    train, test = leave_last_out(frame)
    assert len(test) == frame["user"].nunique()
    latest = frame.loc[frame.groupby("user")["timestamp"].idxmax()]
    assert set(zip(test["user"], test["item"], strict=True)) == set(zip(latest["user"], latest["item"], strict=True))
    assert (train.groupby("user")["timestamp"].max() < test.set_index("user")["timestamp"]).all()


def test_dataset_protocol_uses_the_stored_split() -> None:
    frame = interactions_frame().assign(split="train")
    frame.loc[frame.index[::4], "split"] = "test"
    cfg = parse_config("popularity", build_config("popularity", {"split_protocol": "dataset"}))
    train, test = split_interactions(frame, cfg)
    assert len(test) == len(frame.index[::4]) and set(train["split"]) == {"train"}


def test_validation_is_held_out_of_train_as_each_protocol_holds_out_test() -> None:
    frame = interactions_frame()
    cfg = parse_config("ease", build_config("ease", {}))
    train, test = split_interactions(frame, cfg)
    fit, validation = validation_split(frame, train, cfg)
    keys = lambda f: set(zip(f["user"], f["item"], strict=True))  # noqa: E731
    assert keys(fit) | keys(validation) == keys(train) and not keys(fit) & keys(validation)
    assert not keys(validation) & keys(test) and 0.05 < len(validation) / len(train) < 0.2
    assert set(validation["user"]) <= set(fit["user"])  # every validation user is known to the fitted model

    last = parse_config("ease", build_config("ease", {"split_protocol": "leave_last_out"}))
    train, _ = split_interactions(frame, last)
    fit, validation = validation_split(frame, train, last)
    assert validation.groupby("user")["timestamp"].min().ge(fit.groupby("user")["timestamp"].max()
                                                            .reindex(validation["user"].unique())).all()

    stored = frame.assign(split=["test" if i % 5 == 0 else "validation" if i % 5 == 1 else "train"
                                 for i in range(len(frame))])
    mine = parse_config("ease", build_config("ease", {"split_protocol": "dataset"}))
    train, _ = split_interactions(stored, mine)
    fit, validation = validation_split(stored, train, mine)
    assert set(fit["split"]) == {"train"} and set(validation["split"]) == {"validation"}
    assert validation_split(stored.assign(split="train"), train, mine)[1] is None  # none stored: none scored


def test_leave_last_out_without_timestamps_is_a_clear_error() -> None:
    with pytest.raises(RecommenderError, match="timestamp"):
        leave_last_out(interactions_frame().drop(columns="timestamp"))


# --- real training on two taste groups ------------------------------------------------------

def _fit_and_score(kind: str, options: dict, protocol: str = "stratified_item") -> float:
    frame = interactions_frame(n_users=60, per_user=10)
    cfg = parse_config(kind, build_config(kind, {**options, "device": "cpu", "split_protocol": protocol}))
    train, test = split_interactions(frame, cfg)
    data = index_train(train, items_frame(), with_catalogue=kind == "content")
    model = train_model(kind, cfg, data, catalogue=items_frame(), device="cpu")
    by_k, n_users = evaluate_model(model, data, test, ks=[5])
    assert n_users > 0
    return by_k[5]["ndcg"]


@pytest.mark.parametrize("kind", ["itemknn", "ease", "bpr", "sequential", "content"])
def test_models_beat_popularity_on_taste_groups(kind: str) -> None:
    baseline = _fit_and_score("popularity", {})
    score = _fit_and_score(kind, FAST.get(kind, {}))
    # Two disjoint taste groups: a model that learns them never recommends the other group's items.
    assert score > baseline + 0.1, (kind, score, baseline)


def test_sequential_learns_under_leave_last_out() -> None:
    baseline = _fit_and_score("popularity", {}, "leave_last_out")
    score = _fit_and_score("sequential", FAST["sequential"], "leave_last_out")
    assert score > baseline, (score, baseline)


def test_content_model_needs_a_catalogue() -> None:
    frame = interactions_frame()
    cfg = parse_config("content", build_config("content", {}))
    train, _ = split_interactions(frame, cfg)
    with pytest.raises(RecommenderError, match="catalogue"):
        train_model("content", cfg, index_train(train, None, with_catalogue=True), catalogue=None)


# --- worker runs, saving and serving ---------------------------------------------------------

def test_start_run_completes_with_the_metrics_contract(interactions_dataset: int) -> None:

    config = build_config("bpr", {**FAST["bpr"], "epochs": 5})
    run_id = queue_run(dataset_id=interactions_dataset, model_kind="bpr", config=config)
    deadline = time.time() + 180
    while time.time() < deadline:
        with session_scope() as s:
            run = run_queries.get_run(s, run_id)
            status, metrics, error = run.status, dict(run.metrics or {}), run.error
            losses = [p.value for p in run_queries.metric_points(s, run_id, "train_loss")]
        if not status.is_active:
            break
        time.sleep(0.5)
    assert status == RunStatus.COMPLETED, error
    assert set(metrics) >= METRIC_KEYS
    assert set(metrics["by_k"]) == {"1", "5", "10", "20"}
    assert set(metrics["by_k"]["10"]) == {"ndcg", "precision", "recall", "map", "hit_rate", "coverage"}
    assert metrics["ndcg@10"] == metrics["by_k"]["10"]["ndcg"]
    assert 0.0 <= metrics["ndcg@10"] <= 1.0 and metrics["protocol"] == "stratified_item"
    assert "rmse" not in metrics  # no model here predicts ratings
    assert len(losses) == 5
    # BPR trains once, without the validation part, and reports its score there (what a search optimises)
    assert metrics["n_validation"] > 0 and 0.0 <= metrics["validation"]["ndcg@10"] <= 1.0
    assert metrics["n_train"] > 0


def test_run_k_other_than_ten_names_the_keys(interactions_dataset: int) -> None:
    run_id = completed_run(interactions_dataset, "popularity", {"k": 5})
    with session_scope() as s:
        metrics = run_queries.get_run(s, run_id).metrics
    assert {"ndcg@5", "precision@5", "recall@5", "map@5", "hit_rate@5", "coverage"} <= set(metrics)
    assert metrics["k"] == 5


def test_recommender_runs_reads_in_the_callers_read_only_session(interactions_dataset: int) -> None:
    import shutil

    from core.recs.serving import recommender_runs
    from core.settings import run_dir
    from db import read_scope

    served = completed_run(interactions_dataset, "popularity")
    unsaved = completed_run(interactions_dataset, "popularity", {"k": 5})
    shutil.rmtree(run_dir(unsaved) / "model")  # completed but nothing to serve: not listed
    with read_scope() as s:  # a read-only session: the listing must not write
        runs = recommender_runs(s)
    assert [r.run_id for r in runs] == [served]
    assert runs[0].dataset_name == "tiny-interactions" and runs[0].k == 10 and runs[0].ndcg is not None


@pytest.mark.parametrize("kind", ["popularity", "itemknn", "bpr", "sequential", "content"])
def test_saved_model_reloads_and_serves(interactions_dataset: int, kind: str) -> None:
    run_id = completed_run(interactions_dataset, kind)
    model = load_recommender(run_id)
    user = "u0"  # an even-group user
    seen = set(model.user_history(user)["item"])
    top = model.recommend(user, k=5)
    assert len(top) == 5 and not seen & {item for item, _, _ in top}
    scores = [score for _, score, _ in top]
    assert scores == sorted(scores, reverse=True)
    if kind != "popularity":
        assert sum(int(item[1:]) % 2 == 0 for item, _, _ in top) >= 4, top
        assert all(reason in seen for _, _, reason in top if reason)
    likes = model.recommend_for_likes(["i1", "i3"], k=5)
    assert {"i1", "i3"}.isdisjoint(item for item, _, _ in likes) and len(likes) == 5
    similar = model.similar_items("i2", k=3)
    assert len(similar) == 3 and "i2" not in {item for item, _ in similar}
    history = model.user_history(user)
    assert {"item", "title", "rating", "date"} <= set(history.columns)
    assert history["title"].iloc[0].startswith("Garden")
    from core.settings import run_dir

    again = load_recommender(run_dir(run_id))  # the artifact folder works as well as the run id
    assert [i for i, _, _ in again.recommend(user, k=5)] == [i for i, _, _ in top]


def test_new_visitor_gets_their_taste_group(interactions_dataset: int) -> None:
    model = load_recommender(completed_run(interactions_dataset, "itemknn"))
    likes = model.recommend_for_likes(["i1", "i3", "i5"], k=5)
    assert all(int(item[1:]) % 2 == 1 for item, _, _ in likes)
    with pytest.raises(RecommenderError, match="none of the liked items"):
        model.recommend_for_likes(["nope"], k=5)
    with pytest.raises(RecommenderError, match="not in this model"):
        model.recommend("nobody", k=5)


def test_model_files_are_safe_formats(interactions_dataset: int) -> None:
    from core.settings import run_dir

    run_id = completed_run(interactions_dataset, "sequential")
    files = {p.name for p in (run_dir(run_id) / "model").iterdir()}
    assert files == {"arrays.safetensors", "index.json", "history.parquet", "items.parquet"}
    meta = json.loads((run_dir(run_id) / "model" / "index.json").read_text())
    assert meta["kind"] == "sequential" and len(meta["items"]) == 30


def test_serving_latency_is_interactive(interactions_dataset: int) -> None:
    model = load_recommender(completed_run(interactions_dataset, "bpr"))
    timings = []
    for user in model.users[:20]:
        start = time.perf_counter()
        model.recommend(user, k=10)
        timings.append(time.perf_counter() - start)
    assert float(np.percentile(timings, 95)) < 0.5  # generous: the shared CI box; bench checks 50 ms


# --- CLI ----------------------------------------------------------------------------------

def test_cli_recommend_for_user_and_likes(interactions_dataset: int, capsys: pytest.CaptureFixture) -> None:
    from core.cli import main

    run_id = completed_run(interactions_dataset, "itemknn")
    assert main(["recommend", "--run", str(run_id), "--user", "u1", "-k", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["user"] == "u1" and len(out["recommendations"]) == 3
    first = out["recommendations"][0]
    assert {"rank", "item", "title", "score", "because_of", "because_of_title"} <= set(first)
    assert first["title"].startswith("Space")
    assert main(["recommend", "--run", str(run_id), "--like", "i2", "--like", "i4", "--json"]) == 0
    likes = json.loads(capsys.readouterr().out)
    assert len(likes["recommendations"]) == 10 and likes["likes"] == ["i2", "i4"]
    assert main(["recommend", "--run", str(run_id), "--user", "u1"]) == 0
    assert "because of" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "message"), [
    (["--user", "u1", "--like", "i1"], "either --user"),
    (["--user", "ghost"], "not in this model"),
    (["--like", "nothing"], "none of the liked items"),
])
def test_cli_recommend_errors_are_one_line(interactions_dataset: int, capsys: pytest.CaptureFixture,
                                           argv: list[str], message: str) -> None:
    from core.cli import main

    run_id = completed_run(interactions_dataset, "popularity")
    assert main(["recommend", "--run", str(run_id), *argv]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_cli_recommend_refuses_unknown_run(capsys: pytest.CaptureFixture) -> None:
    from core.cli import main

    assert main(["recommend", "--run", "999", "--user", "u1"]) == 1
    assert "no run with id 999" in capsys.readouterr().err


def test_registry_builds_recommender_configs() -> None:
    from core.runs.registry import get_kind

    kind = get_kind("bpr")
    config = kind.make_config({"epochs": 2, "k": 20})
    assert kind.task == TaskKind.INTERACTIONS and config["k"] == 20 and config["epochs"] == 2
    with pytest.raises(RecommenderError):
        get_kind("popularity").make_config({"max_length": 12})


def test_frame_with_integer_ids_is_read_as_strings() -> None:
    frame = pd.DataFrame({"user": [1, 1, 2, 2, 3], "item": [10, 11, 10, 12, 11]})
    data = index_train(frame.astype(str), None, with_catalogue=False)
    assert data.user_ids == ["1", "2", "3"] and data.matrix.sum() == 5


# --- charts -------------------------------------------------------------------------------

def test_metric_vs_k_and_comparison_charts() -> None:
    from core.charts.recommendations import compare_at_k, metric_vs_k, recommendation_scores

    runs = {"bpr": {"by_k": {"1": {"ndcg": 0.5}, "10": {"ndcg": 0.4}, "5": {"ndcg": 0.45}}},
            "pop": {"by_k": {"10": {"ndcg": 0.2, "precision": 0.1}}}}
    fig = metric_vs_k(runs, "ndcg")
    assert [t.name for t in fig.data] == ["bpr", "pop"]
    assert list(fig.data[0].x) == [1, 5, 10] and list(fig.data[0].y) == [0.5, 0.45, 0.4]
    bars = compare_at_k(runs, k=5)
    assert [t.name for t in bars.data] == ["bpr"]  # pop has no K = 5
    scores = recommendation_scores([("Star Wars", 0.9), ("Alien", 0.5)])
    assert list(scores.data[0].y) == ["Alien", "Star Wars"]  # best drawn on top


def test_every_run_stores_a_popularity_baseline_on_its_own_split(interactions_dataset: int) -> None:
    from core.evaluation.comparison import ranking_baseline_table

    ease = completed_run(interactions_dataset, "ease")
    popularity = completed_run(interactions_dataset, "popularity")
    with session_scope() as s:
        run, pop = run_queries.get_run(s, ease), run_queries.get_run(s, popularity)
        table = ranking_baseline_table(run)
        # same split, same seed: the stored baseline is exactly what a popularity run scores
        assert run.metrics["baseline"]["by_k"]["10"] == pop.metrics["by_k"]["10"]
    assert list(table["metric"])[:2] == ["ndcg@10", "precision@10"]
    assert table["popularity baseline"].notna().all() and table["this run"].notna().all()
