"""The worker's executor for classification runs: load the splits, train one model kind, save the model,
the prediction files and the metrics.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.data.storage import ROW_ID, load_split
from core.data.versions import test_set_name
from core.evaluation.metrics import classification_report, headline, validation_scores
from core.evaluation.testsets import describe_test_set
from core.evaluation.uncertainty import class_intervals, intervals_json
from core.runs import calibration, distributed, registry
from core.runs.context import RunContext
from core.runs.device import resolve_device
from core.runs.timing import format_eta, preload
from core.text.batching import TokenBatches, encode_texts
from core.text.budget import budget_event, time_budget
from core.text.config import BUILD_CONFIG, TrainConfig, TrainingError, config_from_dict, replace_config
from core.text.gpu_batch import choose_gpu_batch
from core.text.loop import (
    EpochLog,
    StepLog,
    comm_device,
    count_parameters,
    predict_proba,
    resolve_train_device,
    seed_everything,
    train_classifier,
    training_precision,
)
from core.text.pretrained import ModelNotAvailable, load_tokenizer, resolve_model_path
from core.text.tfidf import TfidfConfig, save_tfidf, train_tfidf

EVAL_BATCH_FACTOR = 2  # evaluation has no backward pass, so it affords bigger batches
DDP_STOP_CHECK_EVERY = 5  # micro-batches between cancel checks under DDP, where each check synchronises all ranks






def execute_run(ctx: RunContext) -> dict[str, Any]:
    """Train one neural classification run (Transformer, LSTM) for core.runs.worker: load splits, train, save the
    model and predictions, return metrics."""
    return _execute_neural(ctx, *_prepare(ctx))


def execute_tfidf_run(ctx: RunContext) -> dict[str, Any]:
    """The TF-IDF kind's executor: the same splits and outputs, fitted in one go."""
    return _execute_tfidf(ctx, *_prepare(ctx))


def _prepare(ctx: RunContext) -> tuple[TrainConfig, dict[str, pd.DataFrame], list[str]]:
    cfg = config_from_dict(ctx.config)
    if registry.get_kind(ctx.model_kind).build_config != BUILD_CONFIG:  # a kind whose config this module reads
        raise TrainingError(f"unknown classification model {ctx.model_kind!r}")
    ctx.progress(0.0, "loading data", force=True)
    splits = load_splits(ctx.dataset(), seed=cfg.seed)
    if cfg.train_rows is not None and cfg.train_rows < len(splits["train"]):
        splits["train"] = stratified_sample(splits["train"], cfg.train_rows, cfg.seed)
    return cfg, splits, label_order(splits)


