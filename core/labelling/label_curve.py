"""How many labels do I need: macro-F1 of SetFit, TF-IDF and the fine-tuned Transformer trained on k labelled
examples a class (seeded, stratified samples of a dataset's training split), scored on its test split.

The trainers are the product's own (core.text.fewshot, core.text.tfidf, core.text.loop); bench/few_shot.py runs
the same functions on the tweets corpus. The background job around this is core.labelling.curve_job.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from core.errors import ProtolabError
from core.runs import registry
from core.runs.device import is_device, unknown_device_text
from core.text import config as text_config
from core.text import executor, loop
from core.text.batching import TokenBatches, encode_texts
from core.text.fewshot import SetFitConfig, resolve, train_setfit
from core.text.tfidf import TfidfConfig, train_tfidf

# A gain at least this large between the last two sizes reads as "labelling more pays off". With one seed and
# a test slice of ≤ 2,000 rows, seeds of the tweets benchmark spread by ± 0.02-0.06 (BENCHMARKS.md), so
# anything smaller is not a trend worth paying annotators for.
PAYS_OFF = 0.03

Progress = Callable[[float, str], None]


class LabelCurveError(ProtolabError):
    """The curve cannot be drawn as asked (unknown model, no test rows, no size that every class can fill)."""


class LabelCurveCancelled(Exception):
    """The caller asked the curve to stop (the worker turns it into a cancelled run)."""


@dataclass(frozen=True)
class LabelCurveConfig:
    sizes: tuple[int, ...] = (8, 16, 32, 64)  # labelled examples a class
    models: tuple[str, ...] = ("setfit", "tfidf", "transformer")
    seeds: int = 1  # seeded samples per size; 3 gives a ± std band at three times the cost
    test_cap: int = 2000  # test rows scored (a stratified slice): bounds the scoring time on big datasets
    # The settings bench/few_shot.py measured on a 2-core CPU, so that a whole curve (3 models x 4 sizes, one
    # seed) finishes on a laptop in minutes, not hours: SetFit with the registry's CPU defaults (10 pair
    # iterations per example, at most 1,600 pairs = 100 steps of 16), the Transformer fine-tuned for 10 epochs
    # at batch 8 (a few dozen examples need many passes; patience 0: no rows are spare for early stopping).
    # Both read 64 tokens, not 128: short texts (tickets, reviews, tweets) fit and long ones cost half.
    setfit_num_iterations: int = 10
    setfit_max_pairs: int = 1600
    transformer_epochs: int = 10
    transformer_batch_size: int = 8
    max_length: int = 64
    device: str = "auto"  # SetFit and the Transformer; TF-IDF always runs on the CPU

    def __post_init__(self) -> None:
        object.__setattr__(self, "sizes", tuple(self.sizes))
        object.__setattr__(self, "models", tuple(self.models))
        unknown = [m for m in self.models if _curve_kind(m) is None]
        if unknown or not self.models:
            raise LabelCurveError(f"unknown model(s) {', '.join(unknown) or '(none)'}: use "
                                  f"{', '.join(k.name for k in registry.all_kinds() if k.curve)}")
        if not self.sizes or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in self.sizes):
            raise LabelCurveError(f"sizes must be whole numbers ≥ 1 (labels a class), got {list(self.sizes)}")
        for name in ("seeds", "test_cap", "setfit_num_iterations", "setfit_max_pairs", "transformer_epochs",
                     "transformer_batch_size", "max_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise LabelCurveError(f"{name} must be a positive whole number, got {value!r}")
        if not is_device(self.device):
            raise LabelCurveError(unknown_device_text(self.device))


def _curve_kind(name: str) -> registry.ModelKind | None:
    """The model kind `name` when its registry entry names a label-curve trainer."""
    kind = registry.find_kind(name)
    return kind if kind is not None and kind.curve else None


def model_label(name: str) -> str:
    kind = registry.find_kind(name)
    return kind.short_label if kind is not None else name


def config_from_dict(config: Mapping[str, Any]) -> LabelCurveConfig:
    known = {f.name for f in fields(LabelCurveConfig)}
    return LabelCurveConfig(**{k: v for k, v in config.items() if k in known})


def config_dict(cfg: LabelCurveConfig) -> dict[str, Any]:
    return {**asdict(cfg), "sizes": list(cfg.sizes), "models": list(cfg.models)}


@dataclass
class LabelCurveResult:
    """Every (model, size, seed) score so far; `skipped_sizes` are sizes the smallest class cannot fill."""

    models: list[str]
    sizes: list[int]  # the sizes evaluated
    skipped_sizes: list[int]
    seeds: int
    smallest_class: dict[str, Any]  # {"label", "count"} in the training split
    n_test: int  # test rows scored
    test_rows: int  # test rows the dataset has
    points: list[dict[str, Any]] = field(default_factory=list)  # {"model", "size", "seed", "macro_f1", "train_s"}
    done: bool = False

    @property
    def test_capped(self) -> bool:
        return self.n_test < self.test_rows

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "test_capped": self.test_capped}


# --- sampling -------------------------------------------------------------------------------------------

def sample_per_class(pool: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """`n` rows of each label (seeded), shuffled so that no trainer sees the classes in blocks."""
    return (pool.groupby("label", group_keys=False).sample(n=n, random_state=seed)
            .sample(frac=1.0, random_state=seed).reset_index(drop=True))


def cap_test(test: pd.DataFrame, cap: int, seed: int = 0) -> pd.DataFrame:
    """At most `cap` test rows, stratified by label (every label keeps its share, at least one row)."""
    if len(test) <= cap:
        return test.reset_index(drop=True)
    share = cap / len(test)
    parts = [g.sample(n=max(1, round(len(g) * share)), random_state=seed) for _, g in test.groupby("label")]
    return pd.concat(parts).sample(frac=1.0, random_state=seed).head(cap).reset_index(drop=True)


def macro_f1(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(list(y_true), list(y_pred), average="macro"))


# --- the trainers, named by their kinds' registry entries (`curve`): each trains on `train` and predicts
# `test_texts`, returning (predicted labels, train seconds) ---------------------------------------------------

Trainer = Callable[..., tuple[list[str], float]]


def fit_setfit(train: pd.DataFrame, test_texts: list[str], labels: list[str], seed: int, cfg: LabelCurveConfig, *,
               device: str = "cpu", on_fraction: Callable[[float], None] = lambda f: None,
               should_stop: Callable[[], bool] = lambda: False) -> tuple[list[str], float]:
    scfg = SetFitConfig(num_iterations=cfg.setfit_num_iterations, max_pairs=cfg.setfit_max_pairs,
                        max_length=cfg.max_length, seed=seed, device=device)
    start = time.perf_counter()
    model = train_setfit(train["text"].tolist(), train["label"].tolist(), labels, scfg, device=device,
                         on_step=lambda info: on_fraction(info.step / max(1, info.total_steps)),
                         should_stop=should_stop)
    seconds = time.perf_counter() - start
    _stop(should_stop)
    proba = model.predict_proba(test_texts)
    return [labels[i] for i in proba.argmax(axis=1)], seconds


def fit_tfidf(train: pd.DataFrame, test_texts: list[str], labels: list[str], seed: int, cfg: LabelCurveConfig, *,
              device: str = "cpu", on_fraction: Callable[[float], None] = lambda f: None,
              should_stop: Callable[[], bool] = lambda: False) -> tuple[list[str], float]:
    start = time.perf_counter()
    model = train_tfidf(train["text"].tolist(), train["label"].tolist(), TfidfConfig(seed=seed))
    seconds = time.perf_counter() - start
    return model.predict(test_texts), seconds


def fit_transformer(train: pd.DataFrame, test_texts: list[str], labels: list[str], seed: int,
                    cfg: LabelCurveConfig, *, device: str = "cpu",
                    on_fraction: Callable[[float], None] = lambda f: None,
                    should_stop: Callable[[], bool] = lambda: False) -> tuple[list[str], float]:
    """MiniLM fine-tuned on the examples. No early stopping: too few examples to hold a validation split out,
    so the loop validates on the training sample (it only reports; patience 0 never stops)."""

    tcfg = text_config.config_from_dict(text_config.build_config("transformer", {
        "epochs": cfg.transformer_epochs, "batch_size": cfg.transformer_batch_size, "max_length": cfg.max_length,
        "patience": 0, "device": device, "seed": seed}))
    loop.seed_everything(seed)
    start = time.perf_counter()
    model, tokenizer = executor.build_model("transformer", tcfg, labels)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def batches(texts: list[str], y: list[int], shuffle: bool, size: int) -> TokenBatches:
        return TokenBatches(encode_texts(tokenizer, texts, tcfg.max_length), np.array(y), pad_id, size,
                            shuffle=shuffle, seed=seed)

    y_train = [labels.index(v) for v in train["label"]]
    loop.train_classifier(model, batches(train["text"].tolist(), y_train, True, tcfg.batch_size),
                          batches(train["text"].tolist(), y_train, False, 64), tcfg, device=device,
                          on_step=lambda log: on_fraction(log.step / max(1, log.total_steps)),
                          should_stop=should_stop)
    seconds = time.perf_counter() - start
    _stop(should_stop)
    proba = loop.predict_proba(model, batches(test_texts, [0] * len(test_texts), False, 128), device)
    return [labels[i] for i in proba.argmax(axis=1)], seconds


# --- the curve ------------------------------------------------------------------------------------------

def measure_label_curve(frame: pd.DataFrame, cfg: LabelCurveConfig | None = None, *,
                        on_progress: Progress = lambda fraction, text: None,
                        on_point: Callable[[LabelCurveResult], None] = lambda result: None,
                        should_stop: Callable[[], bool] = lambda: False) -> LabelCurveResult:
    """Train each model on k labelled training rows a class for every size and seed; macro-F1 on the test split
    (capped at cfg.test_cap rows, stratified). `frame` has text, label and split (train/validation/test); rows
    without a label are left out. `on_point` gets the result so far after every score (for partial charts)."""
    cfg = cfg or LabelCurveConfig()  # built here, not as a default: its checks read the registry (and plugins)
    train, test = _splits(frame)
    counts = train["label"].value_counts()
    smallest = {"label": str(counts.idxmin()), "count": int(counts.min())}
    sizes = sorted({k for k in cfg.sizes if k <= smallest["count"]})
    skipped = sorted({k for k in cfg.sizes if k > smallest["count"]})
    if not sizes:
        raise LabelCurveError(f"no size fits: the smallest class, '{smallest['label']}', has only "
                              f"{smallest['count']} labelled examples in the training split (sizes asked: "
                              f"{', '.join(map(str, sorted(cfg.sizes)))} a class)")
    sliced = cap_test(test, cfg.test_cap)
    labels = sorted(set(train["label"]) | set(sliced["label"]))
    result = LabelCurveResult(models=list(cfg.models), sizes=sizes, skipped_sizes=skipped, seeds=cfg.seeds,
                              smallest_class=smallest, n_test=len(sliced), test_rows=len(test))
    device = curve_device(cfg)
    units = len(sizes) * len(cfg.models) * cfg.seeds
    texts = sliced["text"].tolist()
    # Size first: after the first pass every model has a point, so a partial chart already compares them.
    for size in sizes:
        for seed in range(cfg.seeds):
            sample = sample_per_class(train, size, seed)
            for model in cfg.models:
                _stop(should_stop)
                done = len(result.points)
                text = f"{model_label(model)} on {size} labels a class (seed {seed}) · {done + 1} of {units}"
                on_progress(done / units, text)
                kind = registry.get_kind(model)
                trainer: Trainer = registry.resolve(kind.curve)
                predicted, seconds = trainer(
                    sample, texts, labels, seed, cfg, device=device if kind.uses_gpu else "cpu",
                    on_fraction=lambda f, d=done, t=text: on_progress((d + min(f, 1.0)) / units, t),
                    should_stop=should_stop)
                result.points.append({"model": model, "size": size, "seed": seed,
                                      "macro_f1": macro_f1(sliced["label"], predicted), "train_s": round(seconds, 2)})
                on_point(result)
    result.done = True
    on_progress(1.0, "done")
    return result


def _splits(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    missing = {"text", "label", "split"} - set(frame.columns)
    if missing:
        raise LabelCurveError(f"the frame lacks column(s) {', '.join(sorted(missing))}")
    rows = frame[frame["label"].notna()]
    rows = pd.DataFrame({"text": rows["text"].fillna("").astype(str), "label": rows["label"].astype(str),
                         "split": rows["split"].astype(str)})
    train = rows[rows["split"] == "train"].reset_index(drop=True)
    test = rows[rows["split"] == "test"]
    if test.empty:  # a dataset without a test split is scored on its validation split, as runs are
        test = rows[rows["split"] == "validation"]
    if test.empty:
        raise LabelCurveError("the dataset has no labelled test or validation rows to score the curve on")
    if train["label"].nunique() < 2:
        raise LabelCurveError("the training split needs labelled examples of at least two different labels")
    return train, test.reset_index(drop=True)


def curve_device(cfg: LabelCurveConfig) -> str:
    """Where SetFit and the Transformer train (cfg.device resolved); TF-IDF alone needs only the CPU."""
    if not any(registry.get_kind(m).uses_gpu for m in cfg.models):
        return "cpu"

    return resolve(cfg.device)


def _stop(should_stop: Callable[[], bool]) -> None:
    if should_stop():
        raise LabelCurveCancelled()


# --- reading a curve ------------------------------------------------------------------------------------

def aggregate(points: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (model, size): mean and std of macro-F1 over the seeds scored so far, in size order."""
    groups: dict[tuple[str, int], list[float]] = {}
    for p in points:
        groups.setdefault((str(p["model"]), int(p["size"])), []).append(float(p["macro_f1"]))
    order = {m: i for i, m in enumerate(LabelCurveConfig().models)}
    return [{"model": m, "label": model_label(m), "size": k, "mean": float(np.mean(v)),
             "std": float(np.std(v)), "n": len(v)}
            for (m, k), v in sorted(groups.items(), key=lambda item: (order.get(item[0][0], 99), item[0][1]))]


