"""The model card every export folder carries (README.md): what the model was trained on, how it scores
beside the TF-IDF baseline and the majority class, what it is for and not for, and how to load it.

`model_card` is a pure function of `CardFacts`; `card_facts` gathers them from the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from core.evaluation.comparison import baseline_report, baseline_run, majority_scores, run_label
from core.evaluation.predictions import EvaluationError, split_report
from core.metric_keys import CLASSIFICATION_METRICS
from core.runs import registry
from core.text.tfidf import TRUSTED_TYPES
from db import runs as run_queries

FORMAT_NAMES = {"onnx": "ONNX (fp32)", "onnx-int8": "ONNX, int8 dynamic quantisation",
                "hf": "Hugging Face transformers folder (save_pretrained)", "skops": "scikit-learn pipeline (skops)"}


@dataclass(frozen=True)
class CardWords:
    """How a card speaks of a kind of input where it is not a text (an exporter's own, e.g. core.export.images):
    what the model is, what one input is, what it reads, what it is for (`{dataset}` is filled in), what it knows
    less of, and the README's loading snippet."""

    noun: str = "text classifier"
    subject: str = "a text"
    reads: str | None = None  # None: the text wording (whole text, or the first max_length tokens)
    use: str = "Labelling short texts like those in {dataset} (same language, domain and label meanings)"
    other: str = "other domains, languages or slang"
    how_to_load: str | None = None  # None: the text formats' snippet


@dataclass(frozen=True)
class CardFacts:
    run_id: int
    run_name: str
    model_kind: str
    model_label: str
    fmt: str
    labels: list[str]
    dataset_name: str
    dataset_rows: int
    split_counts: dict[str, Any]
    class_counts: dict[str, Any]
    max_length: int | None
    model_id: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    split: str = "test"
    report: dict[str, Any] = field(default_factory=dict)  # the run's classification report on `split`
    baseline: dict[str, Any] | None = None  # the best baseline run's report on the same split
    baseline_kind: str = "TF-IDF"  # the short name of its task's baseline kind
    baseline_name: str | None = None
    finished_at: datetime | None = None
    words: CardWords = field(default_factory=CardWords)


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "–"


def _how_to_load(f: CardFacts) -> str:
    if f.fmt in ("onnx", "onnx-int8"):
        return f"""```python
import json
import numpy as np
import onnxruntime as ort
from transformers import AutoTokenizer

labels = json.load(open("labels.json"))
tokenizer = AutoTokenizer.from_pretrained(".")
session = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
enc = tokenizer(["great service"], padding=True, truncation=True, max_length={f.max_length}, return_tensors="np")
logits = session.run(["logits"], {{"input_ids": enc["input_ids"].astype(np.int64),
                                   "attention_mask": enc["attention_mask"].astype(np.int64)}})[0]
print(labels[int(logits[0].argmax())])
```
Inputs `input_ids` and `attention_mask` (int64, shape batch × sequence, both dynamic); output `logits`
(batch × {len(f.labels)}), in the order of `labels.json`. Apply a softmax for probabilities."""
    if f.fmt == "hf":
        return """```python
from transformers import pipeline

classify = pipeline("text-classification", model=".")  # this folder
print(classify("great service"))
```"""

    trusted = ",\n    ".join(f'"{t}"' for t in TRUSTED_TYPES)
    return f"""```python
import skops.io as sio

# skops refuses any type outside this list, so a tampered file is not executed
trusted = [
    {trusted},
]
pipeline = sio.load("model.skops", trusted=trusted)  # TF-IDF + logistic regression
print(pipeline.predict(["great service"]), pipeline.predict_proba(["great service"]))
```
Columns of `predict_proba` follow `labels.json`."""


def model_card(f: CardFacts) -> str:
    """README.md text of an export folder."""
    classes = ", ".join(f"{k} ({v:,})" if isinstance(v, int) else str(k) for k, v in f.class_counts.items()) \
        or ", ".join(f.labels)
    splits = ", ".join(f"{k} {v:,}" for k, v in f.split_counts.items() if isinstance(v, int)) or "not recorded"
    majority = majority_scores({"labels": f.labels, **f.report}) if f.report.get("majority_rate") else {}
    rows = [f"| metric | this model | {f.baseline_kind} baseline | majority class |", "|---|---|---|---|"]
    for key in CLASSIFICATION_METRICS:
        rows.append(f"| {key.replace('_', ' ')} | {_fmt(f.report.get(key))} | "
                    f"{_fmt((f.baseline or {}).get(key))} | {_fmt(majority.get(key))} |")
    per_class = f.report.get("per_class") or {}
    class_rows = ["| label | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    class_rows += [f"| {lab} | {_fmt(v.get('precision'))} | {_fmt(v.get('recall'))} | {_fmt(v.get('f1'))} | "
                   f"{v.get('support', '–')} |" for lab, v in per_class.items()]
    baseline_note = (f"The {f.baseline_kind} baseline is run {f.baseline_name} on the same data and split."
                     if f.baseline else f"No {f.baseline_kind} baseline run exists on this dataset, so that column is "
                     "empty.")
    settings = ", ".join(f"{k} = {v}" for k, v in f.config.items()
                         if k in ("model_id", "epochs", "batch_size", "learning_rate", "max_length", "seed")
                         and v is not None) or "defaults"
    trained = f.finished_at.astimezone(UTC).strftime("%Y-%m-%d") if f.finished_at else "unknown date"
    words = f.words
    reads = words.reads or ("the whole text" if f.max_length is None else f"the first {f.max_length} tokens of a text")
    lines = [
        f"# {f.run_name}: {words.noun} ({f.model_label})",
        "",
        f"Exported from Protolab run #{f.run_id} (trained {trained}) as **{FORMAT_NAMES.get(f.fmt, f.fmt)}**. "
        f"It labels {words.subject} as one of: {', '.join(f'`{x}`' for x in f.labels)} (the order of `labels.json`).",
        "",
        "## Data",
        f"- Dataset: **{f.dataset_name}**, {f.dataset_rows:,} rows. Classes: {classes}.",
        f"- Splits: {splits}. Metrics below are on the **{f.split}** split, never seen in training.",
        f"- Model: {f.model_kind}" + (f" starting from `{f.model_id}`" if f.model_id else "") + f"; {settings}.",
        "",
        "## Metrics",
        *rows,
        "",
        baseline_note + " The majority class column is what always answering the most frequent label scores.",
        "",
        *(class_rows + [""] if per_class else []),
        "## Intended use",
        f"{words.use.format(dataset=f.dataset_name)}, to sort, route or count them, with a person checking the "
        "decisions that matter.",
        "",
        "## Limitations",
        f"- It reads {reads}; anything beyond that is ignored.",
        f"- It only knows the labels above and the kind of input it was trained on: {words.other} will be labelled "
        "less reliably than the metrics say.",
        "- Labels with little training data (see support above) are the least reliable; a confidence below "
        "0.6 is best treated as \"not sure\".",
        "- It learned whatever biases its training labels carry. Do not use it alone for decisions about people.",
        *(["- int8 quantisation can change a few borderline answers compared with the fp32 model."]
          if f.fmt == "onnx-int8" else []),
        "",
        "## How to load it",
        words.how_to_load or _how_to_load(f),
        "",
    ]
    return "\n".join(lines)


def card_facts(s: Any, run_id: int, fmt: str, labels: list[str], max_length: int | None,
               words: CardWords | None = None) -> CardFacts:
    """The facts of a completed run's card, read in the caller's session."""

    run = run_queries.get_run(s, run_id)
    assert run is not None
    dataset = run.dataset
    split = str((run.metrics or {}).get("split") or "test")
    try:
        report = split_report(run, split)
    except EvaluationError:
        report = {}
    baseline = baseline_run(s, run)  # None for a baseline run itself
    kind = registry.find_kind(run.model_kind)
    base_kind = registry.baseline_kind(run.task)
    return CardFacts(
        run_id=run.id, run_name=run.name or f"run {run.id}", model_kind=run.model_kind,
        model_label=kind.label if kind else run.model_kind, fmt=fmt, labels=labels, dataset_name=dataset.name,
        dataset_rows=int(dataset.row_count or 0), split_counts=dict(dataset.split_counts or {}),
        class_counts=dict((dataset.stats or {}).get("classes") or {}), max_length=max_length,
        model_id=(run.config or {}).get("model_id"), config=dict(run.config or {}), split=split, report=report,
        baseline=baseline_report(baseline, split), baseline_name=run_label(baseline) if baseline else None,
        finished_at=run.finished_at, words=words or CardWords(),
        baseline_kind=base_kind.short_label if base_kind is not None else "baseline")
