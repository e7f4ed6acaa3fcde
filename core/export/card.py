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
    metrics: tuple[str, ...] = CLASSIFICATION_METRICS  # the rows of the metrics table, keys of the run's report
    reference: str = "majority class"  # the metrics table's last column: what a model that does not read scores


@dataclass(frozen=True)
class TagThresholds:
    """A multi-label model's decision rule, for its card: a tag is predicted when its sigmoid probability reaches
    its threshold (tuned on validation), or the one global threshold when the run uses that."""

    per_tag: dict[str, float]
    global_threshold: float
    use: str = "per_tag"  # "per_tag" | "global": which of the two the run applies

    def applied(self) -> dict[str, float]:
        """The threshold each tag is decided by."""
        if self.use == "global":
            return dict.fromkeys(self.per_tag, self.global_threshold)
        return dict(self.per_tag)


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
    # What the reference column scores (empty: the majority class, from the report's majority rate)
    reference: dict[str, Any] = field(default_factory=dict)
    thresholds: TagThresholds | None = None  # a multi-label model's thresholds (None: one label per input)


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


def _thresholds_section(f: CardFacts) -> list[str]:
    """The decision thresholds table of a multi-label model, with each tag's validation-tuned threshold."""
    t = f.thresholds
    if t is None:
        return []
    applied = t.applied()
    rule = (f"one global threshold, {t.global_threshold:.2f}, for every tag" if t.use == "global" else
            "each tag's own threshold, tuned on the validation split to maximise that tag's F1 (the global "
            f"alternative, one threshold for every tag that maximises micro-F1, is {t.global_threshold:.2f})")
    rows = ["| tag | threshold | tuned per tag |", "|---|---|---|"]
    rows += [f"| {tag} | {applied[tag]:.2f} | {t.per_tag[tag]:.2f} |" for tag in f.labels if tag in applied]
    return ["## Decision thresholds",
            f"A tag is predicted when its probability (a sigmoid of its logit) reaches its threshold; a text may get "
            f"several tags or none. This model uses {rule}. The same thresholds are in `protolab.json` "
            "(`thresholds`).", "", *rows, ""]


def model_card(f: CardFacts) -> str:
    """README.md text of an export folder."""
    classes = ", ".join(f"{k} ({v:,})" if isinstance(v, int) else str(k) for k, v in f.class_counts.items()) \
        or ", ".join(f.labels)
    splits = ", ".join(f"{k} {v:,}" for k, v in f.split_counts.items() if isinstance(v, int)) or "not recorded"
    words = f.words
    reference = f.reference or (majority_scores({"labels": f.labels, **f.report}) if f.report.get("majority_rate")
                                else {})
    rows = [f"| metric | this model | {f.baseline_kind} baseline | {words.reference} |", "|---|---|---|---|"]
    for key in words.metrics:
        rows.append(f"| {key.replace('_', ' ')} | {_fmt(f.report.get(key))} | "
                    f"{_fmt((f.baseline or {}).get(key))} | {_fmt(reference.get(key))} |")
    per_class = f.report.get("per_class") or f.report.get("per_tag") or {}
    noun = "tag" if f.thresholds else "label"  # a multi-label model's outputs are tags, each decided on its own
    class_rows = [f"| {noun} | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    class_rows += [f"| {lab} | {_fmt(v.get('precision'))} | {_fmt(v.get('recall'))} | {_fmt(v.get('f1'))} | "
                   f"{v.get('support', '–')} |" for lab, v in per_class.items()]
    baseline_note = (f"The {f.baseline_kind} baseline is run {f.baseline_name} on the same data and split."
                     if f.baseline else f"No {f.baseline_kind} baseline run exists on this dataset, so that column is "
                     "empty.")
    settings = ", ".join(f"{k} = {v}" for k, v in f.config.items()
                         if k in ("model_id", "epochs", "batch_size", "learning_rate", "max_length", "seed")
                         and v is not None) or "defaults"
    trained = f.finished_at.astimezone(UTC).strftime("%Y-%m-%d") if f.finished_at else "unknown date"
    reads = words.reads or ("the whole text" if f.max_length is None else f"the first {f.max_length} tokens of a text")
    names = ", ".join(f"`{x}`" for x in f.labels)
    what = (f"It tags {words.subject} with any of: {names} (several, one or none; the order of `labels.json`)."
            if f.thresholds else f"It labels {words.subject} as one of: {names} (the order of `labels.json`).")
    reference_note = (f" The {words.reference} column is what always answering the most frequent label scores."
                 if words.reference == "majority class" else
                 f" The {words.reference} column is what giving every text the same most frequent tags scores.")
    unsure = ("- A probability close to its tag's threshold is the least certain answer: such tags are best "
              "checked." if f.thresholds else "- Labels with little training data (see support above) are the least "
              "reliable; a confidence below 0.6 is best treated as \"not sure\".")
    lines = [
        f"# {f.run_name}: {words.noun} ({f.model_label})",
        "",
        f"Exported from Protolab run #{f.run_id} (trained {trained}) as **{FORMAT_NAMES.get(f.fmt, f.fmt)}**. {what}",
        "",
        "## Data",
        f"- Dataset: **{f.dataset_name}**, {f.dataset_rows:,} rows. {noun.capitalize()}s: {classes}.",
        f"- Splits: {splits}. Metrics below are on the **{f.split}** split, never seen in training.",
        f"- Model: {f.model_kind}" + (f" starting from `{f.model_id}`" if f.model_id else "") + f"; {settings}.",
        "",
        "## Metrics",
        *rows,
        "",
        baseline_note + reference_note,
        "",
        *(class_rows + [""] if per_class else []),
        *_thresholds_section(f),
        "## Intended use",
        f"{words.use.format(dataset=f.dataset_name)}, to sort, route or count them, with a person checking the "
        "decisions that matter.",
        "",
        "## Limitations",
        f"- It reads {reads}; anything beyond that is ignored.",
        f"- It only knows the labels above and the kind of input it was trained on: {words.other} will be labelled "
        "less reliably than the metrics say.",
        unsure,
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
               words: CardWords | None = None, thresholds: TagThresholds | None = None) -> CardFacts:
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
        class_counts=dict((dataset.stats or {}).get("tags" if thresholds else "classes") or {}), max_length=max_length,
        model_id=(run.config or {}).get("model_id"), config=dict(run.config or {}), split=split, report=report,
        baseline=baseline_report(baseline, split), baseline_name=run_label(baseline) if baseline else None,
        finished_at=run.finished_at, words=words or CardWords(), reference=_reference(run.metrics or {}),
        thresholds=thresholds, baseline_kind=base_kind.short_label if base_kind is not None else "baseline")


def _reference(metrics: dict[str, Any]) -> dict[str, Any]:
    """The "most frequent tags" baseline a multi-label run stores (empty for a classification run: its card
    computes the majority class from the report)."""
    return dict(((metrics.get("baselines") or {}).get("most_frequent")) or {})
