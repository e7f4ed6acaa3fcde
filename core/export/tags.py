"""`protolab export --format onnx|onnx-int8` of a multi-label text run (the Transformer's and LSTM's multi-label
registry variants name `export_tag_run` as their exporter), `--format skops` of the TF-IDF baseline's multi-label runs
(`export_tfidf_tag_run`), and `serve --runtime onnx` of such runs.

The graph is the single-label one (input_ids, attention_mask -> logits (batch, tags)); protolab.json adds what a
program outside Protolab needs to decide tags: the sigmoid, each tag's threshold and the global one. The fp32 graph
is checked against PyTorch on the run's own texts before it is kept: sigmoid probabilities within PARITY_TOLERANCE
and the same tag sets after the thresholds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from core.data.storage import load_split
from core.export.card import CardWords, TagThresholds
from core.export.exporting import (
    CHECK_TEXTS,
    PARITY_TOLERANCE,
    ExportedModel,
    ExportError,
    fp32_classifier,
    load_run_onnx,
)
from core.export.onnx import INFO_FILE, MODEL_FILE, export_onnx, load_onnx_folder, quantize_int8, write_info
from core.multilabel.metrics import apply_thresholds
from core.multilabel.serving import (
    TFIDF_TRUSTED,
    Tagger,
    load_tfidf_tagger,
    network_tagger,
    read_thresholds,
    sigmoid,
)
from core.runs.files import RunFiles
from core.text.serving import ArtifactError, TokenClassifier
from db import read_scope
from db import runs as run_queries
from db.enums import TaskKind

SKOPS_FILE = "model.skops"  # what the TF-IDF kind saves and its export copies
RUN_TEXTS = 24  # the run's own texts the export is checked on (test split first), beside the generic CHECK_TEXTS
TAG_METRICS = ("micro_f1", "macro_f1", "samples_f1", "subset_accuracy", "hamming_loss", "micro_precision",
               "micro_recall")


def export_tag_run(run_id: int, fmt: str, folder: Path) -> ExportedModel:
    """model.onnx, the tokenizer and protolab.json (with the thresholds) of multi-label run `run_id` in `folder`."""
    files = RunFiles.of(run_id)
    limits = read_thresholds(files)
    thresholds = TagThresholds(dict(zip(limits["tags"], limits["per_tag"], strict=True)), limits["global"],
                               limits["use"])
    classifier = fp32_classifier(run_id)
    if list(classifier.labels) != limits["tags"]:
        raise ArtifactError(f"run {run_id}: the model's outputs {classifier.labels} do not match the tags of its "
                            f"thresholds {limits['tags']}")
    texts = check_texts(run_id)
    parity = write_tag_onnx(classifier, folder, texts, thresholds, run_id=run_id, int8=fmt == "onnx-int8")
    return ExportedModel(list(classifier.labels), parity["max_abs_diff"], tag_card_words(classifier, len(texts)),
                         max_length=classifier.max_length, thresholds=thresholds)


def export_tfidf_tag_run(run_id: int, fmt: str, folder: Path) -> ExportedModel:
    """model.skops (the TF-IDF + one-vs-rest pipeline) and protolab.json (the thresholds) of multi-label TF-IDF run
    `run_id` in `folder`. The copy is loaded back with the card's trusted types and must give the run's own
    probabilities on its texts before it is kept."""
    files = RunFiles.of(run_id)
    tagger = load_tfidf_tagger(files)  # refuses a file holding types outside TFIDF_TRUSTED
    limits = read_thresholds(files)
    thresholds = TagThresholds(dict(zip(limits["tags"], limits["per_tag"], strict=True)), limits["global"],
                               limits["use"])
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(files.model / SKOPS_FILE, folder / SKOPS_FILE)
    texts = check_texts(run_id)
    copy = load_tfidf_tagger_folder(folder)
    diff = float(np.abs(copy.predict_proba(texts) - tagger.score(texts)[0]).max())
    if diff > 0:
        raise ExportError(f"the exported pipeline disagrees with run {run_id}'s own (largest probability "
                          f"difference {diff:.2g}); not kept")
    info = {"family": "tfidf", "labels": limits["tags"], "model_file": SKOPS_FILE, "run_id": run_id,
            "task": str(TaskKind.MULTILABEL), "activation": "one logistic regression per tag",
            "thresholds": thresholds.applied(), "per_tag_thresholds": thresholds.per_tag,
            "global_threshold": thresholds.global_threshold, "threshold_use": thresholds.use,
            "trusted_types": TFIDF_TRUSTED, "parity": {"texts": len(texts), "max_abs_diff": diff}}
    (folder / INFO_FILE).write_text(json.dumps(info, indent=2))
    return ExportedModel(list(limits["tags"]), None, tfidf_tag_card_words(), thresholds=thresholds)


def load_tfidf_tagger_folder(folder: Path):  # noqa: ANN201 (a scikit-learn Pipeline)
    """The pipeline an export folder holds, loaded as its card says: skops with the listed trusted types only."""
    import skops.io as sio

    untrusted = sorted(set(sio.get_untrusted_types(file=folder / SKOPS_FILE)) - set(TFIDF_TRUSTED))
    if untrusted:
        raise ExportError(f"{folder / SKOPS_FILE} holds untrusted types {', '.join(untrusted)}; not kept")
    return sio.load(folder / SKOPS_FILE, trusted=TFIDF_TRUSTED)


def tfidf_tag_card_words() -> CardWords:
    """How the card of an exported multi-label TF-IDF model loads it and decides tags."""
    trusted = ",\n    ".join(f'"{t}"' for t in TFIDF_TRUSTED)
    load = f"""```python
import json
import skops.io as sio

info = json.load(open("protolab.json"))
# skops refuses any type outside this list, so a tampered file is not executed
trusted = [
    {trusted},
]
pipeline = sio.load("model.skops", trusted=trusted)  # TF-IDF + one logistic regression per tag
probabilities = pipeline.predict_proba(["refund the charge, it crashed"])  # columns in the order of labels.json
print([[t for t, p in zip(info["labels"], row) if p >= info["thresholds"][t]] for row in probabilities])
```
Columns of `predict_proba` follow `labels.json`, one independent probability per tag. A tag is predicted when its
probability reaches its threshold (`protolab.json`: `thresholds`)."""
    return CardWords(noun="multi-label text classifier", subject="a text", reads="the whole text",
                     use="Tagging short texts like those in {dataset} (same language, domain and tag meanings)",
                     how_to_load=load, metrics=TAG_METRICS, reference="most frequent tags")


def check_texts(run_id: int, limit: int = RUN_TEXTS) -> list[str]:
    """Up to `limit` texts of the run's dataset (test split first), then CHECK_TEXTS: real texts give the
    thresholds tags to decide, the generic ones odd lengths."""
    with read_scope() as s:
        run = run_queries.get_run(s, run_id)
        assert run is not None
        texts: list[str] = []
        for split in ("test", "validation", "train"):
            texts += [t for t in load_split(run.dataset, split)["text"].fillna("").astype(str) if t.strip()
                      and t not in texts][:limit - len(texts)]
            if len(texts) >= limit:
                break
    return texts + CHECK_TEXTS


def write_tag_onnx(classifier: TokenClassifier, folder: Path, texts: list[str], thresholds: TagThresholds, *,
                   run_id: int | None, int8: bool = False) -> dict[str, Any]:
    """model.onnx (+ tokenizer, protolab.json) in `folder`, kept only when the fp32 graph's sigmoid probabilities
    are within PARITY_TOLERANCE of PyTorch's on `texts` and give the same tag sets. Returns what was measured
    (also written to protolab.json as `parity`); an int8 graph must give PyTorch's tag sets on most of `texts`."""
    folder.mkdir(parents=True, exist_ok=True)
    export_onnx(classifier, folder / MODEL_FILE)
    classifier.tokenizer.save_pretrained(str(folder))
    applied = thresholds.applied()
    cuts = [applied[t] for t in classifier.labels]
    info = {"family": classifier.family, "labels": list(classifier.labels), "max_length": classifier.max_length,
            "run_id": run_id, "task": str(TaskKind.MULTILABEL), "activation": "sigmoid", "thresholds": applied,
            "per_tag_thresholds": thresholds.per_tag, "global_threshold": thresholds.global_threshold,
            "threshold_use": thresholds.use}
    write_info(folder, precision="fp32", **info)
    expected = sigmoid(classifier.logits(texts)[0])
    fp32 = _tag_parity(load_onnx_folder(folder), texts, expected, cuts)
    if fp32["max_abs_diff"] > PARITY_TOLERANCE:
        raise ExportError(f"the ONNX export disagrees with the PyTorch model (largest probability difference "
                          f"{fp32['max_abs_diff']:.2g} > {PARITY_TOLERANCE}); not kept")
    if fp32["unexplained"]:  # tag sets may differ only where a probability lies within the difference of its cut
        raise ExportError(f"the ONNX export decides other tags than the PyTorch model on {fp32['unexplained']} of "
                          f"{len(texts)} texts; not kept")
    parity = {"texts": len(texts), "max_abs_diff": fp32["max_abs_diff"], "same_tag_sets": fp32["same_tag_sets"]}
    precision = "fp32"
    if int8:
        quantized = folder / "model.int8.onnx"
        quantize_int8(folder / MODEL_FILE, quantized)
        quantized.replace(folder / MODEL_FILE)
        precision = "int8"
        int8_parity = _tag_parity(load_onnx_folder(folder), texts, expected, cuts)
        if int8_parity["same_tag_sets"] < len(texts) / 2:  # as for images: most answers must survive the rounding
            raise ExportError(f"the int8 export decides PyTorch's tags on only {int8_parity['same_tag_sets']} of "
                              f"{len(texts)} texts; use --format onnx")
        parity |= {"int8_max_abs_diff": int8_parity["max_abs_diff"],
                   "int8_same_tag_sets": int8_parity["same_tag_sets"]}
    write_info(folder, precision=precision, parity=parity, **info)
    return parity


