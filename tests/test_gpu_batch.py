"""The batch size a GPU run picks from a memory probe: candidates, the choice from measured peaks, the learning-rate
scaling, the CLI's default, and that the CPU keeps the configured batch. The probe itself needs CUDA (marked).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.cli import CliError
from core.cli.train import _auto_batch_options, _batch_size
from core.text.config import build_config
from core.text.executor import execute_run
from core.text.gpu_batch import BatchChoice, batch_candidates, pick_batch_size, scaled_learning_rate
from tests.test_training import make_ctx


def test_candidates_double_up_to_the_cap_and_keep_enough_steps() -> None:
    assert batch_candidates(32, 100_000) == [32, 64, 128, 256]
    assert batch_candidates(32, 1_000) == [32, 64]  # 1,000 / 8 steps = 125 at most
    assert batch_candidates(32, 100) == [32]  # never below the configured batch
    assert batch_candidates(48, 100_000, cap=200) == [48, 96, 192]


def test_pick_the_largest_size_under_the_headroom() -> None:
    gib = 2**30
    assert pick_batch_size({32: 2 * gib, 64: 4 * gib, 128: 9 * gib, 256: None}, total_bytes=10 * gib) == 64
    assert pick_batch_size({32: 2 * gib, 64: None, 128: 3 * gib}, total_bytes=10 * gib) == 32  # stop at the 1st OOM
    assert pick_batch_size({32: 1, 64: 2, 128: 3, 256: 4}, total_bytes=10) == 256
    assert pick_batch_size({32: None}, total_bytes=10) == 32  # nothing fits: the OOM fallback takes over


def test_learning_rate_scales_with_the_square_root_of_the_batch() -> None:
    assert scaled_learning_rate(1e-4, 32, 128) == pytest.approx(2e-4)
    assert scaled_learning_rate(1e-4, 32, 32) == 1e-4
    choice = BatchChoice(batch_size=128, learning_rate=2e-4, peak_memory_bytes=3 * 2**30,
                         total_memory_bytes=140 * 2**30)
    text = choice.message(32, 1e-4, 128)
    assert "batch size 128 chosen from a GPU memory probe" in text and "3.0 of 140 GiB" in text
    assert "instead of 32" in text and "from 1.0e-04 to 2.0e-04" in text


def test_cli_leaves_the_batch_to_the_probe_unless_given() -> None:
    assert _auto_batch_options("transformer", {}, quiet=True) == {"auto_batch_size": True}
    assert _auto_batch_options("lstm", {"batch_size": 16}, quiet=True) == {}
    options = {"batch_size": "auto"}
    assert _auto_batch_options("lstm", options, quiet=True) == {"auto_batch_size": True} and options == {}
    assert _auto_batch_options("bpr", {}, quiet=True) == {}
    with pytest.raises(CliError, match="auto applies to transformer and lstm"):
        _auto_batch_options("bpr", {"batch_size": "auto"}, quiet=True)
    assert _batch_size("AUTO") == "auto" and _batch_size("64") == 64
    assert build_config("transformer", {"auto_batch_size": True})["auto_batch_size"] is True


def test_the_cpu_keeps_the_configured_batch(tmp_path: Path, classification_dataset: int) -> None:
    ctx = make_ctx(tmp_path, classification_dataset, "lstm", epochs=1, batch_size=16, max_length=32, device="cpu",
                   init_embeddings=False, auto_batch_size=True)
    metrics = execute_run(ctx)
    assert metrics["trained_batch_size"] == 16
    assert not [e for e in ctx.events if e["event"] == "auto_batch"]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_probe_picks_a_candidate_and_restores_the_weights() -> None:
    from core.text.config import config_from_dict
    from core.text.gpu_batch import choose_gpu_batch
    from core.text.lstm import LSTMConfig, build_lstm

    model = build_lstm(1000, 2, 0, LSTMConfig(embed_dim=32, hidden_dim=32))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = config_from_dict(build_config("lstm", {"batch_size": 16, "max_length": 32}))
    choice = choose_gpu_batch(model, cfg, n_train=10_000, device="cuda", token_id=5)
    assert choice.batch_size in batch_candidates(16, 10_000) and choice.peak_memory_bytes
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k].cpu()) for k in before)


def test_progress_shows_gpu_memory_and_samples_per_second(tmp_path: Path) -> None:
    from core.text.config import TrainConfig
    from core.text.executor import Reporter
    from core.text.loop import StepLog
    from tests.test_training import RecordingContext

    ctx = RecordingContext(model_kind="transformer", config={}, dataset_id=0, artifact_dir=tmp_path)
    reporter = Reporter(ctx, TrainConfig(epochs=2))
    common = {"total_steps": 10, "epoch": 0, "learning_rate": 1e-4, "samples_per_s": 1234.0, "eta_s": 5.0}
    reporter.on_step(StepLog(step=5, epoch_float=0.5, loss=0.7, gpu_memory_bytes=3 * 2**30, **common))
    reporter.on_step(StepLog(step=6, epoch_float=0.6, loss=None, **common))  # between loss reads
    assert ctx.progress_texts == ["epoch 1/2 · step 5/10 · 1234 samples/s · GPU 3.0 GiB · ETA 5s",
                                  "epoch 1/2 · step 6/10 · 1234 samples/s · GPU 3.0 GiB · ETA 5s"]
    logged = {(m["name"], m["step"]): m["value"] for m in ctx.metrics}
    assert logged == {("train_loss", 5): 0.7, ("learning_rate", 5): 1e-4, ("samples_per_s", 5): 1234.0,
                      ("gpu_memory_gib", 5): 3.0}