def read_curve(curve: Mapping[str, Any]) -> str:
    """One plain sentence on what the curve says about labelling more, from a LabelCurveResult.to_dict()."""
    rows = aggregate(curve.get("points") or [])
    smallest = curve.get("smallest_class") or {}
    skipped = list(curve.get("skipped_sizes") or [])
    tail = (f" {', '.join(map(str, skipped))} a class could not be tried: the smallest class, "
            f"'{smallest.get('label')}', has {smallest.get('count')} labelled examples in the training split."
            if skipped else "")
    sizes = sorted({r["size"] for r in rows})
    if len(sizes) < 2:
        if not rows:
            return "No scores yet." + tail
        return f"Only {sizes[0]} labels a class could be scored, so there is no trend to read yet." + tail
    low, high = sizes[-2], sizes[-1]
    at = {(r["model"], r["size"]): r["mean"] for r in rows}
    best = max((m for m, k in at if k == high), key=lambda m: at[(m, high)])
    if (best, low) not in at:
        return f"{model_label(best)} scores {at[(best, high)]:.2f} macro-F1 at {high} labels a class." + tail
    gain = at[(best, high)] - at[(best, low)]
    name = model_label(best)
    if gain >= PAYS_OFF:
        head = (f"{name} gains {gain:.2f} macro-F1 from {low} to {high} labels a class: labelling more is likely "
                "to pay off")
    else:
        head = f"{name} is flat from {low} to {high} labels a class ({gain:+.2f} macro-F1): more labels buy little"
    noise = " (one seed: a few points either way can be chance)" if int(curve.get("seeds") or 1) == 1 else ""
    return head + noise + "." + tail


def is_small_training_set(model_kind: str, train_counts: Mapping[str, int]) -> bool:
    """Whether a run's question is "should we label more?": any SetFit run (the few-shot kind exists for that),
    or a training split averaging at most the curve's largest size (64) labels a class. A run trained on more
    is already past the curve's last point, so the curve cannot say what more labels would buy it."""
    kind = registry.find_kind(model_kind)
    if kind is not None and kind.few_shot:
        return True
    counts = [int(v) for v in train_counts.values()]
    return bool(counts) and sum(counts) / len(counts) <= max(LabelCurveConfig().sizes)
