"""The few-shot model kind, SetFit: contrastive fine-tuning of the bundled MiniLM sentence encoder on pairs of
labelled examples, then a logistic-regression head on its embeddings (the `setfit` library does both).

Saved without pickle: the encoder as a sentence-transformers folder (safetensors) and the head with skops
against a short list of trusted types, so serving never unpickles a file.
"""

from __future__ import annotations

import math
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ProtolabError
from core.runs.context import RunContext
from core.runs.device import is_device, one_blas_thread, resolve_device, unknown_device_text
from core.text.config import TrainingError, is_number
from core.text.executor import format_eta, stop_if_cancelled
from core.text.loop import resolve_train_device
from core.text.pretrained import ModelNotAvailable, resolve_model_path

BODY_DIR = "body"
HEAD_FILE = "head.skops"
HEAD_TRUSTED_TYPES = ["sklearn.linear_model._logistic.LogisticRegression", "numpy.float64", "numpy.int64",
                      "numpy.dtype"]
TRAIN_SHARE = 0.9  # of a run's progress bar; loading, scoring and saving take the rest


@dataclass(frozen=True)
class SetFitConfig:
    # CPU-friendly defaults: 10 pair iterations per example (setfit's default is 20) and at most 1,600
    # pairs, so 8 examples a class train in well under a minute on two cores and 500 in a few minutes.
    num_iterations: int = 10  # contrastive pairs drawn per labelled example (positive + negative)
    max_pairs: int = 1600  # cap on the pairs one run trains on (max_steps = max_pairs / batch_size)
    epochs: int = 1  # passes over the pairs
    batch_size: int = 16
    learning_rate: float = 2e-5  # the encoder's AdamW step size (the head is fitted by scikit-learn)
    max_length: int = 128  # tokens the encoder reads; longer texts are truncated
    seed: int = 42
    class_weights: bool = False  # "balanced" class weights in the logistic head
    device: str = "auto"
    model_id: str | None = None  # None = the bundled MiniLM (sentence-transformers folder, offline)


