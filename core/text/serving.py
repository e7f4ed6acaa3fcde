"""Serving a completed classification run: load its model once, then predict labels and probabilities.

Reads only the run's own artifact folder (core.settings.run_dir); the three families share one interface.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from core import settings
from core.errors import ProtolabError
from core.evaluation.demo_choice import DemoStanding, demo_standing, order_for_demo
from core.evaluation.uncertainty import Interval, run_intervals
from core.runs import registry
from core.runs.device import resolve_device
from core.runs.files import RunFiles
from core.runs.jobs import completed_run
from core.text.batching import pad_rows
from core.text.feed import host_batch, to_device, transfer_plan
from core.text.tfidf import load_tfidf
from db import runs as run_queries
from db.enums import RunStatus, TaskKind

LOW_CONFIDENCE = 0.6  # below this the demo says "not sure" rather than presenting a verdict
MAX_TEXT_CHARS = 100_000  # a paste beyond this is a mistake, not a review; refuse before tokenizing
DEFAULT_BATCH_SIZE = 64


class ArtifactError(ProtolabError):
    """A run's model files are missing or damaged, so it cannot be served."""


class InputError(ProtolabError):
    """A text the model cannot score as given (empty, whitespace only, absurdly long)."""


@dataclass(frozen=True)
class Prediction:
    label: str
    confidence: float
    probabilities: dict[str, float]
    truncated: bool  # the text was longer than the model reads; only its beginning was scored

    @property
    def low_confidence(self) -> bool:
        return self.confidence < LOW_CONFIDENCE


@dataclass(frozen=True)
class RunMeta:
    family: str
    labels: list[str]
    max_length: int
    model_id: str | None = None
    dataset_id: int | None = None


