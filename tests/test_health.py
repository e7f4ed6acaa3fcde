"""Data health audit: flipped labels are found (cross-validated and from a run), near-duplicates and leakage,
oddities, the zero-label baseline, the audit never changes its input, the worker job and the CLI."""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np
import pandas as pd
import pytest

from core.cli import main
from core.health.audit import AuditConfig, AuditError, oddities, run_audit, small_classes
from core.health.duplicates import find_duplicates, normalise_text, similar_pairs
from core.health.zero_label import label_prompts, zero_label_proba
from db import read_scope, session_scope
from db.enums import TaskKind
from tests.conftest import sklearn_predictions, store_completed_run

TOPICS = {
    "sport": ["goal", "match", "team", "score", "league", "coach",
             "win", "player", "ball", "stadium", "referee", "season"],
    "tech": ["software", "chip", "laptop", "code", "cloud", "phone",
             "app", "server", "data", "robot", "battery", "screen"],
    "food": ["pizza", "pasta", "salad", "bread", "cheese", "soup",
             "recipe", "chef", "spicy", "dessert", "garlic", "sauce"],
}
COMMON = ["the", "a", "today", "really", "very", "new", "my", "our", "this", "was"]


def topics_frame(n: int = 360, n_flips: int = 18, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, pd.Series]:
    """Three clearly separable topics with `n_flips` labels flipped at known rows; (frame, flipped rows, truth)."""
    rng = np.random.default_rng(seed)
    names = list(TOPICS)
    labels = [names[i % 3] for i in range(n)]
    texts = []
    for label in labels:
        words = list(rng.choice(TOPICS[label], 5, replace=False)) + list(rng.choice(COMMON, 3, replace=False))
        rng.shuffle(words)
        texts.append(" ".join(words))
    split = np.where(np.arange(n) % 10 < 8, "train", np.where(np.arange(n) % 10 == 8, "validation", "test"))
    frame = pd.DataFrame({"text": texts, "label": labels, "split": split})
    truth = frame["label"].copy()
    flips = np.sort(rng.choice(n, n_flips, replace=False))
    for row in flips:
        frame.loc[row, "label"] = names[(names.index(frame.loc[row, "label"]) + 1) % 3]
    return frame, flips, truth


def store(frame: pd.DataFrame, name: str = "topics") -> int:
    from core.data.storage import write_dataset

    with session_scope() as s:
        return write_dataset(s, name=name, task=TaskKind.CLASSIFICATION, frame=frame,
                             mapping={"text": "text", "label": "label"}).id


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


FAST = AuditConfig(embeddings=False)


def test_cross_validated_audit_finds_the_flipped_rows_and_suggests_their_true_label() -> None:
    frame, flips, truth = topics_frame()
    result = run_audit(frame, FAST)
    issues = result.label_issues
    likely = set(issues.loc[issues["likely"], "row"])
    recall = len(likely & set(flips)) / len(flips)
    precision = len(likely & set(flips)) / max(len(likely), 1)
    assert recall >= 0.85 and precision >= 0.9, (recall, precision)
    found = set(issues["row"])  # likely and possible
    assert len(found & set(flips)) / max(len(found), 1) >= 0.8
    hits = issues[issues["row"].isin(flips)]
    assert (hits["suggested"] == truth[hits["row"]].to_numpy()).mean() >= 0.9
    assert (hits["label"] != hits["suggested"]).all()
    assert issues["score"].is_monotonic_decreasing
    assert issues["likely"].is_monotonic_decreasing  # the likely ones first: the list reads from the top
    assert result.summary["label_issues"] == len(likely)
    assert result.summary["possible_label_issues"] == len(found) - len(likely)
    assert result.summary["rows_checked_for_label_issues"] == 360


def test_certainty_is_calibrated_so_a_small_dataset_still_has_likely_errors() -> None:
    # 360 rows: the logistic regressions are timid (a flipped row's own label keeps 0.05-0.12 before
    # calibration, so at 95 % only 6 of 17 flips counted as likely); the temperature fitted on the given
    # labels puts "95 % sure" on the scale the labels show.
    from core.health.audit import cv_probabilities, temperature_calibrated

    frame, flips, _ = topics_frame()
    proba, names, rows = cv_probabilities(frame["text"].tolist(), frame["label"].to_numpy(), FAST)
    y = np.searchsorted(names, frame["label"].to_numpy()[rows])
    calibrated = temperature_calibrated(proba, y)
    assert (calibrated.argmax(axis=1) == proba.argmax(axis=1)).all()  # order and suggestion unchanged
    own_before, own_after = proba[np.arange(len(y)), y], calibrated[np.arange(len(y)), y]
    assert (own_after[flips] < own_before[flips]).all()  # sharper: these labels were timidly doubted
    assert (own_after[flips] < 0.05).mean() >= 0.85 > 0.5 > (own_before[flips] < 0.05).mean()
    assert len(run_audit(frame, AuditConfig(embeddings=False, certainty=0.99)).label_issues.query("likely")) <= \
        run_audit(frame, FAST).summary["label_issues"]