def build_config(model_kind: str, options: dict[str, Any]) -> dict[str, Any]:
    """The full, validated config dict of a SetFit run from the options a user gave."""
    known = {f.name for f in fields(SetFitConfig)}
    values = {k: v for k, v in options.items() if v is not None and k != "resume"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise TrainingError(f"option(s) {', '.join(unknown)} do not apply to the {model_kind} model")
    cfg = SetFitConfig(**values)
    for name in ("num_iterations", "max_pairs", "epochs", "batch_size", "max_length"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise TrainingError(f"{name} must be a positive whole number, got {value!r}")
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int) or cfg.seed < 0:
        raise TrainingError(f"seed must be a whole number ≥ 0, got {cfg.seed!r}")
    if not is_number(cfg.learning_rate) or cfg.learning_rate <= 0:
        raise TrainingError(f"learning_rate must be a number > 0, got {cfg.learning_rate!r}")
    if not is_device(cfg.device):
        raise TrainingError(unknown_device_text(cfg.device))
    return asdict(cfg)


def config_from_dict(config: dict[str, Any]) -> SetFitConfig:
    known = {f.name for f in fields(SetFitConfig)}
    return SetFitConfig(**{k: v for k, v in config.items() if k in known})


@dataclass(frozen=True)
class StepInfo:
    step: int
    total_steps: int
    loss: float | None
    elapsed_s: float


class FewShotModel:
    """A sentence encoder plus a logistic head; probabilities come in `.labels` order."""

    def __init__(self, body: Any, head: Any, labels: Sequence[str], max_length: int) -> None:
        self.body, self.head, self.labels, self.max_length = body, head, [str(x) for x in labels], max_length
        self._lock = threading.Lock()  # encode() tokenizes with a shared fast tokenizer (not thread-safe)

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        with self._lock:
            return np.asarray(self.body.encode([str(t) for t in texts], batch_size=batch_size,
                                               show_progress_bar=False, convert_to_numpy=True))

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """(n, len(labels)); a label the head never saw gets probability 0."""
        if not len(texts):
            return np.zeros((0, len(self.labels)))
        raw = self.head.predict_proba(self.embed(texts, batch_size))
        out = np.zeros((len(texts), len(self.labels)))
        for j, cls in enumerate(self.head.classes_):  # classes_ are indices into self.labels
            out[:, int(cls)] = raw[:, j]
        return out

    def truncated(self, texts: Sequence[str]) -> list[bool]:
        with self._lock:
            ids = self.body.tokenizer([str(t) for t in texts], truncation=False)["input_ids"]
        return [len(row) > self.max_length for row in ids]


def encoder_path(model_id: str | None) -> str:
    return resolve_model_path(model_id)


def load_encoder(model_id: str | None, device: str = "cpu", max_length: int = 128) -> Any:
    """The sentence-transformers encoder (the bundled MiniLM by default), offline."""
    from sentence_transformers import SentenceTransformer


    try:
        body = SentenceTransformer(encoder_path(model_id), device=device, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelNotAvailable(f"could not load sentence encoder {model_id!r}: "
                                f"{str(exc).splitlines()[0][:200]}") from exc
    body.max_seq_length = max_length
    return body


def train_setfit(texts: Sequence[str], labels: Sequence[str], label_names: Sequence[str], cfg: SetFitConfig, *,
                 device: str = "cpu", on_step: Callable[[StepInfo], None] = lambda info: None,
                 should_stop: Callable[[], bool] = lambda: False) -> FewShotModel:
    """Fine-tune the encoder on contrastive pairs of (texts, labels), then fit the head; `label_names` fixes the
    column order of the probabilities. Reports each optimisation step through `on_step`; stops when asked."""
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments
    from sklearn.linear_model import LogisticRegression
    from transformers import TrainerCallback


    label_names = [str(x) for x in label_names]
    y = [label_names.index(str(label)) for label in labels]
    if len(set(y)) < 2:
        raise TrainingError("SetFit needs labelled examples of at least two different labels")
    body = load_encoder(cfg.model_id, device, cfg.max_length)
    head = LogisticRegression(max_iter=1000, class_weight="balanced" if cfg.class_weights else None)
    model = SetFitModel(model_body=body, model_head=head)
    # setfit pairs each example num_iterations times with a positive and a negative partner.
    pairs = min(cfg.max_pairs, 2 * cfg.num_iterations * len(y))
    max_steps = max(1, math.ceil(pairs / cfg.batch_size) * cfg.epochs)
    args = TrainingArguments(batch_size=cfg.batch_size, num_epochs=cfg.epochs, num_iterations=cfg.num_iterations,
                             max_steps=max_steps, body_learning_rate=cfg.learning_rate, max_length=cfg.max_length,
                             seed=cfg.seed, report_to="none", show_progress_bar=False, save_strategy="no",
                             logging_steps=5,
                             output_dir=str(Path(tempfile.gettempdir()) / "protolab-setfit"))  # never written to
    start = time.perf_counter()

    class _Progress(TrainerCallback):
        loss: float | None = None

        def on_log(self, _args, _state, _control, logs=None, **_kw):  # noqa: ANN001, ANN202
            value = (logs or {}).get("embedding_loss")
            if isinstance(value, (int, float)):
                self.loss = float(value)

        def on_step_end(self, _args, state, control, **_kw):  # noqa: ANN001, ANN202
            on_step(StepInfo(state.global_step, state.max_steps or max_steps, self.loss,
                             time.perf_counter() - start))
            if should_stop():
                control.should_training_stop = True

    dataset = Dataset.from_dict({"text": [str(t) for t in texts], "label": y})
    trainer = Trainer(model=model, args=args, train_dataset=dataset, callbacks=[_Progress()])
    with one_blas_thread():  # the head's lbfgs fit at the end is the BLAS work in here
        trainer.train()
    return FewShotModel(model.model_body, model.model_head, label_names, cfg.max_length)


def resolve(requested: str) -> str:
    return resolve_train_device(requested, resolve_device)


def train_on(ctx: RunContext, cfg: Any, texts: Sequence[str], labels: Sequence[str], label_names: Sequence[str],
             device: str) -> tuple[FewShotModel, float]:
    """Train for a worker run, with progress and cancellation through its context: (the model, seconds training)."""

    ctx.progress(0.02, f"loading the sentence encoder · {len(texts)} labelled examples", force=True)

    def on_step(info: StepInfo) -> None:
        eta = info.elapsed_s / max(info.step, 1) * (info.total_steps - info.step)
        ctx.progress(0.05 + (TRAIN_SHARE - 0.05) * info.step / max(1, info.total_steps),
                     f"contrastive pairs · step {info.step}/{info.total_steps} · ETA {format_eta(eta)}")
        if info.loss is not None and (info.step % 5 == 0 or info.step == info.total_steps):
            ctx.log_metric("train_loss", info.loss, step=info.step, epoch=None, split="train")

    start = time.perf_counter()
    model = train_setfit(texts, labels, label_names, cfg, device=device, on_step=on_step,
                         should_stop=ctx.should_stop)
    stop_if_cancelled(ctx)
    return model, time.perf_counter() - start


def save_fewshot(model: FewShotModel, folder: Path) -> None:
    import json

    import skops.io as sio

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.body.save(str(folder / BODY_DIR), safe_serialization=True)
    sio.dump(model.head, folder / HEAD_FILE)
    (folder / "labels.json").write_text(json.dumps({"labels": model.labels, "max_length": model.max_length}))


def load_fewshot(folder: Path, device: str = "cpu", trusted: Sequence[str] = tuple(HEAD_TRUSTED_TYPES),
                 model_class: type[FewShotModel] = FewShotModel) -> FewShotModel:
    """Load a saved SetFit model as `model_class`, refusing any head object outside `trusted` (HEAD_TRUSTED_TYPES;
    a multi-label head adds the one-vs-rest wrapper)."""
    import json

    import skops.io as sio
    from sentence_transformers import SentenceTransformer


    folder = Path(folder)
    try:
        meta = json.loads((folder / "labels.json").read_text())
        untrusted = sorted(set(sio.get_untrusted_types(file=folder / HEAD_FILE)) - set(trusted))
    except (OSError, KeyError, ValueError) as exc:
        raise ProtolabError(f"{folder} does not hold a loadable SetFit model: {exc}") from exc
    if untrusted:
        raise ProtolabError(f"refusing to load {folder / HEAD_FILE}: it contains untrusted types "
                            f"{', '.join(untrusted)}")
    head = sio.load(folder / HEAD_FILE, trusted=list(trusted))
    body = SentenceTransformer(str(folder / BODY_DIR), device=device, local_files_only=True)
    body.max_seq_length = int(meta.get("max_length", 128))
    return model_class(body, head, meta["labels"], body.max_seq_length)


def cross_validated_scores(embeddings: np.ndarray, y: Sequence[int], folds: int = 5,
                           seed: int = 0) -> dict[str, float] | None:
    """Accuracy and macro-F1 of a logistic head on fixed embeddings, cross-validated (stratified folds);
    None while some label has fewer than 2 examples (no fold could hold it out and train on it)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict


    y = np.asarray(y)
    counts = np.bincount(y)
    counts = counts[counts > 0]
    if len(counts) < 2 or counts.min() < 2:
        return None
    cv = StratifiedKFold(n_splits=int(min(folds, counts.min())), shuffle=True, random_state=seed)
    with one_blas_thread():
        pred = cross_val_predict(LogisticRegression(max_iter=1000), embeddings, y, cv=cv)
    return {"accuracy": float(np.mean(pred == y)), "macro_f1": float(f1_score(y, pred, average="macro"))}