def _tag_parity(graph: TokenClassifier, texts: list[str], expected: np.ndarray, cuts: list[float]) -> dict[str, Any]:
    """How the graph's sigmoid probabilities and tag sets compare with PyTorch's (`expected`) on `texts`."""
    got = sigmoid(graph.logits(texts)[0])
    diff = float(np.abs(got - expected).max()) if len(texts) else 0.0
    ours, theirs = apply_thresholds(got, cuts), apply_thresholds(expected, cuts)
    same = (ours == theirs).all(1)
    borderline = (np.abs(expected - np.asarray(cuts)[None, :]) <= diff).any(1)
    return {"max_abs_diff": diff, "same_tag_sets": int(same.sum()), "unexplained": int((~same & ~borderline).sum())}


def load_onnx_tagger(run_id: int) -> Tagger:
    """Run `run_id`'s tagger on onnxruntime (`protolab serve --runtime onnx`): the ONNX graph kept in its folder
    (made on first use), read through the same sigmoid and thresholds as the PyTorch tagger."""
    return network_tagger(RunFiles.of(run_id), load_run_onnx(run_id), runtime="onnx")


def tag_card_words(classifier: TokenClassifier, checked: int) -> CardWords:
    """How the model card speaks of a multi-label text model and how its README decides tags from the graph."""
    load = f"""```python
import json
import numpy as np
import onnxruntime as ort
from transformers import AutoTokenizer

info = json.load(open("protolab.json"))
labels, thresholds = info["labels"], np.array([info["thresholds"][t] for t in info["labels"]])
tokenizer = AutoTokenizer.from_pretrained(".")
session = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
enc = tokenizer(["refund the charge, it crashed"], padding=True, truncation=True, max_length={classifier.max_length},
                return_tensors="np")
logits = session.run(["logits"], {{"input_ids": enc["input_ids"].astype(np.int64),
                                   "attention_mask": enc["attention_mask"].astype(np.int64)}})[0]
probabilities = 1 / (1 + np.exp(-logits))  # a sigmoid per tag, not a softmax
print([[t for t, p, th in zip(labels, row, thresholds) if p >= th] for row in probabilities])
```
Inputs `input_ids` and `attention_mask` (int64, shape batch × sequence, both dynamic); output `logits`
(batch × {len(classifier.labels)}), in the order of `labels.json`. A tag is predicted when its sigmoid probability
reaches its threshold (`protolab.json`: `thresholds`). The fp32 graph was checked against the PyTorch model on
{checked} texts (the probabilities and the tag sets) before it was kept: see `parity` in `protolab.json`."""
    return CardWords(noun="multi-label text classifier", subject="a text",
                     use="Tagging short texts like those in {dataset} (same language, domain and tag meanings)",
                     how_to_load=load, metrics=TAG_METRICS, reference="most frequent tags")
