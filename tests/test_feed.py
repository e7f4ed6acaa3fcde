"""Feeding the loop on a GPU, checked on the CPU: transfer decisions per device, width rounding, whole-array
collate, the background prefetch (order, errors, shutdown), no per-step host read of the loss, TF32 scoping.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from core import settings
from core.text import loop as loop_module
from core.text.batching import TokenBatches
from core.text.feed import LossMeter, Prefetcher, host_batch, tf32_matmuls, transfer_plan
from core.text.loop import train_classifier, training_precision
from tests.test_training import BagOfWords, Out, tiny_cfg, token_data

cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def reference_collate(batches: TokenBatches, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The plain per-row padding the vectorised collate must reproduce."""
    width = batches.width(idx)
    ids = torch.full((len(idx), width), batches.pad_id, dtype=torch.long)
    mask = torch.zeros((len(idx), width), dtype=torch.long)
    for row, i in enumerate(idx):
        seq = batches.ids[i]
        ids[row, :len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        mask[row, :len(seq)] = 1
    return ids, mask


def ragged(n: int = 500, seed: int = 0) -> TokenBatches:
    rng = np.random.default_rng(seed)
    ids = [rng.integers(1, 99, size=int(rng.integers(0, 40))).tolist() for _ in range(n)]
    return TokenBatches(ids, rng.integers(0, 3, n), 0, 32, seed=seed)


# --- decisions per device (pure) -------------------------------------------------------------------

@pytest.mark.parametrize(("device", "pinned", "multiple"), [
    ("cuda", True, 8), ("cuda:1", True, 8), ("cpu", False, 1), ("mps", False, 1)])
def test_transfer_plan_pins_and_rounds_only_on_cuda(device: str, pinned: bool, multiple: int) -> None:
    plan = transfer_plan(device)
    assert (plan.pin_memory, plan.non_blocking, plan.pad_multiple) == (pinned, pinned, multiple)


def test_host_batch_pins_only_when_the_plan_asks() -> None:
    b = ragged(50)
    idx = b.index_batches(0)[0]
    calls: list[int] = []

    def collate(i: np.ndarray) -> dict[str, Any]:
        calls.append(len(i))
        return b.collate(i)

    cpu = host_batch(collate, idx, transfer_plan("cpu"))
    assert calls == [len(idx)] and not any(t.is_pinned() for t in cpu.values())
    if not torch.cuda.is_available():  # pinning needs a CUDA driver: the request itself is what we can see
        with pytest.raises(RuntimeError):
            host_batch(collate, idx, transfer_plan("cuda"))


@pytest.mark.cuda
@cuda_only
def test_cuda_batches_are_pinned_and_copied_asynchronously() -> None:
    b = ragged(50)
    plan = transfer_plan("cuda")
    host = host_batch(b.collate, b.index_batches(0)[0], plan)
    assert all(t.is_pinned() for t in host.values())
    from core.text.feed import to_device

    moved = to_device(host, "cuda", plan)
    assert all(t.is_cuda for t in moved.values())
    assert torch.equal(moved["input_ids"].cpu(), host["input_ids"])


def test_cuda_precision_by_model_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROTOLAB_TRAIN_PRECISION", raising=False)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert training_precision("cuda", 22_000_000) == (None, None)  # MiniLM: fp32 + TF32 beats autocast
    assert training_precision("cuda", 110_000_000)[0] is torch.bfloat16
    monkeypatch.setenv("PROTOLAB_TRAIN_PRECISION", "bf16")
    assert training_precision("cuda", 22_000_000)[0] is torch.bfloat16
    monkeypatch.setenv("PROTOLAB_TRAIN_PRECISION", "fp32")
    assert training_precision("cuda", 110_000_000) == (None, None)


def test_tf32_is_scoped_to_cuda_training() -> None:
    before = torch.backends.cuda.matmul.fp32_precision
    with tf32_matmuls("cpu"):
        assert torch.backends.cuda.matmul.fp32_precision == before
    with tf32_matmuls("cuda"):
        assert torch.backends.cuda.matmul.fp32_precision == "tf32"
    assert torch.backends.cuda.matmul.fp32_precision == before


# --- collate and widths ----------------------------------------------------------------------------

def test_vectorised_collate_matches_per_row_padding() -> None:
    b = ragged(500)
    for batches in (b, b.with_pad_multiple(8)):
        for idx in batches.index_batches(0) + batches.index_batches(1):
            got = batches.collate(idx)
            ids, mask = reference_collate(batches, idx)
            assert torch.equal(got["input_ids"], ids) and torch.equal(got["attention_mask"], mask)
            assert got["input_ids"].dtype == torch.long and torch.equal(got["labels"],
                                                                        torch.as_tensor(b.labels[idx]))


def test_widths_round_up_to_the_pad_multiple() -> None:
    b = ragged(500).with_pad_multiple(8)
    for idx in b.index_batches(0):
        got = b.collate(idx)
        longest = int(b.lengths[idx].max())
        assert got["input_ids"].shape[1] % 8 == 0 and longest <= got["input_ids"].shape[1] < longest + 8
        assert got["attention_mask"].sum(1).tolist() == b.lengths[idx].tolist()
    plain = ragged(500)
    assert plain.padded_tokens() < b.padded_tokens()  # the CPU keeps exact widths: no padding work added
    assert all(plain.collate(i)["input_ids"].shape[1] == plain.lengths[i].max() for i in plain.index_batches(0))


def record_widths(model: BagOfWords) -> list[int]:
    widths: list[int] = []
    original = model.forward

    def forward(input_ids: torch.Tensor, attention_mask: torch.Tensor, **kw: Any) -> Out:
        widths.append(input_ids.shape[1])
        return original(input_ids, attention_mask, **kw)

    model.forward = forward  # type: ignore[method-assign]
    return widths


def test_the_loop_keeps_exact_widths_on_the_cpu() -> None:
    model = BagOfWords()
    widths = record_widths(model)
    train_classifier(model, token_data(100, 1), token_data(30, 2), tiny_cfg(epochs=1))
    assert any(w % 8 for w in widths)


@pytest.mark.cuda
@cuda_only
def test_the_loop_rounds_widths_to_8_on_cuda() -> None:
    model = BagOfWords()
    widths = record_widths(model)
    train_classifier(model, token_data(100, 1), token_data(30, 2), tiny_cfg(epochs=1, device="cuda"))
    assert widths and all(w % 8 == 0 for w in widths)


# --- prefetch --------------------------------------------------------------------------------------

def test_prefetch_yields_every_item_in_order_whatever_the_speeds() -> None:
    items = list(range(40))
    for produce_s, consume_s in ((0.0, 0.002), (0.002, 0.0)):
        def make(i: int, delay: float = produce_s) -> int:
            time.sleep(delay * (i % 3))
            return i * i

        got = []
        with Prefetcher(make, items, depth=3) as feed:
            for value in feed:
                time.sleep(consume_s)
                got.append(value)
        assert got == [i * i for i in items]


def test_prefetch_is_bounded() -> None:
    made: list[int] = []
    with Prefetcher(lambda i: made.append(i) or i, list(range(100)), depth=2) as feed:
        first = next(iter(feed))
        time.sleep(0.2)
        assert first == 0 and len(made) <= 4  # the one handed over, the queue's two, one waiting to go in


def test_prefetch_raises_the_producers_error_at_its_item_and_stops() -> None:
    def make(i: int) -> int:
        if i == 5:
            raise ValueError("bad batch 5")
        return i

    got = []
    feed = Prefetcher(make, list(range(10)))
    with pytest.raises(ValueError, match="bad batch 5"), feed:
        for value in feed:
            got.append(value)
    assert got == [0, 1, 2, 3, 4] and not feed.alive


def test_prefetch_thread_ends_when_the_consumer_leaves_early() -> None:
    feed = Prefetcher(lambda i: i, list(range(10_000)), depth=2)
    with pytest.raises(RuntimeError, match="out of memory"), feed:
        for value in feed:
            if value == 3:
                raise RuntimeError("CUDA out of memory (simulated consumer failure)")
    assert not feed.alive


def test_training_with_prefetch_sees_the_unprefetched_batches_in_order() -> None:
    train = token_data(200, 1)
    model = BagOfWords()
    seen: list[torch.Tensor] = []
    original = model.forward

    def forward(input_ids: torch.Tensor, attention_mask: torch.Tensor, **kw: Any) -> Out:
        if model.training:
            seen.append(input_ids.clone())
        return original(input_ids, attention_mask, **kw)

    model.forward = forward  # type: ignore[method-assign]
    train_classifier(model, train, token_data(30, 2), tiny_cfg(epochs=2, patience=0))
    expected = [train.collate(idx)["input_ids"] for epoch in (0, 1) for idx in train.index_batches(epoch)]
    assert len(seen) == len(expected) and all(torch.equal(a, b) for a, b in zip(seen, expected, strict=True))


def test_same_seed_same_weights() -> None:
    def weights() -> torch.Tensor:
        torch.manual_seed(0)
        model = BagOfWords()
        train_classifier(model, token_data(200, 1), token_data(30, 2), tiny_cfg(epochs=2, patience=0))
        return model.head.weight.detach().clone()

    assert torch.equal(weights(), weights())


def test_stopping_leaves_no_prefetch_thread_behind() -> None:
    steps = []
    result = train_classifier(BagOfWords(), token_data(300, 1), token_data(50, 2), tiny_cfg(),
                              on_step=steps.append, should_stop=lambda: len(steps) >= 3)
    assert result.stopped
    assert not [t for t in threading.enumerate() if t.name == "protolab-prefetch"]


# --- no per-step host read of the loss -------------------------------------------------------------

class HostReadCounter(torch.Tensor):
    """A tensor that counts conversions to host values; cross_entropy of its logits returns one too."""

    reads = 0
    READS = {"item", "__float__", "__int__", "__bool__", "tolist", "numpy", "cpu", "__index__"}

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN206
        if getattr(func, "__name__", "") in cls.READS:
            cls.reads += 1
        return super().__torch_function__(func, types, args, kwargs or {})


class CountingBagOfWords(BagOfWords):
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kw: Any) -> Out:
        out = super().forward(input_ids, attention_mask, **kw)
        return Out(logits=out.logits.as_subclass(HostReadCounter) if self.training else out.logits)


