"""Team mode on PostgreSQL: a daemon that goes away (kill -9, or SIGTERM) loses no run: the run is requeued and
resumed from its checkpoint on the other daemon, exactly once."""

from __future__ import annotations

import signal
import time

import pytest

from core.settings import run_dir
from db import session_scope
from db import workers as worker_queries
from db.enums import RunStatus
from tests.fleet_support import STALE_S, Daemons, claimed_by, finished, lstm, store_dataset, tfidf, wait_for


@pytest.mark.postgres
@pytest.mark.slow
def test_a_killed_daemons_run_resumes_on_the_other_from_its_checkpoint(pg_fleet: str, daemons: Daemons) -> None:
    dataset_id = store_dataset(n=400)
    daemons.start_live("alpha", "beta")
    victim_run = lstm(dataset_id, epochs=3)
    checkpoint = run_dir(victim_run) / "checkpoint" / "trainer_state.pt"
    running = wait_for(victim_run, lambda r: checkpoint.exists() or finished(r), "checkpointed", 180, daemons)
    assert running.status is RunStatus.RUNNING, running.error
    victim = claimed_by(running)[0]
    daemons.procs[victim].kill()  # kill -9: no goodbye, its child dies with it
    other_run = tfidf(dataset_id)  # queued meanwhile: must not be disturbed
    done = wait_for(victim_run, finished, "finished", 240, daemons)
    assert done.status is RunStatus.COMPLETED, done.error
    survivor = ({"alpha", "beta"} - {victim}).pop()
    assert claimed_by(done) == [victim, survivor]
    requeued = [e for e in done.events if e.get("event") == "requeued"]
    assert len(requeued) == 1 and requeued[0]["lost"] and requeued[0]["resume"]
    assert any(e.get("event") == "resumed" and e["epoch"] >= 1 for e in done.events), done.events
    other = wait_for(other_run, finished, "finished", 120, daemons)
    assert other.status is RunStatus.COMPLETED and claimed_by(other) == [survivor]
    with session_scope() as s:  # the lost daemon is marked so within the stale window
        deadline = time.monotonic() + 3 * STALE_S
        while worker_queries.get_worker_by_name(s, victim).state != "lost" and time.monotonic() < deadline:
            s.expire_all()
            time.sleep(0.5)
        assert worker_queries.get_worker_by_name(s, victim).state == "lost"



@pytest.mark.postgres
@pytest.mark.slow
def test_a_stopped_daemon_hands_its_run_back(pg_fleet: str, daemons: Daemons) -> None:
    dataset_id = store_dataset(n=400)
    daemons.start_live("alpha")
    run_id = lstm(dataset_id, epochs=4)
    wait_for(run_id, lambda r: "step" in (r.status_text or "") or finished(r), "training", 180, daemons)
    daemons.start_live("beta")
    daemons.procs["alpha"].send_signal(signal.SIGTERM)
    assert daemons.procs["alpha"].wait(timeout=60) == 0
    done = wait_for(run_id, finished, "finished", 240, daemons)
    assert done.status is RunStatus.COMPLETED, done.error
    assert claimed_by(done) == ["alpha", "beta"]
    handed = [e for e in done.events if e.get("event") == "requeued"]
    assert len(handed) == 1 and not handed[0]["lost"] and handed[0]["resume"], done.events
    resumed = [e for e in done.events if e.get("event") == "resumed"]
    assert resumed and resumed[0]["step"] > 0  # from the checkpoint taken at the step where it stopped
    with session_scope() as s:
        assert worker_queries.get_worker_by_name(s, "alpha").state == "stopped"
