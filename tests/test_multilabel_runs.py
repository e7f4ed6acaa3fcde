"""Multi-label end to end: `protolab datasets add --task multilabel`, `protolab train --model NAME --wait --json`
with the text kinds' own names, `protolab predict --json` (labels, probabilities, thresholds), the API's tag
endpoint, and the Datasets/Train/Evaluate pages through AppTest."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from streamlit.testing.v1 import AppTest

from core.api.app import create_app
from core.api.served import ServedModels
from core.cli import main
from core.runs import registry
from core.runs.files import RunFiles
from db.enums import TaskKind
from tests.helpers import form_key

WORDS = {"billing": ["invoice", "charge", "refund"], "bug": ["crash", "error", "broken"],
         "praise": ["love", "great", "thanks"]}


def write_tickets(path: Path, n: int = 90, seed: int = 0) -> Path:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        tags = [] if i % 9 == 0 else rng.sample(list(WORDS), rng.choice([1, 1, 2]))
        words = [rng.choice(WORDS[t]) for t in tags for _ in range(2)] + ["the", "app", f"n{i}"]
        rows.append({"body": " ".join(words), "tags": " | ".join(tags)})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_text_kinds_train_tag_sets_under_their_own_names() -> None:
    names = registry.kind_names(TaskKind.MULTILABEL)
    assert names == ("transformer", "lstm", "tfidf", "setfit")
    assert registry.baseline_kind(TaskKind.MULTILABEL).execute.endswith("execute_tfidf")
    assert registry.get_kind("tfidf").execute.endswith("execute_tfidf_run")  # single-label text unchanged


def test_upload_train_predict_and_serve(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = write_tickets(tmp_path / "tickets.csv")
    code, out, err = cli(capsys, "datasets", "add", str(csv), "--task", "multilabel", "--text-col", "body",
                         "--labels-col", "tags", "--json")
    assert code == 0, err
    added = json.loads(out)
    assert added["task"] == "multilabel" and added["mapping"]["tags"]["delimiter"] == "|"
    code, out, err = cli(capsys, "train", "--dataset", "tickets", "--model", "tfidf", "--wait", "--json")
    summary = json.loads(out)
    assert code == 0 and summary["status"] == "completed", (summary, err)
    assert summary["task"] == "multilabel" and summary["headline"]["metric"] == "micro-F1"
    metrics, run_id = summary["metrics"], summary["run_id"]
    assert metrics["micro_f1"] > metrics["baselines"]["most_frequent"]["micro_f1"]
    assert set(metrics["thresholds"]) == set(WORDS)
    stored = json.loads((RunFiles.of(run_id).model / "thresholds.json").read_text())
    assert stored["per_tag"] == [metrics["thresholds"][t] for t in stored["tags"]]

    code, out, err = cli(capsys, "predict", "--run", str(run_id), "refund the charge, it crashed", "hello", "--json")
    assert code == 0, err
    answers = json.loads(out)
    assert [set(a) >= {"labels", "probabilities", "thresholds"} for a in answers] == [True, True]
    assert set(answers[0]["probabilities"]) == set(WORDS) and answers[0]["thresholds"] == metrics["thresholds"]
    for answer in answers:  # the tags are exactly those at or above their run's threshold
        assert answer["labels"] == [t for t in sorted(WORDS) if answer["probabilities"][t] >= answer["thresholds"][t]]
    assert "billing" in answers[0]["labels"]

    models = ServedModels([run_id])
    models.load()
    client = TestClient(create_app(models, require_key=False))
    listed = client.get("/v1/runs").json()["runs"][0]
    assert listed["endpoint"] == f"/v1/runs/{run_id}/tag"
    served = client.post(f"/v1/runs/{run_id}/tag", json={"texts": ["refund the charge, it crashed"]}).json()
    assert served["results"][0]["labels"] == answers[0]["labels"]

    at = AppTest.from_file("../pages/evaluate.py", default_timeout=60).run()
    assert not at.exception, at.exception
    assert [m.label for m in at.metric][:3] == ["micro-F1", "macro-F1", "samples-F1"]
    at.selectbox(key="ml_error_tag").set_value("bug").run()
    assert not at.exception
    at = AppTest.from_file("../pages/train.py", default_timeout=60).run()
    assert not at.exception and "Test micro-F1" in [m.label for m in at.metric]

    # The tagging demo: chips with probabilities and thresholds, and a file scored with a column per tag.
    at = AppTest.from_file("../pages/tagging.py", default_timeout=60).run()
    assert not at.exception, at.exception
    at.text_area(key="tag_text").set_value("refund the charge, it crashed").run()
    assert not at.exception, at.exception
    chips = " ".join(m.value for m in at.markdown)
    assert all(f"{t} " in chips for t in answers[0]["labels"]) and f"≥ {metrics['thresholds']['billing']:.2f}" in chips
    at.file_uploader(key="tag_upload").set_value(("x.csv", csv.read_bytes(), "text/csv")).run()
    assert not at.exception, at.exception
    scored = next(d.value for d in at.dataframe if "tags" in d.value.columns)
    assert {"tags", *(f"p_{t}" for t in WORDS)} <= set(scored.columns)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["lstm", "transformer", "setfit"])
def test_each_neural_kind_trains_a_sigmoid_head(model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               tiny_text_encoder: Path) -> None:
    csv = write_tickets(tmp_path / "tickets.csv", n=60)
    assert cli(capsys, "datasets", "add", str(csv), "--task", "multilabel", "--json")[0] == 0
    # The tiny local encoder, not the bundled MiniLM: the head, the loss and the thresholds are what is tested here.
    flags = ["--model-id", str(tiny_text_encoder),
             *(["--max-pairs", "32"] if model == "setfit" else ["--epochs", "1", "--max-length", "16"])]
    code, out, err = cli(capsys, "train", "--dataset", "tickets", "--model", model, *flags, "--wait", "--json")
    summary = json.loads(out)
    assert code == 0 and summary["status"] == "completed", (summary, err)
    code, out, err = cli(capsys, "predict", "--run", str(summary["run_id"]), "refund the charge", "--json")
    answer = json.loads(out)[0]
    assert code == 0 and 0 < sum(answer["probabilities"].values()) < len(WORDS)  # sigmoids, not one softmax
    assert answer["thresholds"] == summary["metrics"]["thresholds"]


def test_the_datasets_page_guesses_a_json_lines_upload(tmp_path: Path) -> None:
    rows = [{"ticket": {"body": f"refund invoice {i}" if i % 2 else f"app crash {i}"},
             "labels": ["billing"] if i % 2 else (["bug", "billing"] if i % 3 else ["bug"])} for i in range(30)]
    data = "\n".join(json.dumps(r) for r in rows).encode()
    at = AppTest.from_file("../pages/datasets.py", default_timeout=60).run()
    at.radio(key="task").set_value("multilabel").run()
    at.file_uploader(key="upload").set_value(("tickets.jsonl", data, "application/jsonl")).run()
    assert not at.exception, at.exception
    assert at.selectbox(key=form_key(at, "map_text")).value == "ticket.body"
    assert at.radio(key=form_key(at, "tag_format")).value == "json"
    assert any("Checks passed: 30 rows" in m.value for m in at.success)
    at.button(key=form_key(at, "save")).click().run()
    assert not at.exception and any("Saved 'tickets'" in m.value for m in at.success)
    assert "Tags" in [m.label for m in at.metric]
