"""`protolab export --format onnx|onnx-int8` of multi-label runs: the graph's sigmoid probabilities against PyTorch's
(fp32 tight, int8 looser), the tag sets after the run's thresholds, the thresholds in protolab.json and the model
card, `serve --runtime onnx` answering tag sets, the TF-IDF baseline's pipeline as skops, and the refusals of kinds
that cannot export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from core.api.app import create_app
from core.api.served import ServedModels
from core.export.card import CardFacts, CardWords, TagThresholds, model_card
from core.export.exporting import ExportError, check_format
from db.enums import TaskKind
from tests.test_multilabel_runs import WORDS, cli, write_tickets

TEXTS = ["refund the charge, it crashed", "love it, thanks", "the app", "invoice error broken great", "ok"]


def _train(capsys: pytest.CaptureFixture[str], tmp_path: Path, model: str,
           encoder: Path | None) -> tuple[int, dict]:
    csv = write_tickets(tmp_path / "tickets.csv", n=60)
    assert cli(capsys, "datasets", "add", str(csv), "--task", "multilabel", "--json")[0] == 0
    flags = [] if model == "tfidf" else ["--model-id", str(encoder), "--epochs", "1", "--max-length", "16"]
    code, out, err = cli(capsys, "train", "--dataset", "tickets", "--model", model, *flags, "--wait", "--json")
    summary = json.loads(out)
    assert code == 0 and summary["status"] == "completed", (summary, err)
    return summary["run_id"], summary["metrics"]


def _graph_proba(folder: Path, texts: list[str]) -> np.ndarray:
    """What a program outside Protolab computes from the folder: the tokenizer, onnxruntime and a sigmoid."""
    import onnxruntime as ort
    from transformers import AutoTokenizer

    info = json.loads((folder / "protolab.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    rows = []
    for text in texts:  # one at a time: no padding to account for
        enc = tokenizer([text], truncation=True, max_length=info["max_length"], return_tensors="np")
        logits = session.run(["logits"], {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask")})[0]
        rows.append(1 / (1 + np.exp(-logits[0].astype(np.float64))))
    return np.array(rows)


@pytest.mark.parametrize("model", ["transformer", "lstm"])
def test_a_multilabel_run_exports_its_graph_and_thresholds(model: str, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           tiny_text_encoder: Path) -> None:
    monkeypatch.setenv("PROTOLAB_INFERENCE_PRECISION", "fp32")  # the reference: PyTorch in fp32
    run_id, metrics = _train(capsys, tmp_path, model, tiny_text_encoder)
    out = tmp_path / "onnx"
    code, stdout, err = cli(capsys, "export", "--run", str(run_id), "--format", "onnx", "-o", str(out), "--json")
    assert code == 0, err
    result = json.loads(stdout)
    assert {"model.onnx", "labels.json", "README.md", "protolab.json"} <= set(result["files"])
    assert result["onnx_max_probability_difference"] <= 1e-3
    info = json.loads((out / "protolab.json").read_text())
    tags = sorted(WORDS)
    assert info["labels"] == tags == json.loads((out / "labels.json").read_text())
    assert info["activation"] == "sigmoid" and info["max_length"] == 16 and info["threshold_use"] == "per_tag"
    assert info["thresholds"] == metrics["thresholds"] == info["per_tag_thresholds"]
    assert info["global_threshold"] == metrics["global_threshold"]
    assert info["parity"]["same_tag_sets"] == info["parity"]["texts"]

    # PyTorch's answers (`protolab predict`) against the graph's, read as the card says.
    code, stdout, err = cli(capsys, "predict", "--run", str(run_id), *TEXTS, "--json")
    assert code == 0, err
    answers = json.loads(stdout)
    expected = np.array([[a["probabilities"][t] for t in tags] for a in answers])
    got = _graph_proba(out, TEXTS)
    assert np.abs(got - expected).max() <= 1e-4
    cuts = np.array([info["thresholds"][t] for t in tags])
    assert [[t for t, on in zip(tags, row >= cuts, strict=True) if on] for row in got] == \
        [a["labels"] for a in answers]

    card = (out / "README.md").read_text()
    assert "## Decision thresholds" in card and "sigmoid" in card and "several tags or none" in card
    for tag in tags:
        assert f"| {tag} | {metrics['thresholds'][tag]:.2f} |" in card
    assert "| micro f1 |" in card and "most frequent tags" in card and "| subset accuracy |" in card


def test_int8_export_and_onnx_serving_of_a_multilabel_run(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          tiny_text_encoder: Path) -> None:
    import onnx

    monkeypatch.setenv("PROTOLAB_INFERENCE_PRECISION", "fp32")
    run_id, metrics = _train(capsys, tmp_path, "transformer", tiny_text_encoder)
    out = tmp_path / "int8"
    code, _, err = cli(capsys, "export", "--run", str(run_id), "--format", "onnx-int8", "-o", str(out))
    assert code == 0, err
    info = json.loads((out / "protolab.json").read_text())
    assert info["precision"] == "int8" and info["thresholds"] == metrics["thresholds"]
    assert info["parity"]["int8_same_tag_sets"] >= info["parity"]["texts"] / 2 and "int8_max_abs_diff" in info["parity"]
    ops = {n.op_type for n in onnx.load(str(out / "model.onnx")).graph.node}
    assert ops & {"DynamicQuantizeLinear", "MatMulInteger"}  # really quantised
    answers = json.loads(cli(capsys, "predict", "--run", str(run_id), *TEXTS, "--json")[1])
    expected = np.array([[a["probabilities"][t] for t in sorted(WORDS)] for a in answers])
    assert np.abs(_graph_proba(out, TEXTS) - expected).max() <= 0.05  # int8 rounds the weights
    assert "int8 quantisation can change" in (out / "README.md").read_text()

    # `serve --runtime onnx`: the run's graph answers the tag endpoint with the PyTorch tagger's tag sets.
    models = ServedModels([run_id], runtime="onnx")
    models.load()
    client = TestClient(create_app(models, require_key=False))
    assert client.get("/v1/runs").json()["runs"][0]["runtime"] == "onnx"
    served = client.post(f"/v1/runs/{run_id}/tag", json={"texts": TEXTS}).json()["results"]
    assert [r["labels"] for r in served] == [a["labels"] for a in answers]
    assert all(r["thresholds"] == metrics["thresholds"] for r in served)
    got = np.array([[r["probabilities"][t] for t in sorted(WORDS)] for r in served])
    assert np.abs(got - expected).max() <= 1e-4


def test_a_multilabel_tfidf_run_exports_its_pipeline_and_thresholds_as_skops(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import skops.io as sio

    run_id, metrics = _train(capsys, tmp_path, "tfidf", None)
    code, _, err = cli(capsys, "export", "--run", str(run_id), "--format", "onnx", "-o", str(tmp_path / "x"))
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "cannot be exported as onnx (it is a scikit-learn model, not a neural network); use --format skops" in err
    assert not (tmp_path / "x").exists()

    out = tmp_path / "skops"
    code, stdout, err = cli(capsys, "export", "--run", str(run_id), "--format", "skops", "-o", str(out), "--json")
    assert code == 0, err
    assert {"model.skops", "labels.json", "README.md", "protolab.json"} <= set(json.loads(stdout)["files"])
    info = json.loads((out / "protolab.json").read_text())
    tags = sorted(WORDS)
    assert info["labels"] == tags == json.loads((out / "labels.json").read_text())
    assert info["thresholds"] == metrics["thresholds"] and info["threshold_use"] == "per_tag"
    # Loaded as the card says (skops with its trusted types only), decided by its thresholds: `protolab predict`'s
    # probabilities and tag sets.
    pipeline = sio.load(out / "model.skops", trusted=info["trusted_types"])
    got = pipeline.predict_proba(TEXTS)
    answers = json.loads(cli(capsys, "predict", "--run", str(run_id), *TEXTS, "--json")[1])
    expected = np.array([[a["probabilities"][t] for t in tags] for a in answers])  # JSON rounds to 6 places
    assert np.abs(got - expected).max() <= 1e-6
    assert [[t for t, p in zip(tags, row, strict=True) if p >= info["thresholds"][t]] for row in got] == \
        [a["labels"] for a in answers]
    card = (out / "README.md").read_text()
    assert "## Decision thresholds" in card and "sio.load(\"model.skops\", trusted=trusted)" in card
    assert "| tag | precision | recall | F1 | support |" in card and "Tags: " in card and "Classes:" not in card


def test_multilabel_kinds_that_cannot_export_say_which_can() -> None:
    with pytest.raises(ExportError, match="setfit runs on texts with tag sets cannot be exported"):
        check_format("setfit", "onnx", TaskKind.MULTILABEL)
    with pytest.raises(ExportError, match="export their network and decision thresholds only.*use --format onnx or "
                                          "onnx-int8$"):
        check_format("transformer", "hf", TaskKind.MULTILABEL)
    with pytest.raises(ExportError, match="a scikit-learn model, not a neural network.*use --format skops$"):
        check_format("tfidf", "onnx-int8", TaskKind.MULTILABEL)
    check_format("lstm", "onnx-int8", TaskKind.MULTILABEL)
    check_format("tfidf", "skops", TaskKind.MULTILABEL)
    check_format("tfidf", "skops")  # single-label text unchanged


def test_the_card_of_a_multilabel_model_is_a_pure_function() -> None:
    facts = CardFacts(run_id=4, run_name="tickets", model_kind="lstm", model_label="LSTM", fmt="onnx",
                      labels=["billing", "bug"], dataset_name="tickets", dataset_rows=90,
                      split_counts={"train": 60}, class_counts={}, max_length=16,
                      report={"micro_f1": 0.8, "per_tag": {"bug": {"precision": 1.0, "recall": 0.5, "f1": 0.667,
                                                                   "support": 4}}},
                      words=CardWords(metrics=("micro_f1",), reference="most frequent tags"),
                      reference={"micro_f1": 0.4},
                      thresholds=TagThresholds({"billing": 0.35, "bug": 0.6}, 0.45, "global"))
    card = model_card(facts)
    assert "| micro f1 | 0.800 | – | 0.400 |" in card and "| bug | 1.000 | 0.500 | 0.667 | 4 |" in card
    assert "one global threshold, 0.45, for every tag" in card
    assert "| billing | 0.45 | 0.35 |" in card and "| bug | 0.45 | 0.60 |" in card