class TextClassifier:
    """What every family offers: probabilities in `.labels` order, and labelled predictions."""

    family: str
    labels: list[str]
    max_length: int
    device: str = "cpu"
    precision: str = "fp32"
    runtime: str = "torch"  # what computes the answers (the API reports it): torch | sklearn
    truncates: bool = True  # reads at most max_length tokens of a text (a bag of n-grams reads all of it)

    def score(self, texts: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE) -> tuple[np.ndarray, list[bool]]:
        """(probabilities of shape (n, len(labels)), whether each text was truncated)."""
        raise NotImplementedError

    @property
    def reads(self) -> str:
        """How much of a text it reads, in words the demo page shows."""
        return f"reads up to {self.max_length} tokens"

    def predict_proba(self, texts: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        return self.score(texts, batch_size)[0]

    def log_proba(self, texts: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """Log-probabilities, finite even where a probability rounds to 1 (a family with logits overrides)."""
        return np.log(np.clip(self.predict_proba(texts, batch_size), 1e-300, None))

    def term_contributions(self, text: str) -> tuple[dict[str, np.ndarray], Any] | None:
        """A linear model's exact per-term logit contributions (and its word -> terms reader); None elsewhere."""
        return None

    def predict(self, texts: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE) -> list[Prediction]:
        proba, truncated = self.score(list(texts), batch_size)
        out = []
        for row, cut in zip(proba, truncated, strict=True):
            best = int(row.argmax())
            out.append(Prediction(label=self.labels[best], confidence=float(row[best]),
                                  probabilities={lab: float(p) for lab, p in zip(self.labels, row, strict=True)},
                                  truncated=bool(cut)))
        return out


class TfidfClassifier(TextClassifier):
    family = "tfidf"
    runtime, truncates = "sklearn", False

    reads = "reads whole texts"  # a bag of n-grams: nothing is ever truncated

    def __init__(self, model: Any, max_length: int) -> None:
        self.model, self.labels, self.max_length = model, list(model.labels), max_length

    def score(self, texts: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE) -> tuple[np.ndarray, list[bool]]:
        texts = list(texts)
        if not texts:
            return np.zeros((0, len(self.labels))), []
        # A bag of n-grams reads the whole text, so nothing is ever truncated.
        return self.model.predict_proba(texts), [False] * len(texts)

    def term_contributions(self, text: str) -> tuple[dict[str, np.ndarray], Any]:
        return self.model.term_contributions(text), self.model.word_terms


class TokenClassifier(TextClassifier):
    """Transformer or LSTM: subword ids in, logits out (`model(input_ids, attention_mask).logits`)."""

    def __init__(self, model: Any, tokenizer: Any, labels: list[str], max_length: int, device: str,
                 family: str, precision: str = "fp32") -> None:
        self.model, self.tokenizer, self.labels = model, tokenizer, labels
        self.max_length, self.device, self.family, self.precision = max_length, device, family, precision
        self.pad_id = int(tokenizer.pad_token_id or 0)
        # A fast tokenizer mutates its truncation state per call ("Already borrowed" when two
        # Streamlit sessions share it); tokenizing is cheap, so a lock costs nothing noticeable.
        self._tokenize_lock = threading.Lock()

    def tokenize(self, texts: list[str]) -> tuple[list[list[int]], list[bool]]:
        with self._tokenize_lock:
            enc = self.tokenizer(texts, truncation=True, max_length=self.max_length)
        ids = enc["input_ids"]
        if getattr(enc, "encodings", None):
            cut = [bool(e.overflowing) for e in enc.encodings]
        else:  # slow tokenizers: a text that fills the window was (almost surely) cut
            cut = [len(row) >= self.max_length for row in ids]
        return ids, cut

    def score(self, texts: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE) -> tuple[np.ndarray, list[bool]]:
        logits, cut = self._logits(texts, batch_size)
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))  # a stable softmax
        return exp / exp.sum(axis=1, keepdims=True), cut

    def log_proba(self, texts: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        # From the logits: a 100 %-confident softmax has lost the differences an explanation measures.
        logits = self._logits(texts, batch_size)[0]
        shifted = logits - logits.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))

    def logits(self, texts: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE) -> tuple[np.ndarray, list[bool]]:
        """(raw outputs (n, len(labels)), whether each text was truncated): for a head read another way than by a
        softmax (a multi-label run's sigmoid per tag)."""
        return self._logits(texts, batch_size)

    def _logits(self, texts: Sequence[str], batch_size: int) -> tuple[np.ndarray, list[bool]]:
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, len(self.labels))), []
        ids, cut = self.tokenize(texts)
        logits = np.empty((len(texts), len(self.labels)), dtype=np.float64)
        # Length buckets: sorted by length, each batch pads only to its own longest text.
        order = np.argsort([len(row) for row in ids], kind="stable")
        with self._scoring():
            for start in range(0, len(order), max(1, batch_size)):
                chunk = order[start:start + batch_size]
                logits[chunk] = self._forward([ids[i] for i in chunk])
        return logits, cut

    def _scoring(self) -> AbstractContextManager[Any]:
        """What scoring runs under: no autograd for a PyTorch model (another runtime needs nothing)."""
        import torch

        return torch.inference_mode()

    def _forward(self, rows: list[list[int]]) -> np.ndarray:
        """The logits of a batch of token-id rows (B, num_labels)."""
        import torch

        if len(rows) == 1:  # one text needs no padding and no mask
            input_ids = torch.tensor(rows, device=self.device)
            logits = self.model(input_ids=input_ids).logits
        else:
            # As in training: whole-array padding, and on CUDA pinned memory, asynchronous copies and widths
            # rounded to a multiple of 8 (issue 13: per-row tensor building was host overhead on a GPU).
            plan = transfer_plan(self.device)

            def collate(batch_rows: list[list[int]]) -> dict[str, Any]:
                ids, mask = pad_rows(batch_rows, self.pad_id, plan.pad_multiple)
                return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}

            logits = self.model(**to_device(host_batch(collate, rows, plan), self.device, plan)).logits
        return logits.float().cpu().numpy()  # B, num_labels


_threads_configured = False


def configure_torch_threads() -> None:
    """Few intra-op threads per forward pass, no inter-op pool.

    The demo shares its machine with training workers and other sessions; an OpenMP team wider
    than the free cores spins while descheduled (measured on the busy 2-core team box, MiniLM, one
    tweet: 2 threads p50 612 ms, 1 thread 27 ms). A quarter of the cores degrades gracefully; PROTOLAB_INFERENCE_THREADS
    or OMP_NUM_THREADS override it.
    """
    global _threads_configured
    if _threads_configured:
        return
    import torch

    torch.set_num_threads(inference_threads())
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # only allowed before the first parallel op; too late is harmless
        pass
    _threads_configured = True


