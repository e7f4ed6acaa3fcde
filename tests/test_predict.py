"""Serving runs: loading each family from its run folder, batched = single predictions, truncation, refusals."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from core.settings import run_dir
from core.text.serving import (
    ArtifactError,
    InputError,
    Prediction,
    clean_text,
    load_classifier,
    servable_run,
    servable_runs,
)
from db import read_scope
from tests.helpers import queue_run

TEXTS = ["i love it, great product", "awful, broken and useless", "ok", "the service today was really " * 3]


@pytest.mark.parametrize("family", ["transformer", "lstm", "tfidf"])
def test_each_family_loads_and_predicts(make_served_run, family: str) -> None:
    from core.runs.device import resolve_device

    clf = load_classifier(make_served_run(family))
    # "auto" serves on the GPU when there is one (TF-IDF always on the CPU), so the suite passes on both.
    expected_device = "cpu" if family == "tfidf" else resolve_device("auto")
    assert clf.family == family and clf.labels == ["negative", "positive"] and clf.device == expected_device
    proba = clf.predict_proba(TEXTS)
    assert proba.shape == (4, 2) and np.allclose(proba.sum(axis=1), 1.0)
    preds = clf.predict(TEXTS)
    assert all(isinstance(p, Prediction) for p in preds)
    assert preds[0].label == clf.labels[int(proba[0].argmax())]
    assert preds[0].confidence == pytest.approx(proba[0].max())
    assert set(preds[0].probabilities) == {"negative", "positive"}


@pytest.mark.parametrize("family", ["lstm", "tfidf"])
def test_trained_families_get_the_tiny_data_right(make_served_run, family: str) -> None:
    preds = load_classifier(make_served_run(family)).predict(["love great wonderful", "hate awful terrible"])
    assert [p.label for p in preds] == ["positive", "negative"]


@pytest.mark.parametrize("family", ["transformer", "lstm"])
def test_bucketed_batches_match_one_at_a_time(make_served_run, monkeypatch: pytest.MonkeyPatch,
                                              family: str) -> None:
    # Padding inside a length bucket must not change any text's probabilities (exactly so in fp32).
    monkeypatch.setenv("PROTOLAB_INFERENCE_PRECISION", "fp32")
    clf = load_classifier(make_served_run(family))
    texts = [f"{'great ' * (i % 7)}product number {i} was {'awful ' * (i % 3)}" for i in range(12)]
    batched = clf.predict_proba(texts, batch_size=5)
    single = np.vstack([clf.predict_proba([t]) for t in texts])
    assert np.allclose(batched, single, atol=1e-4)
    assert clf.predict_proba([]).shape == (0, 2)


def test_bf16_serving_agrees_with_fp32(make_served_run, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = make_served_run("transformer")
    monkeypatch.setenv("PROTOLAB_INFERENCE_PRECISION", "fp32")
    fp32 = load_classifier(run_id)
    monkeypatch.setenv("PROTOLAB_INFERENCE_PRECISION", "bf16")
    bf16 = load_classifier(run_id)
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    assert str(next(bf16.model.parameters()).dtype) == "torch.bfloat16"
    a, b = fp32.predict_proba(TEXTS), bf16.predict_proba(TEXTS)
    assert b.dtype == np.float64 and np.allclose(b.sum(axis=1), 1.0)
    assert np.abs(a - b).max() < 0.02


def test_precision_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.text.serving import inference_precision, native_bf16_cpu

    monkeypatch.delenv("PROTOLAB_INFERENCE_PRECISION", raising=False)
    assert inference_precision("cpu") == ("bf16" if native_bf16_cpu() else "fp32")
    assert inference_precision("mps") == "fp32"
    monkeypatch.setenv("PROTOLAB_INFERENCE_PRECISION", "FP32")
    assert inference_precision("cpu") == "fp32"


def test_long_text_is_truncated_and_flagged(make_served_run) -> None:
    clf = load_classifier(make_served_run("transformer", max_length=16))
    long, short = clf.predict(["great " * 200, "great"])
    assert long.truncated and not short.truncated
    tfidf = load_classifier(make_served_run("tfidf"))
    assert not tfidf.predict(["great " * 200])[0].truncated  # a bag of words reads everything


def test_low_confidence_flag() -> None:
    assert Prediction("positive", 0.55, {"positive": 0.55, "negative": 0.45}, False).low_confidence
    assert not Prediction("positive", 0.95, {"positive": 0.95, "negative": 0.05}, False).low_confidence


@pytest.mark.parametrize("text", ["", "   \n\t ", None])
def test_empty_input_is_refused_kindly(text) -> None:
    with pytest.raises(InputError, match="at least one word"):
        clean_text(text)
    assert clean_text("  fine  ") == "fine"
    with pytest.raises(InputError, match="characters long"):
        clean_text("x" * 200_000)


def test_refuses_a_run_whose_folder_is_missing(make_served_run) -> None:
    run_id = make_served_run("tfidf")
    shutil.rmtree(run_dir(run_id))
    with pytest.raises(ArtifactError, match=f"run {run_id} has no model files"):
        load_classifier(run_id)
    with read_scope() as s:
        assert not servable_run(s, run_id).has_artifacts


def test_refuses_corrupted_artifacts(make_served_run) -> None:
    run_id = make_served_run("transformer")
    folder = run_dir(run_id)
    (folder / "model" / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ArtifactError, match="damaged"):
        load_classifier(run_id)
    (folder / "meta.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="meta.json is damaged"):
        load_classifier(run_id)
    (folder / "meta.json").write_text(json.dumps({"family": "pickle", "labels": ["a", "b"]}))
    with pytest.raises(ArtifactError, match="unknown model family"):
        load_classifier(run_id)
    lstm = make_served_run("lstm")
    (run_dir(lstm) / "model" / "config.json").unlink()
    with pytest.raises(ArtifactError, match=f"run {lstm}"):
        load_classifier(lstm)


def test_never_unpickles_a_transformer(make_served_run) -> None:
    # A run folder holding only a pickled checkpoint is refused, not loaded.
    run_id = make_served_run("transformer")
    model = run_dir(run_id) / "model"
    (model / "model.safetensors").unlink()
    (model / "pytorch_model.bin").write_bytes(b"\x80\x04 pickle payload")
    with pytest.raises(ArtifactError):
        load_classifier(run_id)


def test_servable_runs_best_macro_f1_first(make_served_run) -> None:
    low, high = make_served_run("tfidf", macro_f1=0.61), make_served_run("lstm", macro_f1=0.83)
    with read_scope() as s:
        runs = servable_runs(s)
    assert [r.run_id for r in runs] == [high, low]
    assert runs[0].dataset_name == "tiny-sentiment" and runs[0].has_artifacts
    assert "0.830" in runs[0].title


def train_for_real(dataset_id: int, kind: str, **options) -> int:
    """A run trained by a real `python -m core.runs.worker` process (core.text.training writes the artifacts)."""
    import time

    from core.text.config import build_config
    from db import runs as run_queries
    from db import session_scope
    from db.enums import RunStatus

    run_id = queue_run(dataset_id=dataset_id, model_kind=kind,
                       config=build_config(kind, {"device": "cpu", **options} if kind != "tfidf" else options))
    deadline = time.monotonic() + 540
    while time.monotonic() < deadline:
        with session_scope() as s:
            run = run_queries.get_run(s, run_id)
            status, error = run.status, run.error
        if not status.is_active:
            assert status == RunStatus.COMPLETED, error
            return run_id
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} did not finish")


@pytest.mark.parametrize(("kind", "options"), [("tfidf", {}),
                                               ("lstm", {"epochs": 4, "batch_size": 16, "max_length": 32})])
def test_really_trained_runs_serve(classification_dataset: int, kind: str, options: dict) -> None:
    run_id = train_for_real(classification_dataset, kind, **options)
    clf = load_classifier(run_id)
    assert clf.family == kind and clf.labels == ["negative", "positive"]
    preds = clf.predict(["love this wonderful great product", "awful broken terrible service"])
    assert [p.label for p in preds] == ["positive", "negative"]
    with read_scope() as s:
        best = servable_runs(s)[0]
    assert best.run_id == run_id and best.macro_f1 > 0.8
