"""The worker's executors for image classification runs: fine-tuning a pretrained backbone (`vision`), a small CNN
from scratch (`cnn`), and the linear probe (`linear_probe`: logistic regression on frozen embeddings).

The neural kinds train through the text classifiers' loop (core.text.loop.train_classifier: AdamW, warm-up, OOM
halving, checkpoints and resume, the CPU thread governor, TF32/bf16 on CUDA) with the text executor's progress
reporter and its finish_run (metrics, prediction files, meta.json), so an image run reads like a text run on every
page. Only the batches (core.images.pixels) and the networks (core.images.nets) are the images' own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from core.data.storage import ROW_ID, load_split
from core.images import IMAGE, PATH
from core.images.config import ImageConfig, config_from_dict
from core.images.lite0 import FEATURES
from core.images.nets import ImageSpec, Lite0Classifier, build_cnn, build_hf, build_lite0, save_net
from core.images.pixels import ImageBatches, image_batches
from core.images.store import load_image
from core.runs.context import RunContext
from core.runs.device import resolve_device
from core.text.config import TrainingError
from core.text.executor import (
    EVAL_BATCH_FACTOR,
    Reporter,
    complete_splits,
    finish_run,
    label_order,
    stop_check,
    stop_if_cancelled,
    training_device,
)
from core.text.loop import (
    count_parameters,
    predict_proba,
    resolve_train_device,
    seed_everything,
    train_classifier,
    training_precision,
)

log = logging.getLogger(__name__)
SPLITS = ("train", "validation", "test")


def load_image_splits(dataset: Any, seed: int = 42) -> dict[str, pd.DataFrame]:
    """train/validation/test frames (image key, label as str, row id, text) of a labelled image dataset.

    `text` is the image's path in the upload ("train/cat/001.jpg"): its caption wherever the classification
    pages and reports show an example (error tables, the report's sample), while the gallery reads `image`."""
    frames = {}
    for split in SPLITS:
        frame = load_split(dataset, split)
        frame = frame[frame["label"].notna()]
        frames[split] = pd.DataFrame({IMAGE: frame[IMAGE].astype(str), "text": frame[PATH].astype(str),
                                      "label": frame["label"].astype(str),
                                      ROW_ID: frame[ROW_ID].astype("int64")}).reset_index(drop=True)
    return complete_splits(frames, dataset.name, seed)


def split_loader(dataset_id: int, frame: pd.DataFrame) -> Callable[[int], Image.Image]:
    """Index -> the RGB image of that row (what the batches decode, in DataLoader workers)."""
    keys = frame[IMAGE].tolist()
    return lambda i: load_image(dataset_id, keys[i])


def pretrained_network(cfg: ImageConfig, labels: list[str]) -> tuple[Any, ImageSpec]:
    """A pretrained backbone with a fresh head: the bundled EfficientNet-Lite0 unless model_id names a Hugging Face
    image classifier (id or folder)."""
    if cfg.model_id:
        return build_hf(cfg.model_id, labels, cfg.image_size)
    return build_lite0(labels, cfg.image_size)


def cnn_network(cfg: ImageConfig, labels: list[str]) -> tuple[Any, ImageSpec]:
    return build_cnn(labels, cfg.image_size, cfg.cnn_width)


def execute_vision_run(ctx: RunContext) -> dict[str, Any]:
    """The `vision` kind's executor: fine-tune a pretrained backbone."""
    return _execute_neural(ctx, pretrained_network)


def execute_cnn_run(ctx: RunContext) -> dict[str, Any]:
    """The `cnn` kind's executor: a small CNN from scratch."""
    return _execute_neural(ctx, cnn_network)


def _execute_neural(ctx: RunContext, build: Callable[[ImageConfig, list[str]], tuple[Any, ImageSpec]]) -> dict:
    """Train a neural image run for core.runs.worker: decode, train, save the network and predictions."""
    import torch

    cfg = config_from_dict(ctx.config)
    ctx.progress(0.0, "loading data", force=True)
    splits = load_image_splits(ctx.dataset(), seed=cfg.seed)
    labels = label_order(splits)
    with training_device(ctx, cfg.device, cfg.seed) as (device, world):
        ctx.progress(0.0, "loading the model", force=True)
        model, spec = build(cfg, labels)
        if device.startswith("cuda"):  # convolutions run fastest in NHWC on tensor cores
            model = model.to(memory_format=torch.channels_last)
        batches = _batches(ctx, splits, labels, spec, cfg, world.rank, world.world_size)
        if world.distributed:
            from torch.nn.parallel import DistributedDataParallel

            model = DistributedDataParallel(model.to(device), device_ids=[torch.device(device)]
                                            if device.startswith("cuda") else None)
        reporter = Reporter(ctx, cfg, n_val=len(splits["validation"]), n_test=len(splits["test"]))
        checkpoint = ctx.files.checkpoint
        result = train_classifier(
            model, batches["train"], batches["validation"], cfg, device=device, on_step=reporter.on_step,
            on_epoch=reporter.on_epoch, on_event=ctx.add_event, should_stop=stop_check(ctx, device, world.distributed),
            checkpoint_dir=checkpoint if ctx.is_main else None,
            resume_dir=checkpoint if ctx.config.get("resume") else None)
        if result.stopped:
            stop_if_cancelled(ctx, force=True)
        if not ctx.is_main:
            return {}
        core_model = getattr(model, "module", model)
        ctx.progress(0.96, "predicting validation and test sets", force=True)
        dtype = training_precision(device, count_parameters(core_model))[0]
        eval_batch = result.batch_size * EVAL_BATCH_FACTOR
        probas = {split: predict_proba(core_model, batches[split].with_batch_size(eval_batch), device, dtype)
                  for split in ("validation", "test")}
        save_net(core_model.to("cpu").to(memory_format=torch.contiguous_format), labels, spec, ctx.files.model)
        metrics = finish_run(ctx, cfg, splits, labels, probas, best_epoch=result.state.best_epoch,
                             samples_per_s=result.samples_per_s, train_time_s=result.train_time_s, device=device,
                             extra_columns=(IMAGE,), meta_extra={"image_size": spec.size})
        return {**metrics, "trained_batch_size": result.batch_size,
                "trained_grad_accum_steps": result.grad_accum_steps}


def _batches(ctx: RunContext, splits: dict[str, pd.DataFrame], labels: list[str], spec: ImageSpec,
             cfg: ImageConfig, rank: int = 0, world_size: int = 1) -> dict[str, ImageBatches]:
    """Each split's batches, decoded once (training ones augmented and shuffled, this rank's share)."""
    out = {}
    for i, split in enumerate(SPLITS):
        frame = splits[split]
        y = np.array([labels.index(v) for v in frame["label"]])

        def progress(fraction: float, split: str = split, i: int = i) -> None:
            ctx.progress(0.0, f"decoding {split} images ({(i + fraction) / len(SPLITS):.0%})")

        train = split == "train"
        out[split] = image_batches(
            split_loader(ctx.dataset_id, frame), len(frame), y, size=spec.size,
            batch_size=cfg.batch_size if train else cfg.batch_size * EVAL_BATCH_FACTOR, mean=spec.mean,
            std=spec.std, augment=train and cfg.augment, shuffle=train, seed=cfg.seed, rank=rank if train else 0,
            world_size=world_size if train else 1, on_progress=progress)
        stop_if_cancelled(ctx)
    return out


# --- the linear probe ----------------------------------------------------------------------------------------
def embed(model: Any, batches: ImageBatches, device: str,
          on_batch: Callable[[int, int], None] = lambda done, total: None) -> np.ndarray:
    """(N, 1280) frozen backbone features of every image, in order; `on_batch(done, total)` after each batch (the
    data audit's progress and cancel check: core.health.images)."""
    import torch

    model.eval().to(device)
    out = np.zeros((batches.num_examples, FEATURES), dtype=np.float32)
    done = 0
    with torch.inference_mode():
        for idx in batches.index_batches(0):  # in the batches' order (shuffled for train): put back by index
            pixels = batches.collate(idx)["pixel_values"].to(device)
            out[idx] = model.embed(pixels).float().cpu().numpy()
            done += len(idx)
            on_batch(done, batches.num_examples)
    return out


def fit_probe(features: np.ndarray, y: np.ndarray, n_labels: int, c: float, seed: int,
              class_weights: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(weight (C, D), bias (C,)) of a multinomial logistic regression on standardised features, folded back so
    the head takes raw features (then it is one nn.Linear, served and exported like a fine-tuned head)."""
    from sklearn.linear_model import LogisticRegression

    mean, scale = features.mean(axis=0), features.std(axis=0) + 1e-6
    clf = LogisticRegression(C=c, max_iter=1000, random_state=seed,
                             class_weight="balanced" if class_weights else None)
    clf.fit((features - mean) / scale, y)
    coef, intercept = np.zeros((n_labels, features.shape[1])), np.full(n_labels, -1e4)  # unseen labels: never
    present = clf.classes_.astype(int)
    if len(present) == 2:  # sklearn keeps one row for two classes: logit of the second against the first
        coef[present[1]], intercept[present[1]] = clf.coef_[0], clf.intercept_[0]
        coef[present[0]], intercept[present[0]] = 0.0, 0.0
    else:
        coef[present], intercept[present] = clf.coef_, clf.intercept_
    weight = coef / scale
    return weight, intercept - weight @ mean


def execute_probe_run(ctx: RunContext) -> dict[str, Any]:
    """The `linear_probe` executor: embed every image with the frozen backbone, fit a logistic regression, put it
    in as the backbone's head, and save that network (so it serves like a fine-tuned one)."""
    import torch

    cfg = config_from_dict(ctx.config)
    ctx.progress(0.0, "loading data", force=True)
    splits = load_image_splits(ctx.dataset(), seed=cfg.seed)
    labels = label_order(splits)
    device = resolve_train_device(cfg.device, resolve_device)
    ctx.set_device(device)
    seed_everything(cfg.seed)
    model, spec = pretrained_network(cfg, labels)
    if not isinstance(model, Lite0Classifier):
        raise TrainingError("the linear probe embeds with the bundled EfficientNet-Lite0 only (leave model_id unset)")
    batches = _batches(ctx, splits, labels, spec, replace(cfg, augment=False))  # the features of the images as they are
    start = time.perf_counter()
    features = {}
    for i, split in enumerate(SPLITS):
        ctx.progress(0.1 + 0.8 * i / len(SPLITS), f"embedding {split} images", force=True)
        features[split] = embed(model, batches[split], device)
        stop_if_cancelled(ctx)
    ctx.progress(0.9, "fitting the logistic regression", force=True)
    weight, bias = fit_probe(features["train"], batches["train"].labels, len(labels), cfg.probe_c, cfg.seed,
                             cfg.class_weights)
    model.set_head(torch.tensor(weight, dtype=torch.float32), torch.tensor(bias, dtype=torch.float32))
    seconds = time.perf_counter() - start
    probas = {}
    for split in ("validation", "test"):
        logits = features[split] @ weight.T + bias
        logits -= logits.max(axis=1, keepdims=True)
        probas[split] = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    save_net(model.to("cpu"), labels, spec, ctx.files.model)
    return finish_run(ctx, cfg, splits, labels, probas, best_epoch=1,
                      samples_per_s=len(splits["train"]) / max(seconds, 1e-9), train_time_s=seconds, device=device,
                      extra_columns=(IMAGE,), meta_extra={"image_size": spec.size})