def test_clean_labels_give_few_issues() -> None:
    frame, _, _ = topics_frame(n_flips=0)
    assert run_audit(frame, FAST).summary["label_issues"] <= 3


def test_the_audit_never_changes_the_dataset_it_reads(tmp_path) -> None:  # noqa: ANN001
    from core.data.storage import DATA_FILE
    from core.health.jobs import audit_dataset
    from core.settings import dataset_dir
    from db.datasets import get_dataset

    frame, _, _ = topics_frame()
    frame.loc[3, "text"] = frame.loc[2, "text"]  # a duplicate, so every finder has something to report
    before = frame.copy(deep=True)
    run_audit(frame, FAST)
    pd.testing.assert_frame_equal(frame, before)
    dataset_id = store(frame)
    path = dataset_dir(dataset_id) / DATA_FILE
    digest, mtime = hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns
    with read_scope() as s:
        row = get_dataset(s, dataset_id)
        fields = (row.content_hash, row.row_count, dict(row.split_counts), dict(row.stats), dict(row.changes))
    result = audit_dataset(dataset_id, FAST)
    assert result.summary["label_issues"] > 0 and result.summary["near_duplicates"] >= 1
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest and path.stat().st_mtime_ns == mtime
    with read_scope() as s:
        row = get_dataset(s, dataset_id)
        assert (row.content_hash, row.row_count, dict(row.split_counts), dict(row.stats), dict(row.changes)) == fields


def test_normalised_duplicates_and_leakage_across_splits() -> None:
    texts = ["Great product!!", "great   product http://x.co/1", "something else entirely", "@bob GREAT product",
             "other text here", "!!!"]
    splits = ["train", "test", "train", "validation", "test", "test"]
    dups = find_duplicates(texts, splits)
    assert normalise_text(texts[1]) == "great product"
    assert sorted(dups["row"]) == [1, 3] and set(dups["duplicate_of"]) == {0}
    assert dups["leak"].all()  # both copies sit in another split than the training row kept
    assert find_duplicates(["same", "same"], ["train", "train"])["leak"].tolist() == [False]


def test_block_search_finds_the_same_pairs_as_the_full_matrix() -> None:
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(50, 8)).astype(np.float32)
    emb[7] = emb[3] + 0.01
    emb[40] = emb[3] - 0.01
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    full = {tuple(p) for p in similar_pairs(emb, 0.99, block_rows=1000)}
    assert {(3, 7), (3, 40), (7, 40)} <= full
    assert {tuple(p) for p in similar_pairs(emb, 0.99, block_rows=3)} == full


def test_minilm_near_duplicates_and_zero_label_baseline() -> None:
    texts = ["The battery of this phone lasts all day", "the battery on this phone lasts the whole day",
             "I cooked a spicy pasta with garlic for dinner", "The referee gave a penalty in the last minute",
             "Our team won the league match last night", "This laptop has a fast chip and a bright screen"]
    frame = pd.DataFrame({"text": texts, "label": ["tech", "tech", "food", "sport", "sport", "tech"],
                          "split": ["train", "test", "train", "train", "test", "test"]})
    result = run_audit(frame, AuditConfig(similarity=0.85))
    dup = result.duplicates
    assert dup["row"].tolist() == [1] and dup["duplicate_of"].tolist() == [0] and dup["leak"].tolist() == [True]
    assert result.summary["leakage"] == 1 and 0.85 <= dup["similarity"].iloc[0] < 1.0
    zero = result.zero_label
    assert zero["prompts"] == {"food": "food", "sport": "sport", "tech": "tech"}
    assert zero["reports"]["test"]["accuracy"] >= 2 / 3  # label names alone place these test texts


def test_zero_label_prompts_and_probabilities() -> None:
    assert label_prompts(["pos", "neg"], {"neg": " an unhappy customer "}) == ["pos", "an unhappy customer"]
    texts = np.asarray([[1.0, 0.0], [0.6, 0.8]])
    proba = zero_label_proba(texts, np.asarray([[1.0, 0.0], [0.0, 1.0]]))
    assert proba.argmax(axis=1).tolist() == [0, 1] and np.allclose(proba.sum(axis=1), 1.0)


