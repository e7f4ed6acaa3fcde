"""Training core: configs, batching, the loop (early stopping, resume, OOM fallback) and each family on tiny data.

Runs execute_run in-process with a recording context; tests/test_worker_runs.py covers the worker process.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from core.runs.context import RunContext
from core.runs.files import RunFiles
from core.runs.worker import WorkerContext
from core.text.batching import TokenBatches, bucketed_order
from core.text.config import TrainConfig, TrainingError, build_config
from core.text.executor import execute_run, execute_tfidf_run
from core.text.loop import train_classifier, with_oom_fallback
from db.enums import TaskKind


@dataclass
class RecordingContext:
    """The RunContext surface execute_run uses, recording instead of writing to the database."""

    model_kind: str
    config: dict[str, Any]
    dataset_id: int
    artifact_dir: Path
    rank: int = 0
    world_size: int = 1
    run_id: int = 0
    task: TaskKind = TaskKind.CLASSIFICATION
    stop_after_progress: int | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    progress_texts: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    device: str | None = None
    cancelled: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def files(self) -> RunFiles:
        return RunFiles(self.artifact_dir)

    def dataset(self):  # noqa: ANN201
        from db import datasets as dataset_queries
        from db import session_scope

        with session_scope() as s:
            ds = dataset_queries.get_dataset(s, self.dataset_id)
            s.expunge(ds)
            return ds

    def progress(self, fraction: float, text: str, *, force: bool = False) -> None:
        self.progress_texts.append(text)

    def log_metric(self, name: str, value: float, *, step: int = 0, epoch: float | None = None,
                   split: str = "train") -> None:
        self.metrics.append({"name": name, "value": value, "step": step, "epoch": epoch, "split": split})

    def should_stop(self) -> bool:
        steps = sum(t.startswith("epoch") and "step" in t for t in self.progress_texts)
        return self.stop_after_progress is not None and steps >= self.stop_after_progress

    def raise_if_cancelled(self) -> None:
        from core.runs.worker import RunCancelled

        if self.cancelled or self.should_stop():
            raise RunCancelled()

    def set_device(self, device: str) -> None:
        self.device = device

    def add_event(self, event: dict[str, Any]) -> None:
        self.events.append(event)


def make_ctx(tmp_path: Path, dataset_id: int, kind: str, **options: Any) -> RecordingContext:
    config = build_config(kind, options)
    return RecordingContext(model_kind=kind, config=config, dataset_id=dataset_id, artifact_dir=tmp_path / "run")


def _shape_of(cls: type) -> dict[str, Any]:
    """The executor-facing members of `cls`: data fields by name, properties as such, methods by signature."""
    names = set(RunContext.__annotations__) | {n for n in vars(RunContext) if not n.startswith("_")}
    shape: dict[str, Any] = {}
    for name in sorted(names):
        member = inspect.getattr_static(cls, name, None)
        if isinstance(member, property):
            shape[name] = "property"
        elif callable(member):
            shape[name] = [(p.name, p.kind, p.default) for p in inspect.signature(member).parameters.values()]
        else:
            shape[name] = "field" if name in getattr(cls, "__dataclass_fields__", vars(cls).get("__annotations__", {}))\
                else None
    return shape


@pytest.mark.parametrize("implementation", [RecordingContext, WorkerContext])
def test_contexts_an_executor_gets_have_the_run_context_shape(implementation: type, tmp_path: Path) -> None:
    """The worker's context and this file's recording double both implement core.runs.context.RunContext."""
    expected = {name: ("field" if kind is None else kind) for name, kind in _shape_of(RunContext).items()}
    assert _shape_of(implementation) == expected
    ctx: RunContext = implementation(run_id=1, task=TaskKind.CLASSIFICATION, model_kind="tfidf", config={},
                                     dataset_id=1, artifact_dir=tmp_path)
    assert isinstance(ctx, RunContext)


# --- configs ---------------------------------------------------------------------------------------

def test_build_config_defaults_per_family() -> None:
    assert build_config("transformer", {})["learning_rate"] == 1e-4
    lstm = build_config("lstm", {"epochs": 2})
    assert lstm["learning_rate"] == 2e-3 and lstm["epochs"] == 2 and lstm["batch_size"] == 32


@pytest.mark.parametrize("options, fragment", [
    ({"epochs": 0}, "epochs"), ({"batch_size": -1}, "batch_size"), ({"learning_rate": 0}, "learning_rate"),
    ({"device": "tpu"}, "device"), ({"warmup_ratio": 1.5}, "warmup_ratio"), ({"k": 10}, "k"),
    ({"epochs": 2.5}, "epochs"),
])
def test_build_config_rejects_bad_values(options: dict, fragment: str) -> None:
    with pytest.raises(TrainingError, match=fragment):
        build_config("transformer", options)


def test_build_config_rejects_unknown_family() -> None:
    with pytest.raises(TrainingError, match="unknown model"):
        build_config("xgboost", {})


# --- batching --------------------------------------------------------------------------------------

def test_bucketed_batches_cover_every_example_once_with_less_padding() -> None:
    rng = np.random.default_rng(0)
    ids = [[1] * int(n) for n in rng.integers(3, 60, size=1000)]
    batches = TokenBatches(ids, np.zeros(1000, dtype=int), 0, 32, seed=1)
    order = np.concatenate(batches.index_batches(0))
    assert sorted(order.tolist()) == list(range(1000))
    random_padding = sum(len(b) * max(len(ids[i]) for i in b)
                         for b in np.array_split(rng.permutation(1000), 1000 // 32))
    assert batches.padded_tokens() < 0.8 * random_padding
    assert [b.tolist() for b in bucketed_order(batches.lengths, 32, 5)] != \
        [b.tolist() for b in bucketed_order(batches.lengths, 32, 6)]  # reshuffled per epoch


def test_ddp_shards_are_disjoint_and_equal_in_count() -> None:
    ids = [[1] * (i % 17 + 1) for i in range(101)]
    ranks = [TokenBatches(ids, None, 0, 8, seed=3, rank=r, world_size=2).index_batches(0) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1])
    seen = [i for r in ranks for b in r for i in b.tolist()]
    assert sorted(set(seen)) == list(range(101))


def test_collate_pads_to_longest_in_batch() -> None:
    batches = TokenBatches([[5, 6, 7], [8]], np.array([0, 1]), 0, 2, shuffle=False)
    tensors = batches.collate(np.array([0, 1]))
    assert tensors["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert tensors["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


# --- the loop on a tiny bag-of-words model (fast) --------------------------------------------------

@dataclass
class Out:
    logits: torch.Tensor
    loss: torch.Tensor | None = None


class BagOfWords(nn.Module):
    def __init__(self, vocab: int = 50, num_labels: int = 2, fail_above: int | None = None) -> None:
        super().__init__()
        self.num_labels, self.fail_above = num_labels, fail_above
        self.embedding = nn.EmbeddingBag(vocab, 16, mode="mean")
        self.head = nn.Linear(16, num_labels)
        self.batch_sizes: list[int] = []

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: Any) -> Out:
        self.batch_sizes.append(len(input_ids))
        if self.training and self.fail_above and len(input_ids) > self.fail_above:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return Out(logits=self.head(self._masked(input_ids, attention_mask.float())))

    def _masked(self, input_ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        emb = self.embedding.weight[input_ids]  # B, T, 16
        return (emb * weights[..., None]).sum(1) / weights.sum(1, keepdim=True)


def token_data(n: int, seed: int) -> TokenBatches:
    # label 1 texts contain token 7, label 0 texts token 8; the rest is noise of varying length
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n)
    ids = [[7 if y else 8] + rng.integers(10, 50, size=int(rng.integers(1, 12))).tolist() for y in labels]
    return TokenBatches(ids, labels, 0, 16, seed=seed)


def tiny_cfg(**kw: Any) -> TrainConfig:
    return TrainConfig(**{"epochs": 3, "learning_rate": 0.05, "device": "cpu", "warmup_ratio": 0.0, **kw})


def test_loop_learns_and_reports() -> None:
    torch.manual_seed(0)
    steps, epochs = [], []
    result = train_classifier(BagOfWords(), token_data(300, 1), token_data(100, 2).with_batch_size(64),
                              tiny_cfg(), on_step=steps.append, on_epoch=epochs.append)
    assert result.state.best_metric > 0.9
    assert [s.step for s in steps] == list(range(1, len(steps) + 1))
    assert len(steps) == 3 * 19 and steps[-1].total_steps == 57
    assert [e.epoch for e in epochs] == [1, 2, 3] and result.samples_per_s > 0


def test_loop_gradient_accumulation_counts_optimizer_steps() -> None:
    steps = []
    train_classifier(BagOfWords(), token_data(300, 1), token_data(50, 2), tiny_cfg(epochs=1, grad_accum_steps=4),
                     on_step=steps.append)
    assert len(steps) == 5  # 19 micro-batches → ceil(19 / 4) optimizer steps


def test_loop_early_stopping_keeps_the_best_weights() -> None:
    # Validation labels are noise, so macro-F1 cannot keep improving: patience 1 stops early.
    val = token_data(100, 2)
    noisy = TokenBatches(val.ids, np.random.default_rng(0).integers(0, 2, 100), 0, 64, shuffle=False)
    model = BagOfWords()
    result = train_classifier(model, token_data(300, 1), noisy, tiny_cfg(epochs=8, patience=1))
    assert result.state.epoch < 8 and result.state.bad_epochs == 1
    assert result.history[result.state.best_epoch - 1].macro_f1 == result.state.best_metric


def test_loop_stops_within_one_step_when_asked() -> None:
    steps = []
    result = train_classifier(BagOfWords(), token_data(300, 1), token_data(50, 2), tiny_cfg(),
                              on_step=steps.append, should_stop=lambda: len(steps) >= 3)
    assert result.stopped and len(steps) == 3


def test_resume_continues_the_step_count(tmp_path: Path) -> None:
    ckpt = tmp_path / "checkpoint"
    torch.manual_seed(0)
    first = train_classifier(BagOfWords(), token_data(300, 1), token_data(50, 2), tiny_cfg(epochs=1),
                             checkpoint_dir=ckpt)
    assert (ckpt / "model.safetensors").exists() and (ckpt / "trainer_state.pt").exists()
    steps, events = [], []
    second = train_classifier(BagOfWords(), token_data(300, 1), token_data(50, 2), tiny_cfg(epochs=2),
                              checkpoint_dir=ckpt, resume_dir=ckpt, on_step=steps.append, on_event=events.append)
    assert steps[0].step == first.state.step + 1
    assert second.state.epoch == 2 and [h.epoch for h in second.history] == [1, 2]
    assert events[0]["event"] == "resumed"
    # the learning-rate schedule continues too (no new warm-up at the resumed step)
    assert steps[0].learning_rate < tiny_cfg().learning_rate


def test_oom_halves_batch_and_doubles_accumulation() -> None:
    events, model = [], BagOfWords(fail_above=4)
    result = train_classifier(model, token_data(200, 1), token_data(50, 2), tiny_cfg(epochs=1), on_event=events.append)
    # only the retries: on a busy box the CPU thread governor reports its thread count as an event too
    assert [e["batch_size"] for e in events if e["event"] == "oom_retry"] == [8, 4]
    assert result.batch_size == 4 and result.grad_accum_steps == 4
    # rewound and retried: the same 13 optimizer steps and 200 samples as at batch 16
    assert result.state.epoch == 1 and result.state.step == 13 and result.state.samples == 200


class OomAbove(BagOfWords):
    """Raises CUDA out-of-memory (as torch does, on the CPU too) for training batches above `train_limit` and
    evaluation batches above `eval_limit`; records the sizes that did run."""

    def __init__(self, train_limit: int, eval_limit: int = 10**9) -> None:
        super().__init__()
        self.train_limit, self.eval_limit = train_limit, eval_limit
        self.trained: list[tuple[int, int]] = []  # (epoch seen by on_epoch so far, batch size) per training batch
        self.epochs_done = 0

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kw: Any) -> Out:
        limit = self.train_limit if self.training else self.eval_limit
        if len(input_ids) > limit:
            raise torch.OutOfMemoryError(f"CUDA out of memory: batch {len(input_ids)} (simulated)")
        if self.training:
            self.trained.append((self.epochs_done, len(input_ids)))
        return super().forward(input_ids, attention_mask, **kw)


def test_oom_result_is_what_ran() -> None:
    events, model = [], OomAbove(train_limit=4)
    result = train_classifier(model, token_data(200, 1), token_data(50, 2), tiny_cfg(epochs=2, patience=0),
                              on_event=events.append, on_epoch=lambda log: setattr(model, "epochs_done", log.epoch))
    ran = {size for _, size in model.trained}
    assert max(ran) == result.batch_size == 4 and result.grad_accum_steps == 4
    retries = [e for e in events if e["event"] == "oom_retry"]  # not the governor's cpu_threads on a busy box
    assert (retries[-1]["batch_size"], retries[-1]["grad_accum_steps"]) == (result.batch_size, result.grad_accum_steps)
    assert result.attempts == ((16, 1, 0), (8, 2, 0), (4, 4, 0))
    assert result.state.samples == 400 and result.state.step == 2 * 13


def test_oom_in_a_later_epoch_records_both_sizes() -> None:
    model = OomAbove(train_limit=10**9)

    def on_epoch(log: Any) -> None:
        model.epochs_done = log.epoch
        model.train_limit = 8  # memory got tighter after the first epoch

    result = train_classifier(model, token_data(200, 1), token_data(50, 2), tiny_cfg(epochs=2, patience=0),
                              on_epoch=on_epoch)
    assert (result.batch_size, result.grad_accum_steps) == (8, 2)
    assert result.attempts == ((16, 1, 0), (8, 2, 1))
    assert max(size for epoch, size in model.trained if epoch == 0) == 16
    assert max(size for epoch, size in model.trained if epoch == 1) == 8


def test_oom_in_evaluation_shrinks_the_evaluation_batch_too() -> None:
    # Validation batches of 64 do not fit, training ones of 16 do: the retry must shrink evaluation as well,
    # or every attempt fails the same way until batch 1.
    model = OomAbove(train_limit=10**9, eval_limit=32)
    result = train_classifier(model, token_data(200, 1), token_data(50, 2).with_batch_size(64), tiny_cfg(epochs=1))
    assert (result.batch_size, result.grad_accum_steps) == (8, 2) and result.state.epoch == 1


def test_executor_reports_the_batch_that_ran_after_oom(tmp_path: Path, classification_dataset: int,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from core.text import executor

    real_build = executor.build_model

    def build_failing_above_4(family: str, cfg: TrainConfig, labels: Any) -> tuple[Any, Any]:
        model, tokenizer = real_build(family, cfg, labels)
        forward = model.forward

        def guarded(input_ids: torch.Tensor, *args: Any, **kw: Any) -> Any:
            if model.training and len(input_ids) > 4:
                raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
            return forward(input_ids, *args, **kw)

        model.forward = guarded
        return model, tokenizer

    monkeypatch.setattr(executor, "build_model", build_failing_above_4)
    ctx = make_ctx(tmp_path, classification_dataset, "lstm", epochs=1, batch_size=16, max_length=32, device="cpu",
                   init_embeddings=False)
    metrics = execute_run(ctx)
    assert (metrics["trained_batch_size"], metrics["trained_grad_accum_steps"]) == (4, 4)
    retries = [e for e in ctx.events if e["event"] == "oom_retry"]
    trained = [e for e in ctx.events if e["event"] == "trained_with"]
    assert [(e["batch_size"], e["grad_accum_steps"]) for e in retries] == [(8, 2), (4, 4)]
    assert len(trained) == 1 and (trained[0]["batch_size"], trained[0]["grad_accum_steps"]) == (4, 4)
    assert "configured 16 and 1" in trained[0]["message"]


def test_oom_at_batch_one_names_the_knobs() -> None:
    def attempt(batch_size: int, accum: int):  # noqa: ANN202
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    events = []
    with pytest.raises(TrainingError, match="batch size 1.*max length 128"):
        with_oom_fallback(attempt, 4, 1, on_event=events.append, max_length=128)
    assert [(e["batch_size"], e["grad_accum_steps"]) for e in events] == [(2, 2), (1, 4)]


# --- each family on the tiny sentiment set (real training) ----------------------------------------

def check_artifacts(ctx: RecordingContext, metrics: dict[str, Any], family: str) -> None:
    folder = ctx.artifact_dir
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["kind"] == family and meta["labels"] == ["negative", "positive"]
    assert meta["dataset_id"] == ctx.dataset_id
    for split in ("validation", "test"):
        preds = pd.read_parquet(folder / "predictions" / f"{split}.parquet")
        # row_id: the dataset's stable row id, so runs on one test set are compared row by row
        assert list(preds.columns) == ["text", "label", "row_id", "pred", "confidence", "proba"]
        assert len(preds) == 18 and preds["row_id"].is_unique
        assert np.allclose([sum(p) for p in preds["proba"]], 1.0)
        assert np.allclose(preds["confidence"], [max(p) for p in preds["proba"]])
    assert {"accuracy", "macro_f1", "weighted_f1", "macro_precision"} <= set(metrics)
    assert metrics["split"] == "test" and metrics["labels"] == ["negative", "positive"]
    assert set(metrics["reports"]) == {"validation", "test"}


def test_tfidf_learns(tmp_path: Path, classification_dataset: int) -> None:
    ctx = make_ctx(tmp_path, classification_dataset, "tfidf")
    metrics = execute_tfidf_run(ctx)  # the tfidf entry's executor
    check_artifacts(ctx, metrics, "tfidf")
    assert metrics["macro_f1"] > 0.8
    assert (ctx.artifact_dir / "model" / "model.skops").exists()


def test_transformer_learns_and_reloads_in_a_pipeline(tmp_path: Path, classification_dataset: int) -> None:
    ctx = make_ctx(tmp_path, classification_dataset, "transformer", epochs=1, max_length=32, batch_size=8,
                   learning_rate=2e-4, device="cpu")
    metrics = execute_run(ctx)
    check_artifacts(ctx, metrics, "transformer")
    assert metrics["reports"]["validation"]["macro_f1"] > 0.8 and metrics["macro_f1"] > 0.8
    assert ctx.device == "cpu" and metrics["train_samples_per_s"] > 0
    assert any(t.startswith("epoch 1/1 · step") and "samples/s · ETA" in t for t in ctx.progress_texts)
    names = {(m["name"], m["split"]) for m in ctx.metrics}
    assert {("train_loss", "train"), ("learning_rate", "train"), ("macro_f1", "validation")} <= names
    assert (ctx.artifact_dir / "checkpoint" / "trainer_state.pt").exists()

    from transformers import pipeline

    classify = pipeline("text-classification", model=str(ctx.artifact_dir / "model"), device="cpu")
    out = classify(["love this wonderful great product", "awful broken terrible service"])
    assert [o["label"] for o in out] == ["positive", "negative"]


def test_lstm_learns(tmp_path: Path, classification_dataset: int) -> None:
    ctx = make_ctx(tmp_path, classification_dataset, "lstm", epochs=4, batch_size=16, max_length=32, device="cpu")
    metrics = execute_run(ctx)
    check_artifacts(ctx, metrics, "lstm")
    assert metrics["reports"]["validation"]["macro_f1"] > 0.8

    from core.text.lstm import load_lstm

    model, _ = load_lstm(ctx.artifact_dir / "model")
    assert model.labels == ["negative", "positive"]


def test_cancel_in_process_raises_run_cancelled(tmp_path: Path, classification_dataset: int) -> None:
    from core.runs.worker import RunCancelled

    ctx = make_ctx(tmp_path, classification_dataset, "lstm", epochs=3, batch_size=8, max_length=32, device="cpu",
                   init_embeddings=False)
    ctx.stop_after_progress = 2
    with pytest.raises(RunCancelled):
        execute_run(ctx)
    assert not (ctx.artifact_dir / "meta.json").exists()


# --- pre-flight estimate ---------------------------------------------------------------------------

def test_estimate_run_measures_a_probe(classification_dataset: int, launches: list) -> None:
    from core.text.estimate import estimate_run, estimate_tfidf_run
    from db import datasets as dataset_queries
    from db import read_scope

    with read_scope() as s:
        dataset = dataset_queries.get_dataset(s, classification_dataset)
    options = {"batch_size": 8, "max_length": 32, "device": "cpu", "init_embeddings": False}
    short = estimate_run(dataset, "lstm", {**options, "epochs": 1})
    assert short.seconds > 0 and short.samples_per_s > 0 and short.device == "cpu"
    assert short.peak_memory_bytes is None and short.warning is None  # memory is only probed on CUDA
    long = estimate_run(dataset, "lstm", {**options, "epochs": 50})
    assert long.seconds > short.seconds
    assert estimate_tfidf_run(dataset, "tfidf", {}).seconds > 0
    with pytest.raises(TrainingError, match="no longer exists"):
        estimate_tfidf_run(None, "tfidf", {})


def test_unreachable_model_id_is_a_clear_error(tmp_path: Path, classification_dataset: int) -> None:
    from core.errors import ProtolabError

    ctx = make_ctx(tmp_path, classification_dataset, "transformer", model_id="no-such-org/no-such-model",
                   device="cpu")
    with pytest.raises(ProtolabError, match="could not load model 'no-such-org/no-such-model'"):
        execute_run(ctx)
