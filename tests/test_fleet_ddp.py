"""Team mode on PostgreSQL: two daemons train one run with DDP over two nodes (gloo), and it learns what one
process learns."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.cli.train import with_nodes
from core.settings import run_dir
from core.text.config import build_config
from db import runs as run_queries
from db import session_scope
from db import workers as worker_queries
from db.enums import RunStatus
from tests.fleet_support import Daemons, claimed_by, finished, lstm, store_dataset, wait_for
from tests.helpers import queue_run


@pytest.mark.postgres
@pytest.mark.slow
def test_two_daemons_train_one_run_over_two_nodes(pg_fleet: str, daemons: Daemons) -> None:
    dataset_id = store_dataset()
    # No dropout: then the only difference DDP may make is the order of floating-point sums.
    options = dict(epochs=2, max_length=32, device="cpu", seed=7, learning_rate=5e-3, patience=0, lstm_dropout=0.0,
                   init_embeddings=False)
    daemons.start_live("alpha", "beta")
    single = wait_for(lstm(dataset_id, **{**options, "batch_size": 16}), finished, "finished", 180, daemons)
    assert single.status is RunStatus.COMPLETED, single.error
    # What `protolab train --nodes 2 --gpus 2` queues: one gloo process on each daemon, half the batch each.
    config = with_nodes(build_config("lstm", {**options, "batch_size": 8, "gpus": 2}), 2, "lstm")
    ddp_id = queue_run(dataset_id=dataset_id, model_kind="lstm", config=config)
    ddp = wait_for(ddp_id, finished, "finished", 300, daemons)
    assert ddp.status is RunStatus.COMPLETED, (ddp.error, (run_dir(ddp_id) / "worker.node1.log").read_text()[-2000:])
    assert sorted(claimed_by(ddp)) == ["alpha", "beta"] and ddp.device == "cpu × 2 (DDP)"
    with session_scope() as s:
        claims = worker_queries.claims_of_run(s, ddp_id)
        assert [c.node_rank for c in claims] == [0, 1] and claims[0].endpoint == claims[1].endpoint
        single_loss = [(p.step, p.value) for p in run_queries.metric_points(s, single.id, "train_loss")]
        ddp_loss = [(p.step, p.value) for p in run_queries.metric_points(s, ddp_id, "train_loss")]
    assert [st for st, _ in single_loss] == [st for st, _ in ddp_loss]
    for (_, a), (_, b) in zip(single_loss, ddp_loss, strict=True):
        assert abs(a - b) < 0.01, (single_loss, ddp_loss)
    assert_same_weights(run_dir(single.id), run_dir(ddp_id))


def assert_same_weights(a: Path, b: Path, tolerance: float = 0.02) -> None:
    from safetensors.torch import load_file

    wa, wb = (load_file(str(p / "model" / "model.safetensors")) for p in (a, b))
    assert wa.keys() == wb.keys()
    # Relative to each tensor: AdamW turns float rounding into ~0.5 % here; dropout noise alone gave ~30 %.
    worst = {k: float((wa[k].float() - wb[k].float()).norm() / wa[k].float().norm().clamp_min(1e-12)) for k in wa}
    assert max(worst.values()) < tolerance, sorted(worst.items(), key=lambda kv: -kv[1])[:3]