def test_oddities_and_small_classes() -> None:
    texts = ["a perfectly normal text"] * 20 + ["!!! http://t.co/x @someone", "x" * 5000,
                                                "Это совсем другой язык"]
    odd = oddities(texts)
    assert dict(zip(odd["row"], odd["kind"], strict=True)) == {20: "empty", 21: "long", 22: "other_script"}
    labels = np.asarray(["a"] * 10 + ["b"] * 3 + ["c"] * 8)
    splits = np.asarray(["train"] * 8 + ["validation", "test"] + ["train"] * 3 + ["train"] * 7 + ["validation"])
    small = {c["label"]: c["reason"] for c in small_classes(labels, splits)}
    assert small == {"b": "only 3 training rows; no validation rows; no test rows", "c": "no test rows"}


def test_audit_from_a_completed_runs_held_out_probabilities() -> None:
    frame, _, truth = topics_frame(n=600, n_flips=0, seed=1)
    held = np.flatnonzero(frame["split"] != "train")
    flips = held[::8][:10]
    names = list(TOPICS)
    for row in flips:
        frame.loc[row, "label"] = names[(names.index(truth[row]) + 1) % 3]
    dataset_id = store(frame)
    labels, preds = sklearn_predictions(dataset_id)
    run_id = store_completed_run(dataset_id, labels, preds)
    from core.health.jobs import audit_dataset

    result = audit_dataset(dataset_id, AuditConfig(source=f"run:{run_id}", embeddings=False))
    found = set(result.label_issues["row"])
    assert found <= set(held)  # only held-out rows have out-of-sample probabilities
    assert len(found & set(flips)) >= 8 and len(found - set(flips)) <= 3
    assert result.summary["rows_checked_for_label_issues"] == len(held)
    other = store(frame.assign(text=frame["text"] + " copy"), name="other")
    with pytest.raises(AuditError, match="trained on another dataset"):
        audit_dataset(other, AuditConfig(source=f"run:{run_id}", embeddings=False))
    with pytest.raises(AuditError, match="use cv or run:ID"):
        AuditConfig(source="runs:1")


def test_audit_runs_as_a_background_job_that_model_lists_skip() -> None:
    from core.health.jobs import start_audit
    from core.runs import registry
    from db import audits as audit_queries
    from db import runs as run_queries
    from db.enums import RunStatus

    frame, flips, _ = topics_frame()
    dataset_id = store(frame)
    with session_scope() as s:
        run_id = start_audit(s, dataset_id, {"embeddings": False})
    deadline = time.time() + 120
    while time.time() < deadline:
        with read_scope() as s:
            run = run_queries.get_run(s, run_id)
            if not run.status.is_active:
                break
        time.sleep(0.5)
    with read_scope() as s:
        run = run_queries.get_run(s, run_id)
        assert run.status == RunStatus.COMPLETED, run.error
        audit = audit_queries.latest_audit(s, dataset_id)
        assert audit.run_id == run_id and audit.summary == run.metrics
        assert len({i["row"] for i in audit.findings["label_issues"]} & set(flips.tolist())) >= 16
        assert run_queries.run_records(s, ["macro_f1"]) == []
        assert [r.id for r in run_queries.list_runs(s)] == [run_id]
        assert run_queries.list_runs(s, models_only=True) == []
    assert "data_audit" not in registry.kind_names() and registry.get_kind("data_audit").is_job
    with session_scope() as s, pytest.raises(AuditError, match="do not apply"):
        start_audit(s, dataset_id, {"epochs": 3})


