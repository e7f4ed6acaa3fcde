"""`protolab export`: ONNX parity with PyTorch (fp32 ≤ 1e-3), int8 agreement, hf for pipeline(), skops, model
cards, refusals, and `serve --runtime onnx`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.cli import main
from core.export.card import CardFacts, model_card
from core.export.exporting import ExportError, check_format, export_run
from core.export.onnx import load_onnx_folder
from core.text.serving import load_classifier
from tests.conftest import sentiment_frame

TEST_TEXTS = list(sentiment_frame(n=60, seed=11).text) + ["ok", "this one is " + "much longer " * 20, "!"]
CLEAR = ["love great wonderful", "hate awful terrible", "excellent perfect amazing happy",
         "broken useless horrible worst"]


def _onnx_dims(path: Path) -> list[list[str | int]]:
    import onnx

    graph = onnx.load(str(path)).graph
    return [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input]


@pytest.mark.parametrize("family", ["transformer", "lstm"])
def test_onnx_fp32_matches_pytorch(make_served_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   family: str) -> None:
    monkeypatch.delenv("PROTOLAB_INFERENCE_PRECISION", raising=False)  # served in bf16 where the CPU has it
    run_id = make_served_run(family)
    result = export_run(run_id, "onnx", tmp_path / "out")  # still exported from the fp32 weights
    monkeypatch.setenv("PROTOLAB_INFERENCE_PRECISION", "fp32")  # the reference: the model in fp32
    assert {"model.onnx", "labels.json", "README.md", "protolab.json"} <= set(result.files)
    assert json.loads((tmp_path / "out" / "labels.json").read_text()) == ["negative", "positive"]
    # Both axes are symbolic: any batch size, any length.
    dims = _onnx_dims(tmp_path / "out" / "model.onnx")
    assert len(dims) == 2 and all(isinstance(d, str) for row in dims for d in row)
    onnx_model, torch_model = load_onnx_folder(tmp_path / "out"), load_classifier(run_id)
    for batch_size in (1, 7, 64):  # batches of one, odd sizes and every length in between
        diff = np.abs(onnx_model.predict_proba(TEST_TEXTS, batch_size) - torch_model.predict_proba(TEST_TEXTS))
        assert diff.max() <= 1e-3, (batch_size, diff.max())
    assert result.max_abs_diff is not None and result.max_abs_diff <= 1e-3
    # Logits too, tighter: an export made from bf16-rounded weights would be off by ~1e-2 here.
    import torch

    enc = torch_model.tokenizer(TEST_TEXTS[:16], padding=True, return_tensors="pt")
    with torch.inference_mode():
        expected = torch_model.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
    got = onnx_model.model.run(["logits"], {k: enc[k].numpy() for k in ("input_ids", "attention_mask")})[0]
    assert np.abs(got - expected.numpy()).max() < 1e-4


def test_int8_keeps_the_labels_of_clear_examples(make_served_run, tmp_path: Path) -> None:
    run_id = make_served_run("lstm")  # trained on the tiny sentiment data
    export_run(run_id, "onnx-int8", tmp_path / "int8")
    info = json.loads((tmp_path / "int8" / "protolab.json").read_text())
    assert info["precision"] == "int8"
    int8 = load_onnx_folder(tmp_path / "int8")
    reference = load_classifier(run_id)
    texts = CLEAR + list(sentiment_frame(n=40, seed=5).text)
    ours, theirs = [p.label for p in int8.predict(texts)], [p.label for p in reference.predict(texts)]
    assert ours[:4] == ["positive", "negative", "positive", "negative"]
    assert np.mean(np.array(ours) == np.array(theirs)) >= 0.95
    import onnx

    ops = {n.op_type for n in onnx.load(str(tmp_path / "int8" / "model.onnx")).graph.node}
    assert ops & {"DynamicQuantizeLinear", "MatMulInteger", "DynamicQuantizeLSTM"}  # really quantised


def test_hf_folder_loads_in_a_transformers_pipeline(make_served_run, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import pipeline

    monkeypatch.setenv("PROTOLAB_INFERENCE_PRECISION", "fp32")
    run_id = make_served_run("transformer")
    export_run(run_id, "hf", tmp_path / "hf")
    classify = pipeline("text-classification", model=str(tmp_path / "hf"), device="cpu")
    ours = load_classifier(run_id).predict(CLEAR)
    theirs = classify(CLEAR)
    assert [t["label"] for t in theirs] == [p.label for p in ours]
    assert [t["score"] for t in theirs] == pytest.approx([p.confidence for p in ours], abs=1e-4)


def test_tfidf_exports_its_skops_file(make_served_run, tmp_path: Path) -> None:
    import skops.io as sio

    from core.text.tfidf import TRUSTED_TYPES

    run_id = make_served_run("tfidf")
    result = export_run(run_id, "skops", tmp_path / "skops")
    assert set(result.files) == {"model.skops", "labels.json", "README.md"}
    pipeline = sio.load(tmp_path / "skops" / "model.skops", trusted=TRUSTED_TYPES)
    assert list(pipeline.predict(CLEAR[:2])) == ["positive", "negative"]
    assert "sio.load" in (tmp_path / "skops" / "README.md").read_text()


@pytest.mark.parametrize(("kind", "fmt", "message"), [
    ("lstm", "hf", "a lstm run cannot be exported as hf (only a Transformer is a Hugging Face model); "
                   "use --format onnx or onnx-int8"),
    ("tfidf", "onnx", "use --format skops"),
    ("transformer", "skops", "use --format onnx or onnx-int8 or hf"),
    ("bpr", "onnx", "bpr runs cannot be exported"),
])
def test_formats_a_kind_cannot_export_to_are_refused_clearly(kind: str, fmt: str, message: str) -> None:
    with pytest.raises(ExportError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_format(kind, fmt)


def test_cli_one_line_errors(make_served_run, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = make_served_run("lstm")
    assert main(["export", "--run", str(run_id), "--format", "hf", "-o", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert "cannot be exported as hf" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    assert main(["export", "--run", str(run_id), "--format", "onnx", "-o", str(tmp_path / "full")]) == 1
    assert "not an empty folder" in capsys.readouterr().err
    assert main(["export", "--run", "404", "--format", "onnx", "-o", str(tmp_path / "y")]) == 1
    assert "no run with id 404" in capsys.readouterr().err
    assert main(["export", "--run", str(run_id), "--format", "onnx", "-o", str(tmp_path / "ok"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["format"] == "onnx" and "model.onnx" in out["files"] and out["onnx_max_probability_difference"] < 1e-3


def test_model_card_puts_the_baseline_beside_the_metrics(make_served_run, tmp_path: Path) -> None:
    make_served_run("tfidf", macro_f1=0.71)  # the baseline on the same dataset
    run_id = make_served_run("lstm", macro_f1=0.83)
    export_run(run_id, "onnx", tmp_path / "card")
    card = (tmp_path / "card" / "README.md").read_text()
    for section in ("## Data", "## Metrics", "## Intended use", "## Limitations", "## How to load it"):
        assert section in card
    assert "| macro f1 | 0.830 | 0.710 |" in card and "tiny-sentiment" in card
    assert "onnxruntime" in card and "negative" in card


def test_model_card_is_a_pure_function() -> None:
    facts = CardFacts(run_id=3, run_name="minilm", model_kind="transformer", model_label="Transformer",
                      fmt="onnx-int8", labels=["neg", "pos"], dataset_name="reviews", dataset_rows=1200,
                      split_counts={"train": 840, "validation": 180, "test": 180}, class_counts={"neg": 600,
                                                                                               "pos": 600},
                      max_length=128, report={"accuracy": 0.9, "macro_f1": 0.89, "majority_rate": 0.5,
                                              "per_class": {"neg": {"precision": 0.9, "recall": 0.88, "f1": 0.89,
                                                                    "support": 90}}})
    card = model_card(facts)
    assert "No TF-IDF baseline run exists" in card and "| accuracy | 0.900 | – | 0.500 |" in card
    assert "train 840, validation 180, test 180" in card and "int8 quantisation can change" in card
    assert "first 128 tokens" in card and "| neg | 0.900 | 0.880 | 0.890 | 90 |" in card


def test_serve_onnx_runtime_exports_into_the_run_folder(make_served_run, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    from core.api.app import create_app
    from core.api.served import ServedModels
    from core.runs.files import RunFiles

    monkeypatch.setenv("PROTOLAB_INFERENCE_PRECISION", "fp32")
    run_id = make_served_run("lstm")
    models = ServedModels([run_id], runtime="onnx")
    models.load()
    assert models.runs[run_id].runtime == "onnx" and (RunFiles.of(run_id).onnx_dir / "model.onnx").is_file()
    client = TestClient(create_app(models, require_key=False))
    r = client.post(f"/v1/runs/{run_id}/predict", json={"texts": CLEAR})
    assert r.status_code == 200 and client.get("/v1/runs").json()["runs"][0]["runtime"] == "onnx"
    got = np.array([p["probabilities"]["positive"] for p in r.json()["predictions"]])
    assert np.abs(got - load_classifier(run_id).predict_proba(CLEAR)[:, 1]).max() <= 1e-3
