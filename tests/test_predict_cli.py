"""`protolab predict`: texts and files, --json shapes, exit codes and one-line errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from core.cli import main
from core.settings import run_dir


def test_texts_json_shape(make_served_run, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = make_served_run("tfidf")
    assert main(["predict", "--run", str(run_id), "love great wonderful", "hate awful", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["label"] for r in out] == ["positive", "negative"]
    first = out[0]
    assert set(first) == {"text", "label", "confidence", "probabilities", "low_confidence", "truncated"}
    assert first["text"] == "love great wonderful" and set(first["probabilities"]) == {"negative", "positive"}
    assert first["confidence"] == max(first["probabilities"].values()) and first["truncated"] is False


def test_texts_plain_output_one_line_each(make_served_run, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = make_served_run("lstm")
    assert main(["predict", "--run", str(run_id), "love great", "hate awful terrible"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["positive", "negative"]


def test_file_to_csv(make_served_run, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = make_served_run("tfidf")
    src = tmp_path / "reviews.csv"
    pd.DataFrame({"id": [1, 2, 3], "body": ["love it great", "=1+2 hate awful", ""]}).to_csv(src, index=False)
    out = tmp_path / "scored.csv"
    assert main(["predict", "--run", str(run_id), "--file", str(src), "--text-col", "body", "-o", str(out),
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == {"rows": 3, "scored": 2, "empty": 1, "truncated": 0, "text_column": "body",
                       "label_counts": {"negative": 1, "positive": 1}, "output": str(out)}
    scored = pd.read_csv(out, dtype=str, encoding="utf-8-sig")
    assert scored["predicted_label"].tolist()[:2] == ["positive", "negative"]
    assert scored["body"][1] == "'=1+2 hate awful"  # formula neutralised


@pytest.mark.parametrize(("args", "message"), [
    (["--run", "999", "hello"], "no run with id 999"),
    (["--run", "{run}", "   "], "at least one word"),
    (["--run", "{run}"], "nothing to predict"),
    (["--run", "{run}", "hi", "--file", "x.csv"], "either texts or --file"),
    (["--run", "{run}", "--file", "missing.csv", "-o", "o.csv"], "missing.csv: no such file"),
    (["--run", "{run}", "--file", "{numbers}", "-o", "o.csv"], "no column of this file holds text"),
    (["--run", "{run}", "--file", "{numbers}", "--text-col", "nope", "-o", "o.csv"], "no column"),
    (["--run", "{run}", "hi", "--text-col", "x"], "only apply with --file"),
])
def test_user_errors_are_one_line_exit_1(make_served_run, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         args: list[str], message: str) -> None:
    run_id = make_served_run("tfidf")
    numbers = tmp_path / "numbers.csv"
    numbers.write_text("a,b\n1,2\n3,4\n")
    argv = [a.format(run=run_id, numbers=numbers) for a in args]
    assert main(["predict", *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("protolab: error: ") and message in err and len(err.strip().splitlines()) == 1


def test_refuses_runs_that_cannot_serve(make_served_run, capsys: pytest.CaptureFixture[str]) -> None:
    from db import session_scope
    from db.enums import RunStatus
    from db.models import Run

    run_id = make_served_run("tfidf")
    shutil.rmtree(run_dir(run_id))
    assert main(["predict", "--run", str(run_id), "hello"]) == 1
    assert f"run {run_id} has no model files" in capsys.readouterr().err
    other = make_served_run("tfidf")
    with session_scope() as s:
        s.get(Run, other).status = RunStatus.FAILED
    assert main(["predict", "--run", str(other), "hello"]) == 1
    assert "is failed; only completed runs" in capsys.readouterr().err


def test_real_program_exit_codes(make_served_run) -> None:
    run_id = make_served_run("tfidf")
    cmd = [sys.executable, "-m", "core.cli", "predict", "--run", str(run_id)]
    ok = subprocess.run([*cmd, "love it", "--json"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)[0]["label"] in {"positive", "negative"}
    bad = subprocess.run([*cmd, ""], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    usage = subprocess.run([sys.executable, "-m", "core.cli", "predict", "hello"], capture_output=True, text=True,
                           timeout=120)
    assert usage.returncode == 2 and "--run" in usage.stderr
