"""Team mode on PostgreSQL: two real `protolab worker` daemons complete runs exactly once each while other runs
are started and cancelled around them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from db import session_scope
from db.enums import RunStatus
from db.models import RunClaim
from tests.fleet_support import ROOT, Daemons, claimed_by, finished, lstm, store_dataset, tfidf, wait_for

CHURN = """
import random, sys, time
import core.settings
from core.runs.registry import get_kind
from db import session_scope
from tests.helpers import cancel, queue_run
rng = random.Random(7)
started = []
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    started.append(queue_run(dataset_id=int(sys.argv[1]), model_kind="toy-majority",
                             config=get_kind("toy-majority").make_config({})))
    time.sleep(rng.uniform(0, 0.3))
    try:
        cancel(started[-1])
    except Exception:
        pass  # it finished first: fine
    time.sleep(rng.uniform(0, 0.3))
print(",".join(map(str, started)))
"""



@pytest.mark.postgres
@pytest.mark.slow
def test_two_daemons_complete_six_runs_once_each_while_others_start_and_cancel(
        pg_fleet: str, daemons: Daemons, protolab_home: Path) -> None:
    dataset_id = store_dataset()
    daemons.start_live("alpha", "beta")
    churn = subprocess.Popen([sys.executable, "-c", CHURN, str(dataset_id), "12"], cwd=ROOT,
                             env=daemons.env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    runs = [tfidf(dataset_id) if i % 3 else lstm(dataset_id, epochs=1) for i in range(6)]
    done = [wait_for(r, finished, "finished", 240, daemons) for r in runs]
    out, err = churn.communicate(timeout=120)
    assert churn.returncode == 0, err
    for run in done:
        assert run.status is RunStatus.COMPLETED, (run.id, run.error)
        assert len(claimed_by(run)) == 1, run.events  # exactly once
    assert {claimed_by(r)[0] for r in done} == {"alpha", "beta"}  # spread over both
    with session_scope() as s:  # the database's own record: one claim per run, by node 0
        claims = s.query(RunClaim).filter(RunClaim.run_id.in_(runs)).all()
        assert sorted(c.run_id for c in claims) == sorted(runs) and {c.node_rank for c in claims} == {0}
    churned = [int(i) for i in out.strip().split(",") if i]
    assert churned
    for run_id in churned:  # started and cancelled meanwhile: each ends cancelled (or done), never twice
        run = wait_for(run_id, finished, "finished", 60, daemons)
        assert run.status in (RunStatus.CANCELLED, RunStatus.COMPLETED), (run_id, run.status, run.error)
        assert len(claimed_by(run)) <= 1