def test_loss_is_read_from_the_device_only_at_logging_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop_module, "LOSS_EVERY_STEPS", 4)
    HostReadCounter.reads = 0
    steps = []
    train_classifier(CountingBagOfWords(), token_data(300, 1), token_data(50, 2), tiny_cfg(epochs=2, patience=0),
                     on_step=steps.append)
    total = steps[-1].total_steps
    logged = [s.step for s in steps if s.loss is not None]
    assert total == 38 and logged == [1, 4, 8, 12, 16, 20, 24, 28, 32, 36, 38]
    assert HostReadCounter.reads == len(logged)  # not one per step (38), nor one per micro-batch
    assert all(s.loss > 0 for s in steps if s.loss is not None)


def test_loss_meter_means_what_was_added_since_the_last_read() -> None:
    meter = LossMeter()
    for value in (1.0, 2.0, 3.0):
        meter.add(torch.tensor(value))
    assert meter.read() == pytest.approx(2.0)
    meter.add(torch.tensor(5.0))
    meter.reset()
    meter.add(torch.tensor(4.0))
    assert meter.read() == pytest.approx(4.0) and meter.reads == 2 and meter.read() == 0.0


# --- cancel checks under DDP -----------------------------------------------------------------------

def test_ddp_cancel_check_synchronises_every_few_micro_batches_only(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.distributed as dist

    from core.runs import distributed
    from core.text import executor

    real_broadcast = distributed.broadcast_flag
    broadcasts: list[bool] = []

    def counted(flag: bool, device: str = "cpu") -> bool:  # the real collective, counted
        broadcasts.append(flag)
        return real_broadcast(flag, device)

    monkeypatch.setattr(distributed, "broadcast_flag", counted)

    class Ctx:
        is_main = True
        cancelled = False

        def should_stop(self) -> bool:
            return self.cancelled

    ctx = Ctx()
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        check = executor.stop_check(ctx, "cpu", distributed_run=True, every=5)
        assert [check() for _ in range(12)] == [False] * 12 and len(broadcasts) == 3  # calls 0, 5 and 10
        ctx.cancelled = True
        assert [check() for _ in range(4)] == [False, False, False, True]  # calls 12-14 skip, 15 broadcasts
    finally:
        dist.destroy_process_group()
    single = executor.stop_check(ctx, "cpu", distributed_run=False)
    assert single() is True and len(broadcasts) == 4  # one process: the flag itself, no collective


def test_pad_rows_matches_row_by_row_padding_and_rounds_widths() -> None:
    # Serving (PyTorch and ONNX) pads the rows of a scoring batch with one whole-array scatter; it must give the
    # exact tensors the row-by-row loop it replaced gave, empty rows and a multiple of 8 included.
    from core.text.batching import pad_rows

    rng = np.random.default_rng(0)
    rows = [list(rng.integers(1, 30_000, size=n)) for n in (5, 1, 0, 17, 9)]
    ids, mask = pad_rows(rows, pad_id=0)
    assert ids.shape == mask.shape == (5, 17) and ids.dtype == mask.dtype == np.int64
    for i, row in enumerate(rows):
        assert ids[i, :len(row)].tolist() == row and (ids[i, len(row):] == 0).all()
        assert mask[i].tolist() == [1] * len(row) + [0] * (17 - len(row))
    wide, wide_mask = pad_rows(rows, pad_id=3, pad_multiple=8)
    assert wide.shape == (5, 24) and (wide[:, 17:] == 3).all() and not wide_mask[:, 17:].any()
    assert pad_rows([], pad_id=0)[0].shape == (0, 0)


class _ScriptedCpu:
    """CPU readings for CpuThreadGovernor: each poll sees `others` cores used by other programs over 2 s."""

    def __init__(self, others: list[float], own_cores: float = 1.0) -> None:
        self.others, self.own_cores, self.t, self.busy, self.own = list(others), own_cores, 0.0, 0.0, 0.0

    def __call__(self) -> tuple[float, float, float]:
        sample = (self.t, self.busy, self.own)
        if self.others:
            other = self.others.pop(0)
            self.t += 2.0
            self.busy += 2.0 * (other + self.own_cores)
            self.own += 2.0 * self.own_cores
        return sample


@pytest.fixture
def two_threads() -> Any:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_the_cpu_governor_gives_up_threads_while_other_programs_use_cores(two_threads: None, monkeypatch) -> None:  # noqa: ANN001
    from core.runs.device import CpuThreadGovernor

    changes: list[tuple[int, float]] = []
    governor = CpuThreadGovernor("cpu", every_s=0.0, on_change=lambda t, o: changes.append((t, o)))
    governor.cores = 2
    readings = _ScriptedCpu([0.1, 1.0, 0.9, 0.2, 0.6, 0.4])
    governor._sample = readings  # type: ignore[method-assign]
    governor._last = readings()
    seen = []
    for _ in range(5):
        governor.poll()
        seen.append(torch.get_num_threads())
    # 0.1 core busy elsewhere: keep 2; a whole core: 1; 0.9: 1; back to 0.2: 2; 0.6: 1.
    assert seen == [2, 1, 1, 2, 1]
    assert [t for t, _ in changes] == [1, 2, 1] and changes[0][1] == pytest.approx(1.0)
    governor.restore()
    assert torch.get_num_threads() == 2
    monkeypatch.setenv(settings.ADAPT_THREADS.name, "0")
    assert not CpuThreadGovernor("cpu").enabled and not CpuThreadGovernor("cuda").enabled


def test_a_cpu_run_says_once_that_it_trains_on_fewer_threads(two_threads: None) -> None:
    from core.runs.device import governor_for_run

    events: list[dict] = []
    governor = governor_for_run("cpu", events.append)
    governor.cores, governor.every_s = 2, 0.0
    readings = _ScriptedCpu([1.0, 0.0, 1.2, 1.0])
    governor._sample = readings  # type: ignore[method-assign]
    governor._last = readings()
    for _ in range(4):
        governor.poll()
    assert len(events) == 1 and events[0]["event"] == "cpu_threads" and events[0]["threads"] == 1
    assert "other programs are using 1.0 of this machine's 2 CPU cores: training on 1 thread" in events[0]["message"]
    governor.restore()


def test_the_training_loop_polls_the_governor_every_step_and_restores_the_threads(two_threads: None,
                                                                                  monkeypatch) -> None:  # noqa: ANN001
    from core.runs.device import CpuThreadGovernor

    polls: list[int] = []
    restored: list[bool] = []
    monkeypatch.setattr(CpuThreadGovernor, "poll", lambda self: polls.append(1))
    monkeypatch.setattr(CpuThreadGovernor, "restore", lambda self: restored.append(True))
    train = token_data(64, 1)
    train_classifier(BagOfWords(), train, token_data(16, 2), tiny_cfg(epochs=2))
    assert len(polls) == 2 * len(train.index_batches(0)) and restored == [True]