def stratified_sample(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """`n` rows of `frame` with each label's share kept (at least one row of each), seeded."""
    counts = frame["label"].value_counts()
    take = (counts * n / len(frame)).round().astype(int).clip(lower=1)
    parts = [frame[frame["label"] == label].sample(n=min(int(k), int(counts[label])), random_state=seed)
             for label, k in take.items()]
    return pd.concat(parts).sample(frac=1.0, random_state=seed).reset_index(drop=True)


def load_splits(dataset: Any, seed: int = 42) -> dict[str, pd.DataFrame]:
    """train/validation/test frames (text, label as str); a missing validation split is cut from train."""

    frames = {}
    for split in ("train", "validation", "test"):
        frame = load_split(dataset, split)
        frame = frame[frame["label"].notna()]
        frames[split] = pd.DataFrame({"text": frame["text"].fillna("").astype(str),
                                      "label": frame["label"].astype(str),
                                      ROW_ID: frame[ROW_ID].astype("int64")}).reset_index(drop=True)
    return complete_splits(frames, dataset.name, seed)


def complete_splits(frames: dict[str, pd.DataFrame], name: str, seed: int) -> dict[str, pd.DataFrame]:
    """The splits with a validation split cut from train where there is none and test = validation where there is no
    test; no training rows at all is a TrainingError."""
    if frames["train"].empty:
        raise TrainingError(f"dataset {name!r} has no training rows")
    if frames["validation"].empty:  # early stopping needs one; 10 % of train keeps it honest
        shuffled = frames["train"].sample(frac=1.0, random_state=seed)
        n_val = max(1, len(shuffled) // 10)
        frames["validation"], frames["train"] = (shuffled.iloc[:n_val].reset_index(drop=True),
                                                 shuffled.iloc[n_val:].reset_index(drop=True))
    if frames["test"].empty:
        frames["test"] = frames["validation"]
    return frames


def label_order(splits: dict[str, pd.DataFrame]) -> list[str]:
    labels = sorted(set().union(*(set(f["label"]) for f in splits.values())))
    if len(set(splits["train"]["label"])) < 2:
        raise TrainingError("the training split needs at least two different labels")
    return labels


def _execute_tfidf(ctx: RunContext, cfg: TrainConfig, splits: dict[str, pd.DataFrame], labels: list[str]) -> dict:
    ctx.set_device("cpu")
    ctx.progress(0.1, "fitting TF-IDF + logistic regression", force=True)
    tcfg = TfidfConfig.of_run(cfg)
    start = time.perf_counter()
    model = train_tfidf(splits["train"]["text"].tolist(), splits["train"]["label"].tolist(), tcfg)
    seconds = time.perf_counter() - start
    stop_if_cancelled(ctx)

    def proba_of(frame: pd.DataFrame) -> np.ndarray:  # columns in `labels` order (train may lack some)
        raw = model.predict_proba(frame["text"].tolist())
        out = np.zeros((len(frame), len(labels)))
        for j, label in enumerate(model.labels):
            out[:, labels.index(label)] = raw[:, j]
        return out

    probas = {split: proba_of(splits[split]) for split in ("validation", "test")}
    y_val = np.array([labels.index(v) for v in splits["validation"]["label"]])
    scores = validation_scores(y_val, probas["validation"])
    for name, value in scores.items():
        ctx.log_metric(name, value, step=1, epoch=1.0, split="validation")
    if ctx.is_main:
        save_tfidf(model, ctx.files.model)
    samples_per_s = len(splits["train"]) / max(seconds, 1e-9)
    # No pretrained model is read, whatever --model-id said: meta.json must not claim one.
    return finish_run(ctx, replace_config(cfg, model_id=None), splits, labels, probas, best_epoch=1,
                   samples_per_s=samples_per_s, train_time_s=seconds, device="cpu")


@contextmanager
def training_device(ctx: RunContext, requested: str, seed: int) -> Iterator[tuple[str, distributed.World]]:
    """The device a neural run trains on, said on its page, with the seeds set; under torchrun the process joins
    its group here and leaves it on the way out, however training ends."""
    world = distributed.current_world()
    device = resolve_train_device(requested, resolve_device)
    if world.distributed:
        device = distributed.init_process_group(world, device)
    try:
        ctx.set_device(device + (f" × {world.world_size} (DDP)" if world.distributed else ""))
        seed_everything(seed)
        yield device, world
    finally:
        if world.distributed:
            distributed.destroy_process_group()


def _execute_neural(ctx: RunContext, cfg: TrainConfig, splits: dict[str, pd.DataFrame], labels: list[str]) -> dict:
    with training_device(ctx, cfg.device, cfg.seed) as (device, world):
        ctx.progress(0.0, "loading the model", force=True)
        preload(ctx.model_kind)  # imported here anyway; done first so the load below is timed as estimates split it
        load_start = time.perf_counter()
        model, tokenizer = build_model(ctx.model_kind, cfg, labels)
        load_s = time.perf_counter() - load_start
        ctx.progress(0.0, "tokenising", force=True)
        encoded = {split: encode_texts(tokenizer, frame["text"].tolist(), cfg.max_length)
                   for split, frame in splits.items()}
        y = {split: np.array([labels.index(v) for v in frame["label"]]) for split, frame in splits.items()}
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        if cfg.auto_batch_size and device.startswith("cuda") and not world.distributed:
            cfg = _choose_gpu_batch(ctx, cfg, model, tokenizer, len(encoded["train"]), device)
        train = TokenBatches(encoded["train"], y["train"], pad_id, cfg.batch_size, seed=cfg.seed,
                             rank=world.rank, world_size=world.world_size)
        val = TokenBatches(encoded["validation"], y["validation"], pad_id, cfg.batch_size * EVAL_BATCH_FACTOR,
                           shuffle=False)
        if world.distributed:
            import torch
            from torch.nn.parallel import DistributedDataParallel

            model = model.to(device)
            model = DistributedDataParallel(model, device_ids=[torch.device(device)] if device.startswith("cuda")
                                            else None)
        reporter = Reporter(ctx, cfg, n_val=len(splits["validation"]), n_test=len(splits["test"]))
        checkpoint = ctx.files.checkpoint
        result = train_classifier(
            model, train, val, cfg, device=device, on_step=reporter.on_step, on_epoch=reporter.on_epoch,
            on_event=ctx.add_event,
            should_stop=stop_check(ctx, device, world.distributed),
            checkpoint_dir=checkpoint if ctx.is_main else None,
            resume_dir=checkpoint if ctx.config.get("resume") else None,
            budget=time_budget(ctx, cfg, n_eval=len(splits["validation"]) + len(splits["test"]),
                               distributed=world.distributed))
        if result.stopped:
            stop_if_cancelled(ctx, force=True)
        if not ctx.is_main:
            return {}
        if result.out_of_time:
            ctx.add_event(budget_event(cfg, result))
        if not world.distributed and result.samples_per_s > 0:  # the next estimate of such a run uses what this took
            import torch

            calibration.remember(calibration.key_of(ctx.model_kind, cfg, device, torch.get_num_threads()),
                                 **{calibration.REAL: 1.0 / result.samples_per_s})
            calibration.remember(calibration.load_key(ctx.model_kind, cfg), **{calibration.REAL_LOAD: load_s})
        core_model = getattr(model, "module", model)
        ctx.progress(0.96, "predicting validation and test sets", force=True)
        dtype = training_precision(device, count_parameters(core_model))[0]
        # At the batch size training ended with: after an out-of-memory retry the configured one may not fit.
        eval_batch = result.batch_size * EVAL_BATCH_FACTOR
        probas = {split: predict_proba(core_model, TokenBatches(encoded[split], None, pad_id, eval_batch,
                                                                shuffle=False), device, dtype)
                  for split in ("validation", "test")}
        save_model(ctx.model_kind, core_model, tokenizer, labels, ctx.files.model)
        if (result.batch_size, result.grad_accum_steps) != (cfg.batch_size, cfg.grad_accum_steps):
            ctx.add_event({"event": "trained_with", "batch_size": result.batch_size,
                           "grad_accum_steps": result.grad_accum_steps,
                           "message": f"trained with batch size {result.batch_size} and gradient accumulation "
                                      f"{result.grad_accum_steps} (configured {cfg.batch_size} and "
                                      f"{cfg.grad_accum_steps})"})
        metrics = finish_run(ctx, cfg, splits, labels, probas, best_epoch=result.state.best_epoch,
                          samples_per_s=result.samples_per_s, train_time_s=result.train_time_s, device=device)
        # What ran, next to what was asked (the run's config keeps the request).
        return {**metrics, "trained_batch_size": result.batch_size,
                "trained_grad_accum_steps": result.grad_accum_steps}


def _choose_gpu_batch(ctx: RunContext, cfg: TrainConfig, model: Any, tokenizer: Any, n_train: int,
                      device: str) -> TrainConfig:
    """The config with the batch size (and learning rate) a GPU memory probe picked; says so on the run."""

    ctx.progress(0.0, "choosing the batch size from a GPU memory probe", force=True)
    choice = choose_gpu_batch(model, cfg, n_train, device, tokenizer.cls_token_id or 1)
    seed_everything(cfg.seed)  # the probe's dropout drew random numbers; the run starts from the seed again
    ctx.add_event({"event": "auto_batch", "batch_size": choice.batch_size, "learning_rate": choice.learning_rate,
                   "peak_memory_bytes": choice.peak_memory_bytes,
                   "message": choice.message(cfg.batch_size, cfg.learning_rate, cfg.max_length)})
    return replace_config(cfg, batch_size=choice.batch_size, learning_rate=choice.learning_rate)


def stop_check(ctx: RunContext, device: str, distributed_run: bool, every: int = DDP_STOP_CHECK_EVERY) -> Any:
    """The loop's should_stop: the worker's cancel flag; under DDP rank 0's flag broadcast (a collective and a host
    sync) on every `every`-th call only. Every rank calls it once per micro-batch, so the ranks stay in step."""
    if not distributed_run:
        return ctx.should_stop
    calls = iter(range(10**12))

    def check() -> bool:
        if next(calls) % every:
            return False
        return distributed.broadcast_flag(ctx.is_main and ctx.should_stop(), comm_device(device))

    return check


def stop_if_cancelled(ctx: RunContext, force: bool = False) -> None:
    # Raised through the context: under `python -m core.runs.worker` the worker's RunCancelled lives in
    # __main__, so a class imported from core.runs.worker here would not be the one it catches.
    if force:
        ctx.cancelled = True
    ctx.raise_if_cancelled()


def build_model(family: str, cfg: TrainConfig, labels: Sequence[str]) -> tuple[Any, Any]:
    """(model, tokenizer) for a neural kind, with fresh classification head(s) for `labels`: the network class its
    registry entry names (TransformerNet, core.text.lstm.LstmNet) builds it."""
    tokenizer = load_tokenizer(cfg.model_id)
    net = registry.get_kind(family).model_class()
    return net.build(cfg, labels, tokenizer, resolve_model_path(cfg.model_id)), tokenizer


def save_model(family: str, model: Any, tokenizer: Any, labels: Sequence[str], folder: Path) -> None:
    """Save into the run's model folder in the kind's reloadable form (safetensors, no pickle)."""
    folder.mkdir(parents=True, exist_ok=True)
    registry.get_kind(family).model_class().save(model, tokenizer, list(labels), folder)


class TransformerNet:
    """The Transformer kind's network: a pretrained encoder with a fresh classification head."""

    @staticmethod
    def build(cfg: TrainConfig, labels: Sequence[str], tokenizer: Any, source: str) -> Any:
        from transformers import AutoModelForSequenceClassification
        from transformers.utils import logging as hf_logging

        id2label = dict(enumerate(labels))
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # the "newly initialised classifier" report is expected here
        kwargs = {"num_labels": len(labels), "id2label": id2label, "label2id": {v: k for k, v in id2label.items()},
                  "ignore_mismatched_sizes": True}
        try:
            try:  # fused scaled-dot-product attention (flash / memory-efficient kernels on CUDA) where it exists
                model = AutoModelForSequenceClassification.from_pretrained(source, attn_implementation="sdpa",
                                                                           **kwargs)
            except ValueError:  # an architecture without SDPA: its default attention (a real load error recurs)
                model = AutoModelForSequenceClassification.from_pretrained(source, **kwargs)
        except (OSError, ValueError) as exc:
            raise ModelNotAvailable(f"could not load model {cfg.model_id!r}: "
                                    f"{str(exc).splitlines()[0][:200]}") from exc
        finally:
            hf_logging.set_verbosity(verbosity)
        model.config.problem_type = "single_label_classification"
        return model

    @staticmethod
    def save(model: Any, tokenizer: Any, labels: list[str], folder: Path) -> None:
        model.config.id2label = dict(enumerate(labels))
        model.config.label2id = {label: i for i, label in enumerate(labels)}
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)


def finish_run(ctx: RunContext, cfg: Any, splits: dict[str, pd.DataFrame], labels: list[str],
            probas: dict[str, np.ndarray], *, best_epoch: int, samples_per_s: float, train_time_s: float,
            device: str, extra_columns: Sequence[str] = (), meta_extra: dict[str, Any] | None = None
               ) -> dict[str, Any]:
    """Write meta.json and the prediction files; return the run's final metrics. The prediction files also keep
    the splits' `extra_columns` (an image run's image keys)."""

    reports, intervals = {}, {}
    ctx.files.predictions_dir.mkdir(parents=True, exist_ok=True)
    for split, proba in probas.items():
        frame = splits[split]
        pred = [labels[i] for i in proba.argmax(axis=1)] if len(proba) else []
        reports[split] = classification_report(frame["label"].tolist(), pred, labels, proba)
        intervals[split] = intervals_json(class_intervals(frame["label"].tolist(), pred, labels))
        pd.DataFrame({"text": frame["text"], **{c: frame[c] for c in extra_columns}, "label": frame["label"],
                      ROW_ID: frame[ROW_ID], "pred": pred,
                      "confidence": proba.max(axis=1) if len(proba) else [],
                      "proba": [row.tolist() for row in proba]}).to_parquet(ctx.files.predictions(split), index=False)
    meta = {"kind": ctx.model_kind, "task": str(ctx.task), "labels": labels,
            "max_length": getattr(cfg, "max_length", None), "model_id": cfg.model_id, "dataset_id": ctx.dataset_id,
            **(meta_extra or {})}
    ctx.files.write_meta(meta)
    for name in ("accuracy", "macro_f1"):
        ctx.log_metric(name, reports["test"][name], step=0, epoch=None, split="test")
    dataset = ctx.dataset()
    # Which rows this run was scored on: Compare never sets runs on different test sets side by side.
    own = splits["test"] is not splits["validation"]
    set_name = test_set_name(dataset) if own else "validation split (no test split)"
    return {**headline(reports["test"]), "split": "test", "labels": labels, "reports": reports,
            "test_set": describe_test_set(splits["test"], set_name), "intervals": intervals,
            "best_epoch": int(best_epoch), "train_rows": len(splits["train"]),
            "train_samples_per_s": float(samples_per_s), "train_time_s": float(train_time_s), "device": device}


class Reporter:
    """Turns loop callbacks into progress text and metric points on the run (0.95 of the bar is training).

    The ETA is the loop's (training steps left) plus the evaluation still to come: validation after each
    remaining epoch, then validation and test once more. Evaluation is timed on the first epoch's
    validation; before that, a forward pass is taken as a third of a training step.
    """

    def __init__(self, ctx: RunContext, cfg: TrainConfig, n_val: int = 0, n_test: int = 0) -> None:
        self.ctx, self.cfg, self.n_val, self.n_test = ctx, cfg, n_val, n_test
        self.eval_s_per_sample: float | None = None
        self.last_step_at: float | None = None
        self.gpu_text = ""

    def eta(self, log: StepLog) -> float:
        per_sample = self.eval_s_per_sample or 1.0 / max(3.0 * log.samples_per_s, 1e-9)
        epochs_left = self.cfg.epochs - log.epoch  # this epoch's validation is still to come
        return log.eta_s + per_sample * (self.n_val * (epochs_left + 1) + self.n_test)

    def on_step(self, log: StepLog) -> None:
        self.last_step_at = time.perf_counter()
        if log.gpu_memory_bytes is not None:  # refreshed at each loss read, shown on every step's line
            self.gpu_text = f" · GPU {log.gpu_memory_bytes / 2**30:.1f} GiB"
        text = (f"epoch {log.epoch + 1}/{self.cfg.epochs} · step {log.step}/{log.total_steps} · "
                f"{log.samples_per_s:.0f} samples/s{self.gpu_text} · ETA {format_eta(self.eta(log))}")
        self.ctx.progress(0.95 * log.step / max(1, log.total_steps), text)
        if log.loss is not None:  # the loop reads the loss from the device only every few steps
            values = [("train_loss", log.loss), ("learning_rate", log.learning_rate),
                      ("samples_per_s", log.samples_per_s)]
            if log.gpu_memory_bytes is not None:
                values.append(("gpu_memory_gib", log.gpu_memory_bytes / 2**30))
            for name, value in values:
                self.ctx.log_metric(name, value, step=log.step, epoch=round(log.epoch_float, 4), split="train")

    def on_epoch(self, log: EpochLog) -> None:
        if self.last_step_at is not None and self.n_val:  # the validation pass that just ran, per example
            self.eval_s_per_sample = (time.perf_counter() - self.last_step_at) / self.n_val
        for name in ("loss", "accuracy", "macro_f1"):
            self.ctx.log_metric(name, getattr(log, name), step=log.step, epoch=float(log.epoch), split="validation")
        best = " (best so far)" if log.improved else ""
        self.ctx.progress(0.95 * log.epoch / self.cfg.epochs,
                          f"epoch {log.epoch}/{self.cfg.epochs} done · validation macro-F1 {log.macro_f1:.3f}{best}",
                          force=True)
