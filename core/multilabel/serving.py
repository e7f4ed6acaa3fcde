"""Serving a multi-label run: probabilities per tag, the run's stored thresholds applied, the tag set out.

The thresholds tuned on validation live in the run's model folder (thresholds.json); every place that serves the
run (`protolab predict`, the API, the demo, batch scoring) goes through `Tagger.tag`, so all apply the same ones.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.errors import ProtolabError
from core.evaluation.cards import ModelCard, tagger_card
from core.multilabel.fewshot import load_setfit_tags
from core.runs import registry
from core.runs.device import resolve_device
from core.runs.files import RunFiles
from core.runs.jobs import completed_run
from core.text.serving import ArtifactError, InputError, clean_text, configure_torch_threads
from db import read_scope
from db import runs as run_queries
from db.enums import RunStatus, TaskKind

THRESHOLDS_FILE = "thresholds.json"
TFIDF_TRUSTED = ["sklearn.pipeline.Pipeline", "sklearn.feature_extraction.text.TfidfVectorizer",
                 "sklearn.feature_extraction.text.TfidfTransformer",
                 "sklearn.linear_model._logistic.LogisticRegression",
                 "sklearn.multiclass.OneVsRestClassifier", "sklearn.preprocessing._label.LabelBinarizer",
                 "numpy.float64", "numpy.int64", "numpy.dtype"]
MAX_TEXTS = 256  # per API request, as for classification


@dataclass(frozen=True)
class TagPrediction:
    labels: list[str]  # the tags whose probability reaches their threshold (possibly none)
    probabilities: dict[str, float]  # every tag
    thresholds: dict[str, float]  # every tag's threshold, as stored with the run
    truncated: bool = False

    def json(self) -> dict[str, Any]:
        return {"labels": self.labels, "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()},
                "thresholds": self.thresholds, "truncated": self.truncated}


class Tagger:
    """A multi-label model ready to serve: `score` gives probabilities per tag, `tag` the tag sets."""

    def __init__(self, family: str, tags: list[str], thresholds: list[float], scorer: Any, device: str = "cpu",
                 global_threshold: float | None = None) -> None:
        self.family, self.labels, self.thresholds, self.device = family, tags, thresholds, device
        self.global_threshold = global_threshold
        self.scorer = scorer  # texts -> ((n, tags) probabilities, truncated flags)
        self.runtime = "python"

    def score(self, texts: Sequence[str]) -> tuple[np.ndarray, list[bool]]:
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, len(self.labels))), []
        return self.scorer(texts)

    def tag(self, texts: Sequence[str]) -> list[TagPrediction]:
        proba, truncated = self.score(texts)
        limits = dict(zip(self.labels, self.thresholds, strict=True))
        out = []
        for row, cut in zip(proba, truncated, strict=True):
            out.append(TagPrediction(
                labels=[t for t, p, th in zip(self.labels, row, self.thresholds, strict=True) if p >= th],
                probabilities={t: float(p) for t, p in zip(self.labels, row, strict=True)}, thresholds=limits,
                truncated=bool(cut)))
        return out


def read_thresholds(files: RunFiles) -> dict[str, Any]:
    path = files.model / THRESHOLDS_FILE
    try:
        stored = json.loads(path.read_text())
        tags, per_tag = [str(t) for t in stored["tags"]], [float(x) for x in stored["per_tag"]]
    except FileNotFoundError as exc:
        raise ArtifactError(f"{path} is missing: the run did not finish saving its model") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{path} is damaged ({type(exc).__name__}: {exc})") from exc
    if len(tags) != len(per_tag) or len(tags) < 2:
        raise ArtifactError(f"{path} lists {len(tags)} tags and {len(per_tag)} thresholds")
    global_threshold, use = float(stored.get("global", 0.5)), str(stored.get("use", "per_tag"))
    # "applied": what every server of the run decides each tag by (the global threshold where the run uses it)
    applied = [global_threshold] * len(tags) if use == "global" else per_tag
    return {"tags": tags, "per_tag": per_tag, "global": global_threshold, "use": use, "applied": applied}


def load_tfidf_tagger(files: RunFiles, device: str = "cpu") -> Tagger:
    """The TF-IDF kind's multi-label loader: a skops pipeline, refused when it holds types outside TFIDF_TRUSTED."""
    import skops.io as sio

    limits = read_thresholds(files)
    path = files.model / "model.skops"
    try:
        untrusted = sorted(set(sio.get_untrusted_types(file=path)) - set(TFIDF_TRUSTED))
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path} does not hold a loadable TF-IDF model: {exc}") from exc
    if untrusted:
        raise ArtifactError(f"refusing to load {path}: it contains untrusted types {', '.join(untrusted)}")
    pipeline = sio.load(path, trusted=TFIDF_TRUSTED)

    def scorer(texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        return np.asarray(pipeline.predict_proba(texts), dtype=np.float64), [False] * len(texts)

    return Tagger("tfidf", limits["tags"], limits["applied"], scorer, "cpu", limits["global"])


def load_neural_tagger(files: RunFiles, device: str = "auto") -> Tagger:
    """The Transformer's or LSTM's multi-label loader: the kind's own network loader, read through a sigmoid."""
    meta = files.read_meta()
    return network_tagger(files, registry.get_kind(str(meta["kind"])).loader()(files, device))


def network_tagger(files: RunFiles, network: Any, runtime: str = "python") -> Tagger:
    """A Transformer's or LSTM's network (a TokenClassifier: PyTorch, or the ONNX graph of an export) read through
    a sigmoid per tag and decided by the run's stored thresholds."""
    limits = read_thresholds(files)
    if list(network.labels) != limits["tags"]:
        raise ArtifactError(f"{files.model}: the model's outputs {network.labels} do not match the tags of "
                            f"{THRESHOLDS_FILE} {limits['tags']}")

    def scorer(texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        logits, cut = network.logits(texts)
        return sigmoid(logits), cut

    tagger = Tagger(network.family, limits["tags"], limits["applied"], scorer, network.device, limits["global"])
    tagger.runtime = runtime
    return tagger


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Each tag's probability from its logit (the multi-label head's activation)."""
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))


def load_setfit_tagger(files: RunFiles, device: str = "auto") -> Tagger:
    """SetFit's multi-label loader: the encoder and its one-vs-rest head."""
    limits = read_thresholds(files)
    configure_torch_threads()
    model = load_setfit_tags(files.model, resolve_device(device))

    def scorer(texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        return model.predict_proba(texts), model.truncated(texts)

    return Tagger("setfit", limits["tags"], limits["applied"], scorer, model.device, limits["global"])


def load_run_tagger(run_id: int, device: str = "auto") -> Tagger:
    """The tagger of a completed multi-label run, through its kind's multi-label loader."""
    with read_scope() as s:
        run = completed_run(s, run_id, TaskKind.MULTILABEL, "tag texts")
        kind_name = run.model_kind
    files = RunFiles.of(run_id)
    if not files.model.is_dir():
        raise ArtifactError(f"run {run_id} has no saved model (expected {files.model})")
    try:
        return registry.get_kind(kind_name).for_task(TaskKind.MULTILABEL).loader()(files, device)
    except ProtolabError:
        raise
    except Exception as exc:  # loaders raise many types on damaged files
        raise ArtifactError(f"the model files of run {run_id} are damaged or incomplete ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:300] if str(exc) else ''})") from exc


def predict_json(run_id: int, texts: Sequence[str]) -> list[dict[str, Any]]:
    """What `protolab predict --run ID TEXT... --json` prints for a multi-label run: one object per text."""
    cleaned = [clean_text(t) for t in texts]
    return [{"text": t, **p.json()} for t, p in zip(cleaned, load_run_tagger(run_id).tag(cleaned), strict=True)]


def serve_tags(model: Tagger, body: dict[str, Any]) -> dict[str, Any]:
    """POST /v1/runs/{id}/tag: {"texts": [...]} -> each text's tag set, every tag's probability and threshold."""
    texts = body.get("texts") if isinstance(body, dict) else None
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise InputError('the body must be {"texts": ["a text", ...]} with at least one text')
    if len(texts) > MAX_TEXTS:
        raise InputError(f"at most {MAX_TEXTS} texts per request, got {len(texts)}")
    cleaned = [clean_text(t) for t in texts]
    return {"results": [p.json() for p in model.tag(cleaned)]}


def servable_tag_runs() -> list[Any]:
    """Completed multi-label runs whose model files are there, best test micro-F1 first."""
    with read_scope() as s:
        rows = run_queries.list_runs(s, task=TaskKind.MULTILABEL, statuses=[RunStatus.COMPLETED], models_only=True)
        found = [{"run_id": r.id, "name": r.name or f"{r.model_kind} on {r.dataset.name}", "kind": r.model_kind,
                  "micro_f1": (r.metrics or {}).get("micro_f1")} for r in rows]
    found = [r for r in found if RunFiles.of(r["run_id"]).has_model()]
    return sorted(found, key=lambda r: -(r["micro_f1"] if isinstance(r["micro_f1"], (int, float)) else -1.0))


def tag_run_card(run_id: int) -> ModelCard:
    """The presentation card of a multi-label run, from its test scores: tags found and tags right, in words."""
    with read_scope() as s:
        run = run_queries.get_run(s, run_id)
        metrics, name = dict(run.metrics or {}), run.dataset.name
        technical = (f"run #{run.id} · {run.model_kind} · test micro-F1 "
                     + (f"{metrics['micro_f1']:.3f}" if isinstance(metrics.get("micro_f1"), (int, float)) else "–"))
    test = (metrics.get("reports") or {}).get("test") or {}
    return tagger_card(tags=list(metrics.get("labels") or test.get("per_tag") or []),
                       recall=test.get("micro_recall"), precision=test.get("micro_precision"), dataset_name=name,
                       technical=technical, n_test=test.get("n"))


def tag_frame(tagger: Tagger, frame: pd.DataFrame, text_column: str) -> pd.DataFrame:
    """A file scored: its columns, then `tags` (the predicted set, ';'-joined) and one probability column per tag.
    Rows without a word get no tags and empty probabilities."""
    if text_column not in frame.columns:
        raise InputError(f"no column named {text_column!r}; columns are: {', '.join(map(str, frame.columns[:20]))}")
    texts = frame[text_column].fillna("").astype(str).str.strip()
    filled = texts != ""
    preds = iter(tagger.tag(texts[filled].tolist()))
    out = frame.copy()
    answers = [next(preds) if ok else None for ok in filled]
    out["tags"] = [";".join(a.labels) if a else "" for a in answers]
    for tag in tagger.labels:
        out[f"p_{tag}"] = [round(a.probabilities[tag], 6) if a else None for a in answers]
    return out
