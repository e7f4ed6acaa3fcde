"""`protolab export`: a completed text-classification run as a folder another program can load.

Formats: `onnx` and `onnx-int8` (Transformer, LSTM), `hf` (Transformer: a save_pretrained folder for
`transformers.pipeline`), `skops` (TF-IDF: its scikit-learn pipeline). Every folder also holds the model card
(README.md) and labels.json. An ONNX export is checked against the PyTorch model before it is kept. Kinds whose
registry entry (or task variant) names an `exporter` write their own files: images (core.export.images) and
multi-label texts (core.export.tags, with their decision thresholds).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core import settings
from core.errors import ProtolabError
from core.export.card import CardWords, TagThresholds, card_facts, model_card
from core.export.destination import EXPORT_MARKER, check_export_folder
from core.export.onnx import (
    INFO_FILE,
    MODEL_FILE,
    OnnxClassifier,
    OnnxExportError,
    export_onnx,
    load_onnx_folder,
    quantize_int8,
    write_info,
)
from core.runs import registry
from core.runs.files import RunFiles
from core.runs.jobs import completed_run
from core.tasks import get_task, resolve
from core.text import tfidf
from core.text.serving import ArtifactError, TokenClassifier, load_classifier, servable_run
from db import read_scope
from db import runs as run_queries

FORMATS = ("onnx", "onnx-int8", "hf", "skops")  # each kind's registry entry says which of these it exports to
LABELS_FILE = "labels.json"
CARD_FILE = "README.md"
PARITY_TOLERANCE = 1e-3  # largest probability difference allowed between an fp32 ONNX export and PyTorch
CHECK_TEXTS = ["a short one", "this is a somewhat longer text, to check that padding and length do not matter",
                "ok", "great, awful, fine: all three at once?"]


class ExportError(ProtolabError):
    """A run that cannot be exported as asked (its kind, the format, the output folder)."""


@dataclass(frozen=True)
class ExportResult:
    run_id: int
    fmt: str
    folder: Path
    files: list[str]
    max_abs_diff: float | None = None  # fp32 ONNX vs PyTorch on a few texts (None when not measured)


@dataclass(frozen=True)
class ExportedModel:
    """What a kind's own exporter (its registry entry's `exporter`) wrote: labels in output order, the parity it
    measured, and how the card speaks of its inputs."""

    labels: list[str]
    max_abs_diff: float | None
    words: CardWords
    max_length: int | None = None  # tokens read of a text (None: not a token model)
    thresholds: TagThresholds | None = None  # a multi-label model's decision thresholds, for its card


def check_format(model_kind: str, fmt: str, task: str | None = None) -> None:
    """ExportError unless a run of `model_kind` (on `task`: None, the kind's own) exports to `fmt`, saying which
    formats it does export to."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    kind = registry.find_kind(model_kind)
    own = kind is None or task is None or str(task) == str(kind.task)
    served = kind.for_task(task) if kind is not None and task is not None else kind
    allowed = served.exports if served is not None else ()
    runs = f"{model_kind} runs" if own else f"{model_kind} runs on {get_task(str(task)).holds}"
    if not allowed:
        exported = [k.name for k in registry.all_kinds() if (own or k.trains(str(task)))
                    and k.for_task(task if not own else None).exports]
        raise ExportError(f"{runs} cannot be exported (export works for {', '.join(exported)}"
                          f"{'' if own else ' runs on them'})")
    if fmt not in allowed:
        why = {"hf": "only a Transformer is a Hugging Face model",
               "skops": "skops holds scikit-learn models, i.e. the TF-IDF baseline"}.get(
                   fmt, "it is a scikit-learn model, not a neural network")
        if not own and kind is not None and fmt in kind.exports:  # its own task's runs do: say what these do
            why = f"{runs} export their network and decision thresholds only"
        raise ExportError(f"a {model_kind} run cannot be exported as {fmt} ({why}); use --format "
                          f"{' or '.join(allowed)}")


def export_run(run_id: int, fmt: str, out_dir: Path, *, overwrite: bool = False) -> ExportResult:
    """Export completed run `run_id` as `fmt` into `out_dir` (new or empty; with `overwrite`, an earlier export).

    `out_dir` is never inside the data folder, never holds it, and is replaced only when the marker file of an
    earlier export is in it (core.export.destination)."""

    shown = Path(out_dir)
    out_dir = check_export_folder(shown, replace=overwrite)
    with read_scope() as s:
        exporter = _kind_exporter(s, run_id)
        check_format(exporter.name, fmt, exporter.task)
    files = RunFiles.of(run_id)
    # Written beside the target, then moved in place: a failed export leaves no half-written folder.
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".export-{run_id}-", dir=out_dir.parent))
    try:
        words, thresholds = None, None
        if exporter.exporter is not None:  # the kind writes its own files (image networks, multi-label texts)
            exported = resolve(exporter.exporter)(run_id, fmt, work)
            labels, diff, words = exported.labels, exported.max_abs_diff, exported.words
            max_length, thresholds = exported.max_length or 0, exported.thresholds
        else:
            labels, max_length, diff = _write_model(run_id, files, fmt, work)
        (work / LABELS_FILE).write_text(json.dumps(labels, indent=2, ensure_ascii=False))
        with read_scope() as s:  # max length 0: whole texts (TF-IDF) or no texts (images)
            facts = card_facts(s, run_id, fmt, labels, max_length or None, words, thresholds)
        (work / CARD_FILE).write_text(model_card(facts), encoding="utf-8")
        (work / EXPORT_MARKER).write_text(json.dumps({"run": run_id, "format": fmt}) + "\n")
        check_export_folder(out_dir, replace=overwrite)  # again: the folder may have changed while we worked
        if out_dir.exists():
            shutil.rmtree(out_dir)
        work.rename(out_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return ExportResult(run_id, fmt, shown, sorted(p.name for p in out_dir.iterdir() if p.name != EXPORT_MARKER),
                        diff)


def _kind_exporter(s: Any, run_id: int) -> registry.ModelKind:
    """The kind of completed run `run_id` as it serves the run's task (a ProtolabError says why a run cannot be
    exported): a kind with an `exporter` of its own for the run's task, or none at all (check_format then says
    which kinds do), exports runs of any task; the others classification runs."""
    run = run_queries.get_run(s, run_id)
    kind = registry.find_kind(run.model_kind) if run is not None else None
    if run is not None and kind is not None:
        served = kind.for_task(run.task)
        if served.exporter is not None or not served.exports:
            return kind.for_task(completed_run(s, run_id, run.task, "be exported").task)
    return registry.get_kind(servable_run(s, run_id).model_kind)  # a completed classification run, or why not


def _write_model(run_id: int, files: RunFiles, fmt: str, work: Path) -> tuple[list[str], int, float | None]:
    """Write the model files of `fmt` into `work`: (labels in output order, max length, ONNX parity)."""
    if fmt == "skops":
        model = tfidf.load_tfidf(files.model)  # checks the file is what it claims before it is handed on
        shutil.copy2(files.model / tfidf.MODEL_FILE, work / tfidf.MODEL_FILE)
        return list(model.labels), 0, None
    classifier = fp32_classifier(run_id)
    if fmt == "hf":
        classifier.model.config.id2label = dict(enumerate(classifier.labels))
        classifier.model.config.label2id = {lab: i for i, lab in enumerate(classifier.labels)}
        classifier.model.save_pretrained(str(work), safe_serialization=True)
        classifier.tokenizer.save_pretrained(str(work))
        return list(classifier.labels), classifier.max_length, None
    diff = write_onnx(classifier, work, run_id=run_id, int8=fmt == "onnx-int8")
    return list(classifier.labels), classifier.max_length, diff


def write_onnx(classifier: TokenClassifier, folder: Path, *, run_id: int | None, int8: bool = False) -> float:
    """model.onnx (+ tokenizer and protolab.json) in `folder`; the fp32 graph is first checked against PyTorch.

    Returns the largest probability difference measured (fp32 graph vs PyTorch)."""

    folder.mkdir(parents=True, exist_ok=True)
    fp32 = folder / MODEL_FILE
    export_onnx(classifier, fp32)
    classifier.tokenizer.save_pretrained(str(folder))
    common = {"family": classifier.family, "labels": list(classifier.labels),
              "max_length": classifier.max_length, "run_id": run_id}
    write_info(folder, precision="fp32", **common)
    diff = float(np.abs(load_onnx_folder(folder).predict_proba(CHECK_TEXTS)
                        - classifier.predict_proba(CHECK_TEXTS)).max())
    if diff > PARITY_TOLERANCE:
        raise ExportError(f"the ONNX export disagrees with the PyTorch model (largest probability difference "
                          f"{diff:.2g} > {PARITY_TOLERANCE}); not kept")
    if int8:
        quantized = folder / "model.int8.onnx"
        quantize_int8(fp32, quantized)
        quantized.replace(fp32)
        write_info(folder, precision="int8", **common)
    return diff


_precision_lock = threading.Lock()


def fp32_classifier(run_id: int) -> TokenClassifier:
    """The run's PyTorch classifier on the CPU in fp32. Loaded in fp32, not loaded in bf16 (where the CPU has it)
    and cast back: the bf16 round trip rounds every weight, and the export would drift from the model."""

    variable = settings.INFERENCE_PRECISION.name
    with _precision_lock:  # the loader reads the precision from the environment
        before = os.environ.get(variable)
        os.environ[variable] = "fp32"
        try:
            classifier = load_classifier(run_id, device="cpu")
        finally:
            if before is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = before
    assert isinstance(classifier, TokenClassifier) and classifier.precision == "fp32"
    classifier.model = classifier.model.eval()
    return classifier


def load_run_onnx(run_id: int) -> OnnxClassifier:
    """The run's classifier on onnxruntime, from its folder's ONNX export (made now if there is none yet)."""

    files = RunFiles.of(run_id)
    if not files.has_model():
        raise ArtifactError(f"run {run_id} has no saved model (expected {files.model}); its files were deleted "
                            "or it never finished saving")
    if not (files.onnx_dir / INFO_FILE).is_file():
        work = Path(tempfile.mkdtemp(prefix=".onnx-", dir=files.root))
        try:
            write_onnx(fp32_classifier(run_id), work, run_id=run_id)
            shutil.rmtree(files.onnx_dir, ignore_errors=True)
            work.rename(files.onnx_dir)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    try:
        return load_onnx_folder(files.onnx_dir)
    except OnnxExportError as exc:
        raise ArtifactError(f"run {run_id}: {exc}") from exc