def inference_threads() -> int:
    """Threads per model call: PROTOLAB_INFERENCE_THREADS, else OMP_NUM_THREADS, else a quarter of the cores."""
    wanted = settings.INFERENCE_THREADS.get()
    if wanted is not None:
        return wanted
    try:  # OMP_NUM_THREADS is OpenMP's, not ours: a value it would not take is ignored, as OpenMP does
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "")))
    except ValueError:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return max(1, cores // 4)


def native_bf16_cpu() -> bool:
    """Whether the CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX); emulated bf16 is slower than fp32."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def inference_precision(device: str) -> str:
    """"bf16" where the hardware does it natively, else "fp32"; PROTOLAB_INFERENCE_PRECISION=fp32|bf16 forces one.

    Speed and agreement with fp32 on real tweets: BENCHMARKS.md, Inference.
    """
    forced = settings.INFERENCE_PRECISION.get()
    if forced != "auto":
        return forced
    if device.startswith("cuda"):
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device == "cpu" and native_bf16_cpu() else "fp32"


def read_meta(files: RunFiles) -> RunMeta:
    """The run's meta.json, checked; ArtifactError when missing or not what a classification run writes."""
    path = files.meta
    try:
        raw = files.read_meta()
        kind = str(raw.get("kind") or raw["family"])  # "family": runs saved before the model-kind registry
        labels = [str(x) for x in raw["labels"]]
        max_length = int(raw.get("max_length") or 128)
    except FileNotFoundError as exc:
        raise ArtifactError(f"{path} is missing: the run did not finish saving its model") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{path} is damaged ({type(exc).__name__}: {exc})") from exc
    known = registry.kind_names(TaskKind.CLASSIFICATION)
    if kind not in known:
        raise ArtifactError(f"{path} names an unknown model family {kind!r} (expected one of {known})")
    if len(labels) < 2:
        raise ArtifactError(f"{path} lists fewer than two labels")
    dataset_id = raw.get("dataset_id")
    return RunMeta(family=kind, labels=labels, max_length=max(2, max_length), model_id=raw.get("model_id"),
                   dataset_id=int(dataset_id) if isinstance(dataset_id, int) else None)


def load_classifier(run_id: int, device: str = "auto") -> TextClassifier:
    """Load the model of a completed run from its own folder (never a user-given path), through its kind's loader.

    `device` "auto" serves on the GPU when there is one, whatever the run trained on.
    """
    files = RunFiles.of(run_id)
    if not files.exists():
        raise ArtifactError(f"run {run_id} has no model files (expected {files.root}); it may not have finished, "
                            "or its files were deleted")
    meta = read_meta(files)
    if not files.model.is_dir():
        raise ArtifactError(f"run {run_id} has no saved model (expected {files.model})")
    try:
        return registry.get_kind(meta.family).loader()(files, device)
    except ArtifactError:
        raise
    except ProtolabError as exc:  # the family's own loader already said what is wrong
        raise ArtifactError(f"run {run_id}: {exc}") from exc
    except Exception as exc:  # loaders raise many types on damaged files (SafetensorError, OSError...)
        raise ArtifactError(f"the model files of run {run_id} are damaged or incomplete ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:300] if str(exc) else ''})") from exc


def load_tfidf_classifier(files: RunFiles, device: str = "cpu") -> TfidfClassifier:
    """The TF-IDF kind's loader (always on the CPU)."""

    return TfidfClassifier(load_tfidf(files.model), read_meta(files).max_length)


def load_transformer_classifier(files: RunFiles, device: str = "auto") -> TokenClassifier:
    """The Transformer kind's loader (bf16 on hardware that has it, see inference_precision)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer  # heavy: not on a page's path

    meta, folder, device = _open_token_run(files, device)
    # safetensors only: a pickled pytorch_model.bin is never unpickled here.
    model = AutoModelForSequenceClassification.from_pretrained(
        str(folder), local_files_only=True, use_safetensors=True).to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    precision = inference_precision(device)
    if precision == "bf16":
        import torch

        model = model.to(torch.bfloat16)
    return _token_classifier(meta, folder, model, tokenizer, _transformer_labels(model.config, meta.labels), device,
                             precision)


def load_lstm_classifier(files: RunFiles, device: str = "auto") -> TokenClassifier:
    """The LSTM kind's loader. It stays in fp32 (small and already fast; bf16 LSTM kernels not measured)."""
    from core.text.lstm import load_lstm  # torch at its top: the demo pages import this module

    meta, folder, device = _open_token_run(files, device)
    model, tokenizer = load_lstm(folder, device)
    return _token_classifier(meta, folder, model, tokenizer, [str(x) for x in (model.labels or meta.labels)], device,
                             "fp32")


def _open_token_run(files: RunFiles, device: str) -> tuple[RunMeta, Path, str]:
    meta = read_meta(files)
    configure_torch_threads()
    return meta, files.model, resolve_device("auto" if device == "auto" else device)


def _token_classifier(meta: RunMeta, folder: Path, model: Any, tokenizer: Any, labels: list[str], device: str,
                      precision: str) -> TokenClassifier:
    if len(labels) != len(meta.labels):
        raise ArtifactError(f"{folder}: the model has {len(labels)} outputs but meta.json lists "
                            f"{len(meta.labels)} labels")
    max_length = min(meta.max_length, int(getattr(tokenizer, "model_max_length", meta.max_length) or 10**9))
    return TokenClassifier(model, tokenizer, labels, max_length, device, meta.family, precision)


def _transformer_labels(config: Any, meta_labels: list[str]) -> list[str]:
    # Logit i is id2label[i]; a model saved without names (LABEL_0...) falls back to meta.json's order.
    id2label = {int(k): str(v) for k, v in (getattr(config, "id2label", None) or {}).items()}
    named = [id2label.get(i, "") for i in range(int(config.num_labels))]
    if set(named) == set(meta_labels):
        return named
    return list(meta_labels)


def clean_text(text: str | None) -> str:
    """The text to score, or InputError with a message a stakeholder understands."""
    if text is None or not str(text).strip():
        raise InputError("Type or paste some text first: the model needs at least one word.")
    text = str(text).strip()
    if len(text) > MAX_TEXT_CHARS:
        raise InputError(f"That text is {len(text):,} characters long; the demo takes up to {MAX_TEXT_CHARS:,}. "
                         "Use batch scoring for whole documents, one review per row.")
    return text


# --- which runs can be served ----------------------------------------------------------------

@dataclass(frozen=True)
class ServableRun:
    """A completed classification run as the demo shows it (a plain copy, safe outside a session)."""

    run_id: int
    name: str
    model_kind: str
    model_id: str | None
    dataset_id: int
    dataset_name: str
    finished_at: datetime | None
    device: str | None
    metrics: dict[str, Any]
    has_artifacts: bool
    n_test: int | None = None  # texts in the test split the metrics were measured on
    intervals: dict[str, Interval] = field(default_factory=dict)  # test accuracy / macro-F1, 95 % bootstrap
    standing: DemoStanding | None = None  # pinned, weak, lower bound: the demo order

    @property
    def weak(self) -> bool:
        return self.standing is not None and self.standing.weakness.weak

    @property
    def pinned(self) -> bool:
        return self.standing is not None and self.standing.pinned

    def interval(self, key: str) -> tuple[float, float] | None:
        found = self.intervals.get(key)
        return (found.ci_low, found.ci_high) if found is not None else None

    @property
    def macro_f1(self) -> float | None:
        value = self.metrics.get("macro_f1")
        return float(value) if isinstance(value, (int, float)) else None

    @property
    def title(self) -> str:
        f1 = f" · macro-F1 {self.macro_f1:.3f}" if self.macro_f1 is not None else ""
        marks = (" · 📌 pinned for demos" if self.pinned else "") + (" · ⚠ weak" if self.weak else "")
        return f"#{self.run_id} {self.name}{f1}{marks}"


def servable_runs(s: Session, *, present: bool = False, task: str = TaskKind.CLASSIFICATION) -> list[ServableRun]:
    """Completed classification runs (of `task`: images too) in demo order (core.evaluation.demo_choice): the
    pinned one, then the best lower bound among runs that beat their baselines on the largest test set, weak runs
    last; in presentation mode weak runs are left out unless pinned."""
    rows = run_queries.list_runs(s, task=task, statuses=[RunStatus.COMPLETED], models_only=True)
    found = sorted((_servable(r) for r in rows), key=lambda r: -(r.macro_f1 if r.macro_f1 is not None else -1.0))
    return order_for_demo(found, {r.run_id: r.standing for r in found}, lambda r: r.run_id, present=present)


def servable_run(s: Session, run_id: int) -> ServableRun:
    """One run that the demo or CLI can serve, or a ProtolabError saying why not."""

    return _servable(completed_run(s, run_id, TaskKind.CLASSIFICATION, "predict"))


def _servable(run: Any) -> ServableRun:
    config = run.config or {}
    metrics = run.metrics or {}
    test = metrics.get("test") if isinstance(metrics.get("test"), dict) else {}
    headline = {k: v for k, v in {**test, **metrics}.items() if isinstance(v, (int, float))}
    return ServableRun(
        run_id=run.id, name=run.name or f"{run.model_kind} on {run.dataset.name}", model_kind=run.model_kind,
        model_id=config.get("model_id"), dataset_id=run.dataset_id, dataset_name=run.dataset.name,
        finished_at=run.finished_at, device=run.device, metrics=headline,
        has_artifacts=RunFiles.of(run.id).has_model(), n_test=_test_size(metrics), intervals=run_intervals(run),
        standing=demo_standing(run),
    )


def _test_size(metrics: dict[str, Any]) -> int | None:
    n = ((metrics.get("reports") or {}).get("test") or {}).get("n")
    return int(n) if isinstance(n, int) else None
