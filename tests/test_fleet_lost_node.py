"""A lost node of a 2-node run (team mode on PostgreSQL, real daemons, DDP over gloo): the survivors requeue the
run from its last checkpoint, as for a single-node run whose machine died, and a new node finishes it."""

from __future__ import annotations

import pytest

from core.cli.train import with_nodes
from core.settings import run_dir
from core.text.config import build_config
from db import session_scope
from db import workers as worker_queries
from db.enums import RunStatus
from tests.fleet_support import Daemons, claimed_by, finished, store_dataset, wait_for
from tests.helpers import queue_run


@pytest.mark.postgres
@pytest.mark.slow
def test_a_lost_node_of_a_two_node_run_requeues_it_from_its_checkpoint(pg_fleet: str, daemons: Daemons) -> None:
    dataset_id = store_dataset(n=240)  # 15 steps a node an epoch: the kill still lands with 3 epochs to go
    daemons.start_live("alpha", "beta")
    options = dict(epochs=4, max_length=32, device="cpu", seed=7, patience=0, init_embeddings=False, batch_size=8,
                   gpus=2)
    run_id = queue_run(dataset_id=dataset_id, model_kind="lstm",
                       config=with_nodes(build_config("lstm", options), 2, "lstm"))
    checkpoint = run_dir(run_id) / "checkpoint" / "trainer_state.pt"
    running = wait_for(run_id, lambda r: checkpoint.exists() or finished(r), "checkpointed", 300, daemons)
    assert running.status is RunStatus.RUNNING, running.error
    with session_scope() as s:
        second = next(c.worker.name for c in worker_queries.claims_of_run(s, run_id) if c.node_rank == 1)
    daemons.procs[second].kill()  # kill -9 of the daemon holding node 2: its torchrun dies with it
    requeued = wait_for(run_id, lambda r: any(e.get("event") == "requeued" for e in r.events) or finished(r),
                        "requeued", 120, daemons)
    assert requeued.status is not RunStatus.FAILED, requeued.error
    event = next(e for e in requeued.events if e.get("event") == "requeued")
    assert event["lost"] and event["resume"], event
    daemons.start("gamma")  # a machine joins: the run has its two nodes again
    done = wait_for(run_id, finished, "finished", 400, daemons)
    assert done.status is RunStatus.COMPLETED, done.error
    assert any(e.get("event") == "resumed" and e["epoch"] >= 1 for e in done.events), done.events
    # either daemon may have held node 2; after its loss the run is claimed again by the other one and gamma
    survivor = ({"alpha", "beta"} - {second}).pop()
    assert set(claimed_by(done)[2:]) <= {survivor, "gamma"} and len(claimed_by(done)) == 4
