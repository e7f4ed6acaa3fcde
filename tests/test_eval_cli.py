"""`protolab eval` and `protolab report`: stored metrics as JSON/text, ranking runs, reports on disk, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.cli import main
from db import runs as run_queries
from db import session_scope
from db.enums import TaskKind
from tests.conftest import store_ranking_run


def run_json(capsys: pytest.CaptureFixture, *args: str) -> dict:
    assert main(list(args)) == 0
    return json.loads(capsys.readouterr().out)


def test_eval_json_matches_stored_test_report(completed_classification_run: int, capsys: pytest.CaptureFixture) -> None:
    out = run_json(capsys, "eval", str(completed_classification_run), "--json")
    with session_scope() as s:
        report = run_queries.get_run(s, completed_classification_run).metrics["reports"]["test"]
    assert out["split"] == "test" and out["labels"] == report["labels"]
    for key in ("accuracy", "macro_precision", "macro_recall", "macro_f1", "weighted_precision", "weighted_recall",
                "weighted_f1", "majority_rate"):
        assert out[key] == pytest.approx(report[key])
    assert out["confusion_matrix"] == report["confusion_matrix"]
    assert set(out["per_class"]) == set(report["labels"]) and "support" in out["per_class"]["positive"]
    assert sum(map(sum, out["confusion_matrix"])) == out["n"]


def test_eval_val_split_and_text_output(completed_classification_run: int, capsys: pytest.CaptureFixture) -> None:
    out = run_json(capsys, "eval", str(completed_classification_run), "--split", "val", "--json")
    with session_scope() as s:
        assert out["split"] == "validation"
        assert out["n"] == run_queries.get_run(s, completed_classification_run).metrics["reports"]["validation"]["n"]
    assert main(["eval", str(completed_classification_run)]) == 0
    text = capsys.readouterr().out
    assert "macro_f1" in text and "confusion matrix" in text and "positive" in text


def test_eval_ranking_run(interactions_dataset: int, capsys: pytest.CaptureFixture) -> None:
    run_id = store_ranking_run(interactions_dataset)
    out = run_json(capsys, "eval", str(run_id), "--json")
    assert out["task"] == "interactions" and out["k"] == 10
    assert set(out["metrics"]) == {"ndcg@10", "precision@10", "recall@10", "map@10", "hit_rate@10", "coverage"}
    assert list(out["by_k"]) == ["1", "5", "10", "20"]


def test_eval_errors_are_one_line(classification_dataset: int, capsys: pytest.CaptureFixture) -> None:
    assert main(["eval", "999", "--json"]) == 1
    assert capsys.readouterr().err.strip() == "protolab: error: no run with id 999"
    with session_scope() as s:
        queued = run_queries.create_run(s, dataset_id=classification_dataset, task=TaskKind.CLASSIFICATION,
                                        model_kind="tfidf", config={}).id
    assert main(["eval", str(queued)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"protolab: error: run {queued} is queued; only completed runs can be evaluated"


def test_report_command_writes_self_contained_html(completed_classification_run: int, tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.html"
    target.parent.mkdir()
    proc = subprocess.run([sys.executable, "-m", "core.cli", "report", str(completed_classification_run),
                           str(completed_classification_run), "-o", str(target)],
                          capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parent.parent)
    assert proc.returncode == 0, proc.stderr
    assert "report written" in proc.stdout
    page = target.read_text(encoding="utf-8")
    assert "Leaderboard" in page and "Plotly.newPlot" in page and "<script src" not in page


def test_report_command_unwritable_target(completed_classification_run: int, capsys: pytest.CaptureFixture,
                                         tmp_path: Path) -> None:
    assert main(["report", str(completed_classification_run), "-o", str(tmp_path / "missing" / "r.html")]) == 1
    assert capsys.readouterr().err.startswith("protolab: error: cannot write")
