"""The worker's executors for multi-label runs: the text kinds (TF-IDF, Transformer, LSTM, SetFit) with one
independent yes/no per tag, per-tag thresholds tuned on validation, and the files and metrics every view reads.

The same kind names and options as single-label text (core.runs.kinds registers these as their multi-label
variants); what differs is the head (a sigmoid per tag, binary cross-entropy) and the scores.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pandas as pd

from core.data.storage import ROW_ID, load_split
from core.data.versions import test_set_name
from core.evaluation.testsets import describe_test_set
from core.multilabel.dataset import LABELS
from core.multilabel.fewshot import save_setfit_tagger, train_setfit_tags
from core.multilabel.labels import decode, encode, tag_counts, to_matrix
from core.multilabel.metrics import DEFAULT_THRESHOLD, apply_thresholds, baselines, report, tune_thresholds
from core.runs.context import RunContext
from core.runs.device import resolve_device
from core.text.batching import TokenBatches, encode_texts
from core.text.config import TrainConfig, TrainingError, config_from_dict
from core.text.executor import build_model, complete_splits, save_model, stop_check, stop_if_cancelled
from core.text.fewshot import config_from_dict as setfit_config
from core.text.fewshot import resolve
from core.text.loop import predict_proba, resolve_train_device, seed_everything, train_classifier, training_precision
from core.text.tfidf import TfidfModel, save_tfidf

THRESHOLDS_FILE = "thresholds.json"  # in the run's model folder: what serving applies
EVAL_BATCH_FACTOR = 2
HEADLINE_KEYS = ("micro_f1", "macro_f1", "samples_f1", "hamming_loss", "subset_accuracy", "labels_per_row_true",
                 "labels_per_row_pred", "micro_precision", "micro_recall")
MAX_POS_WEIGHT = 50.0  # a tag on 1 row in 10,000 would otherwise weigh 10,000 times a negative


class MultiLabel:
    """The training loop's objective for tag sets: a sigmoid per tag and binary cross-entropy (with positive
    weights for rare tags when asked: "Balance classes"); validation reports BCE, subset accuracy and macro-F1
    at 0.5 (the thresholds are tuned once training ends)."""

    def loss(self, logits: Any, labels: Any, weight: Any) -> Any:
        import torch.nn.functional as F

        return F.binary_cross_entropy_with_logits(logits, labels.float(), pos_weight=weight)

    def proba(self, logits: Any) -> Any:
        import torch

        return torch.sigmoid(logits)

    def scores(self, y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
        if len(y) == 0:
            return {"loss": 0.0, "accuracy": 0.0, "macro_f1": 0.0}
        p = np.clip(proba, 1e-7, 1 - 1e-7)
        loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
        scores = report(y, proba >= DEFAULT_THRESHOLD, [str(j) for j in range(y.shape[1])])
        return {"loss": loss, "accuracy": scores["subset_accuracy"], "macro_f1": scores["macro_f1"]}

    def weights(self, batches: TokenBatches, n_labels: int) -> Any:
        import torch

        return torch.tensor(positive_weights(np.asarray(batches.labels)), dtype=torch.float32)


OBJECTIVE = MultiLabel()


def positive_weights(y: np.ndarray) -> np.ndarray:
    """Negatives per positive of each tag (BCE's pos_weight), capped at MAX_POS_WEIGHT."""
    pos = y.sum(0).astype(np.float64)
    return np.clip((len(y) - pos) / np.maximum(pos, 1.0), 1.0, MAX_POS_WEIGHT)


# --- data ----------------------------------------------------------------------------------------------------

def load_tag_splits(dataset: Any, seed: int = 42) -> dict[str, pd.DataFrame]:
    """train/validation/test frames (text, tags as lists, row_id); a missing validation split is cut from train."""
    frames = {}
    for split in ("train", "validation", "test"):
        frame = load_split(dataset, split)
        frames[split] = pd.DataFrame({"text": frame["text"].fillna("").astype(str),
                                      "tags": [decode(v) for v in frame[LABELS].fillna("[]")],
                                      ROW_ID: frame[ROW_ID].astype("int64")}).reset_index(drop=True)
    return complete_splits(frames, dataset.name, seed)  # thresholds are tuned on validation rows, never training


def tag_order(splits: dict[str, pd.DataFrame]) -> list[str]:
    """Every tag of the dataset, sorted: the columns of every probability matrix the run writes."""
    tags = sorted(set().union(*(set(tag_counts(f["tags"])) for f in splits.values())))
    if len(tag_counts(splits["train"]["tags"])) < 2:
        raise TrainingError("the training split needs at least two different tags")
    return tags


def matrices(splits: dict[str, pd.DataFrame], tags: list[str]) -> dict[str, np.ndarray]:
    return {name: to_matrix(frame["tags"].tolist(), tags) for name, frame in splits.items()}


def prepare(ctx: RunContext, seed: int) -> tuple[dict[str, pd.DataFrame], list[str], dict[str, np.ndarray]]:
    """Every executor's start: the splits, the tag order and the 0/1 matrices."""
    ctx.progress(0.0, "loading data", force=True)
    splits = load_tag_splits(ctx.dataset(), seed=seed)
    tags = tag_order(splits)
    return splits, tags, matrices(splits, tags)


# --- executors ------------------------------------------------------------------------------------------------

def execute_tfidf(ctx: RunContext) -> dict[str, Any]:
    """TF-IDF + one logistic regression per tag (one-vs-rest): the baseline, on the CPU in seconds."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import Pipeline

    cfg = config_from_dict(ctx.config)
    splits, tags, y = prepare(ctx, cfg.seed)
    ctx.set_device("cpu")
    ctx.progress(0.1, f"fitting TF-IDF + {len(tags)} logistic regressions (one per tag)", force=True)
    pipeline = Pipeline([
        ("tfidf", TfidfVectorizer(ngram_range=(1, cfg.tfidf_ngram_max), sublinear_tf=True, min_df=cfg.tfidf_min_df,
                                  max_features=cfg.tfidf_max_features)),
        ("clf", OneVsRestClassifier(LogisticRegression(C=cfg.tfidf_c, max_iter=1000, solver="liblinear",
                                                       class_weight="balanced" if cfg.class_weights else None))),
    ])
    start = time.perf_counter()
    try:
        pipeline.fit(splits["train"]["text"].tolist(), y["train"])
    except ValueError as exc:  # "empty vocabulary" when every text is blank
        raise TrainingError(f"could not train the TF-IDF baseline: {exc}") from exc
    seconds = time.perf_counter() - start
    stop_if_cancelled(ctx)
    probas = {s: np.asarray(pipeline.predict_proba(splits[s]["text"].tolist()), dtype=np.float64)
              for s in ("validation", "test")}
    if ctx.is_main:  # saved as the single-label baseline is (skops, labels.json): the tags are its labels
        save_tfidf(TfidfModel(pipeline, tags), ctx.files.model)
    return finish_run(ctx, splits, tags, probas, model_id=None, max_length=cfg.max_length, best_epoch=1,
                      samples_per_s=len(splits["train"]) / max(seconds, 1e-9), train_time_s=seconds, device="cpu")


def execute_neural(ctx: RunContext) -> dict[str, Any]:
    """The Transformer or the LSTM with one sigmoid output per tag, trained by the shared loop on BCE."""
    cfg: TrainConfig = config_from_dict(ctx.config)
    splits, tags, y = prepare(ctx, cfg.seed)
    device = resolve_train_device(cfg.device, resolve_device)
    ctx.set_device(device)
    seed_everything(cfg.seed)
    ctx.progress(0.0, "loading the model", force=True)
    model, tokenizer = build_model(ctx.model_kind, cfg, tags)
    ctx.progress(0.0, "tokenising", force=True)
    encoded = {s: encode_texts(tokenizer, f["text"].tolist(), cfg.max_length) for s, f in splits.items()}
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    train = TokenBatches(encoded["train"], y["train"], pad_id, cfg.batch_size, seed=cfg.seed)
    val = TokenBatches(encoded["validation"], y["validation"], pad_id, cfg.batch_size * EVAL_BATCH_FACTOR,
                       shuffle=False)

    def on_step(log: Any) -> None:
        ctx.progress(0.95 * log.step / max(1, log.total_steps),
                     f"epoch {log.epoch + 1}/{cfg.epochs} · step {log.step}/{log.total_steps} · "
                     f"{log.samples_per_s:.0f} samples/s")
        if log.loss is not None:
            ctx.log_metric("train_loss", log.loss, step=log.step, epoch=round(log.epoch_float, 4), split="train")

    def on_epoch(log: Any) -> None:
        for name in ("loss", "accuracy", "macro_f1"):
            ctx.log_metric(name, getattr(log, name), step=log.step, epoch=float(log.epoch), split="validation")
        ctx.progress(0.95 * log.epoch / cfg.epochs,
                     f"epoch {log.epoch}/{cfg.epochs} done · validation macro-F1 at 0.5 {log.macro_f1:.3f}",
                     force=True)

    result = train_classifier(model, train, val, cfg, device=device, on_step=on_step, on_epoch=on_epoch,
                              on_event=ctx.add_event, should_stop=stop_check(ctx, device, False),
                              checkpoint_dir=ctx.files.checkpoint,
                              resume_dir=ctx.files.checkpoint if ctx.config.get("resume") else None,
                              objective=OBJECTIVE)
    if result.stopped:
        stop_if_cancelled(ctx, force=True)
    ctx.progress(0.96, "predicting validation and test sets", force=True)
    dtype = training_precision(device, sum(p.numel() for p in model.parameters()))[0]
    probas = {s: predict_proba(model, TokenBatches(encoded[s], None, pad_id, result.batch_size * EVAL_BATCH_FACTOR,
                                                   shuffle=False), device, dtype, OBJECTIVE)
              for s in ("validation", "test")}
    save_model(ctx.model_kind, model, tokenizer, tags, ctx.files.model)
    return finish_run(ctx, splits, tags, probas, model_id=cfg.model_id, max_length=cfg.max_length,
                      best_epoch=result.state.best_epoch, samples_per_s=result.samples_per_s,
                      train_time_s=result.train_time_s, device=device)


def execute_setfit(ctx: RunContext) -> dict[str, Any]:
    """SetFit with setfit's one-vs-rest multi-target strategy: contrastive pairs, then a logistic head per tag."""
    cfg = setfit_config(ctx.config)
    splits, tags, y = prepare(ctx, cfg.seed)
    device = resolve(cfg.device)
    ctx.set_device(device)
    start = time.perf_counter()
    model = train_setfit_tags(ctx, splits["train"]["text"].tolist(), y["train"], tags, cfg, device)
    seconds = time.perf_counter() - start
    stop_if_cancelled(ctx)
    ctx.progress(0.9, "predicting validation and test sets", force=True)
    probas = {s: model.predict_proba(splits[s]["text"].tolist()) for s in ("validation", "test")}
    save_setfit_tagger(model, ctx.files.model)
    return finish_run(ctx, splits, tags, probas, model_id=cfg.model_id, max_length=cfg.max_length, best_epoch=1,
                      samples_per_s=len(splits["train"]) / max(seconds, 1e-9), train_time_s=seconds, device=device)


# --- what every run writes --------------------------------------------------------------------------------

def finish_run(ctx: RunContext, splits: dict[str, pd.DataFrame], tags: list[str], probas: dict[str, np.ndarray], *,
               model_id: str | None, max_length: int, best_epoch: int, samples_per_s: float, train_time_s: float,
               device: str) -> dict[str, Any]:
    """Tune the thresholds on validation, write them, meta.json and the prediction files; the run's metrics."""
    y = matrices(splits, tags)
    tuned = tune_thresholds(y["validation"], probas["validation"])
    per_tag = tuned["per_tag"]
    reports, at_global, at_half = {}, {}, {}
    ctx.files.predictions_dir.mkdir(parents=True, exist_ok=True)
    for split in ("validation", "test"):
        proba = probas[split]
        pred = apply_thresholds(proba, per_tag)
        reports[split] = report(y[split], pred, tags)
        at_global[split] = _headline(report(y[split], apply_thresholds(proba, [tuned["global"]] * len(tags)), tags))
        at_half[split] = _headline(report(y[split], apply_thresholds(proba, [DEFAULT_THRESHOLD] * len(tags)), tags))
        frame = splits[split]
        pd.DataFrame({"text": frame["text"], "label": [encode(t) for t in frame["tags"]], ROW_ID: frame[ROW_ID],
                      "pred": [encode([tags[j] for j in np.flatnonzero(row)]) for row in pred],
                      "proba": [row.tolist() for row in proba]}).to_parquet(ctx.files.predictions(split), index=False)
    thresholds = {"tags": tags, "per_tag": per_tag, "global": tuned["global"], "use": "per_tag"}
    if ctx.is_main:
        ctx.files.model.mkdir(parents=True, exist_ok=True)
        (ctx.files.model / THRESHOLDS_FILE).write_text(json.dumps(thresholds, indent=2))
    ctx.files.write_meta({"kind": ctx.model_kind, "task": str(ctx.task), "labels": tags, "max_length": max_length,
                          "model_id": model_id, "dataset_id": ctx.dataset_id, "thresholds": thresholds})
    for name in ("micro_f1", "macro_f1"):
        ctx.log_metric(name, reports["test"][name], step=0, epoch=None, split="test")
    own = splits["test"] is not splits["validation"]
    test = splits["test"].assign(label=[encode(t) for t in splits["test"]["tags"]])
    set_name = test_set_name(ctx.dataset()) if own else "validation split (no test split)"
    return {**_headline(reports["test"]), "split": "test", "labels": tags, "reports": reports,
            "thresholds": dict(zip(tags, per_tag, strict=True)), "global_threshold": tuned["global"],
            "at_global_threshold": at_global, "at_half": at_half,
            "threshold_curves": {"grid": tuned["grid"], "curves": tuned["curves"]},
            "baselines": baselines(y["train"], y["test"], tags),
            "test_set": describe_test_set(test[["text", "label", ROW_ID]], set_name), "best_epoch": int(best_epoch),
            "train_samples_per_s": float(samples_per_s), "train_time_s": float(train_time_s), "device": device}


def _headline(scores: dict[str, Any]) -> dict[str, float]:
    return {k: scores[k] for k in HEADLINE_KEYS}