def test_cli_audit_json_then_version_with_suggestions_and_without_duplicates(
        capsys: pytest.CaptureFixture[str]) -> None:
    frame, flips, truth = topics_frame()
    frame.loc[5, "text"] = frame.loc[2, "text"].upper() + " !!"  # row 2 (train) and row 5 (train): one duplicate
    frame.loc[5, "label"] = frame.loc[2, "label"]
    dataset_id = store(frame)
    code, _, err = cli(capsys, "datasets", "version", "topics", "--relabel-suggested", "-o", "x")
    assert code != 0 and "has not been audited yet" in err and len(err.strip().splitlines()) == 1
    code, out, err = cli(capsys, "datasets", "audit", "topics", "--no-embeddings", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["label_issues"] == len(report["rows"]) >= 15
    assert set(report["rows"][0]) == {"row", "split", "text", "label", "suggested", "score"}
    assert report["possible_rows"] == [] and report["certainty"] == 0.95
    code, out, err = cli(capsys, "datasets", "audit", "topics", "--no-embeddings", "--all", "--certainty", "0.97",
                         "--json")
    strict = json.loads(out)
    assert code == 0 and 1 <= strict["label_issues"] == len(strict["rows"]) < report["label_issues"]
    assert len(strict["possible_rows"]) == strict["possible_label_issues"] >= 1
    assert min(r["score"] for r in strict["rows"]) >= max(r["score"] for r in strict["possible_rows"])
    assert report["near_duplicates"] == 1 and report["leakage"] == 0
    assert len({r["row"] for r in report["rows"]} & set(flips.tolist())) >= len(flips) - 3
    code, _, err = cli(capsys, "datasets", "version", "topics", "-o", "x")
    assert code != 0 and "--relabel-suggested" in err
    code, out, err = cli(capsys, "datasets", "version", "topics", "--relabel-suggested", "--exclude-duplicates",
                         "-o", "topics-clean", "--json")
    assert code == 0, err
    made = json.loads(out)
    assert made["name"] == "topics-clean" and made["excluded"] == 1 and made["rows"] == len(frame) - 1
    from core.data.storage import load_frame
    from db.datasets import get_dataset

    with read_scope() as s:
        clean = load_frame(get_dataset(s, made["id"]))
        parent = load_frame(get_dataset(s, dataset_id))
    pd.testing.assert_frame_equal(parent.drop(columns="row_id"), frame)  # the parent is untouched
    kept = truth.drop(index=5).reset_index(drop=True)
    assert (clean["label"] == kept).mean() > (frame["label"].drop(index=5).reset_index(drop=True) == kept).mean()
    assert (clean["text"] == frame.loc[2, "text"]).sum() == 1
    code, _, err = cli(capsys, "datasets", "version", "topics", "--relabel-suggested", "-o", "topics-clean")
    assert code != 0 and "already exists" in err
    code, _, err = cli(capsys, "datasets", "audit", "topics", "--source", "run:99")
    assert code != 0 and "no run with id 99" in err


def test_automatic_relabelling_takes_the_likely_label_errors_only() -> None:
    from types import SimpleNamespace

    from core.health.jobs import automatic_changes

    issue = {"split": "train", "text": "t", "label": "a", "suggested": "b", "score": 0.5}
    audit = SimpleNamespace(summary={"source": "cv", "embeddings": True}, findings={"label_issues": [
        {**issue, "row": 1, "likely": True}, {**issue, "row": 2, "likely": False}, {**issue, "row": 3}],
        "duplicates": []})
    changes = automatic_changes(audit, relabel_suggested=True, exclude_duplicates=False, min_score=0.0)
    assert [(c["row"], c["action"], c["to"]) for c in changes] == [(1, "relabel", "b"), (3, "relabel", "b")]
    changes = automatic_changes(audit, relabel_suggested=True, exclude_duplicates=False, exclude_possible=True,
                                min_score=0.0)
    assert [(c["row"], c["action"]) for c in changes] == [(2, "exclude"), (1, "relabel"), (3, "relabel")]
    # By default only the flags from the score measured at 70 % precision on real tweets up are relabelled.
    assert automatic_changes(audit, relabel_suggested=True, exclude_duplicates=False) == []


def test_row_level_changes_leave_other_copies_alone() -> None:
    from core.data.storage import load_frame
    from core.data.versions import create_dataset_version
    from core.health.jobs import marks_to_changes
    from db.datasets import get_dataset

    frame = pd.DataFrame({"text": ["same", "same", "other", "more", "again", "and"],
                          "label": ["a", "a", "b", "a", "b", "b"],
                          "split": ["train", "train", "train", "test", "validation", "train"]})
    dataset_id = store(frame, name="copies")
    marks = pd.DataFrame({"row": [1, 2, 3], "split": ["train", "train", "test"], "text": ["same", "other", "more"],
                          "label": ["a", "b", "a"], "suggested": ["b", "a", "b"], "score": [0.9, 0.8, 0.7],
                          "exclude": [True, False, False], "relabel_to": [None, "a", None]})
    changes = marks_to_changes(marks)
    assert [c["action"] for c in changes] == ["exclude", "relabel"]
    with session_scope() as s:
        version_id = create_dataset_version(s, dataset_id, changes).id
    with read_scope() as s:
        out = load_frame(get_dataset(s, version_id))
    assert out["text"].tolist() == ["same", "other", "more", "again", "and"]
    assert out["label"].tolist() == ["a", "a", "a", "b", "b"]


def test_audit_counts_chart_shows_every_kind_of_finding() -> None:
    from core.charts.health import FINDINGS, audit_counts

    fig = audit_counts({"rows": 200, "label_issues": 12, "possible_label_issues": 30, "leakage": 3,
                        "small_classes": 1})
    bar = fig.data[0]
    assert list(bar.y) == list(FINDINGS.values()) and list(bar.x) == [12, 30, 0, 3, 0, 0, 0, 0, 1]
    assert bar.marker.color[0] != bar.marker.color[1]  # likely errors stand out from possible ones
    assert bar.customdata[0] == "6.0% of rows" and bar.customdata[-1] == "classes"
    assert "200 rows" in fig.layout.title.text
