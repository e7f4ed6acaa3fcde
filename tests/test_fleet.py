"""Team mode, the decisions and the claim: which device a run gets, why a run waits, the claim transaction on
SQLite and on a real PostgreSQL (a run is never taken twice), the pages and the CLI of the fleet.

The daemons' end-to-end cases (real `protolab worker` processes training runs) are in test_fleet_daemons.py (many
runs at once), test_fleet_handover.py (a killed or stopped daemon's run goes on elsewhere), test_fleet_ddp.py (one
run over two nodes) and test_fleet_lost_node.py; one file each, so that pytest-xdist's processes share them.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from core import settings
from core.runs import fleet, queue
from core.settings import run_dir
from core.text.config import build_config
from db import init_db, session_scope
from db import runs as run_queries
from db import workers as worker_queries
from db.enums import RunStatus
from db.models import Run, RunClaim, Worker
from tests.fleet_support import Daemons, finished, row, store_dataset, tfidf, wait_for
from tests.helpers import cancel, queue_run

# --- pure decisions (no database) ----------------------------------------------------------------------

def test_devices_are_assigned_only_where_a_run_fits() -> None:
    gpu_box = ["cuda:0", "cuda:1"]
    two = queue.needs_of({"device": "cuda", "gpus": 2})
    assert queue.assign_devices(two, gpu_box, [], 2) == ["cuda:0", "cuda:1"]
    assert queue.assign_devices(two, gpu_box, ["cuda:1"], 2) is None  # only one GPU free
    assert queue.assign_devices(queue.needs_of({"device": "auto"}), gpu_box, ["cuda:0"], 2) == ["cuda:1"]
    assert queue.assign_devices(queue.needs_of({"device": "cpu"}), gpu_box, [], 2) is None
    assert queue.assign_devices(queue.needs_of({"device": "cpu"}), ["cpu"], ["cpu"], 1) == ["cpu"]
    assert queue.assign_devices(queue.needs_of({"device": "cpu"}), ["cpu"], ["cpu"], 0) is None
    across = queue.needs_of({"device": "cuda", "gpus": 4, "nodes": 2})
    assert (across.processes, across.nodes) == (2, 2)


def test_a_run_no_worker_can_take_says_why() -> None:
    cpu = Worker(name="cpu-box", devices=["cpu"], max_parallel=1)
    gpu = Worker(name="gpu-box", devices=["cuda:0"], max_parallel=1)
    assert "no worker is running" in queue.unservable_reason({"device": "cpu"}, [])
    assert queue.unservable_reason({"device": "cpu"}, [cpu, gpu]) is None
    reason = queue.unservable_reason({"device": "cuda", "gpus": 2}, [cpu, gpu])
    assert reason == "no live worker offers 2 free CUDA GPUs (the fleet has cpu-box: cpu; gpu-box: cuda:0)"
    assert "on each of 2 workers" in queue.unservable_reason({"device": "cpu", "gpus": 2, "nodes": 2}, [cpu, gpu])


def test_worker_options_are_checked() -> None:
    assert fleet.build_options("a", "cpu", None).devices == ("cpu",)
    with pytest.raises(fleet.ProtolabError, match="not a device"):
        fleet.build_options("a", "gpu0", None)
    with pytest.raises(fleet.ProtolabError, match="is not on this machine"):
        fleet.build_options("a", "cuda:7", None)
    with pytest.raises(fleet.ProtolabError, match="at least 1"):
        fleet.build_options("a", "cpu", 0)


# --- SQLite: dispatch, the claim, a worker that cannot see the data -------------------------------------

def _register(name: str, max_parallel: int = 1) -> fleet.FleetWorker:
    daemon = fleet.FleetWorker(fleet.WorkerOptions(name=name, devices=("cpu",), max_parallel=max_parallel,
                                                   address="127.0.0.1"))
    daemon.register()
    daemon._beat_stop.set()  # no heartbeat thread needed: the row's registration time keeps it live here
    return daemon


def test_with_a_live_worker_runs_only_queue(classification_dataset: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(settings.DISPATCH.name, raising=False)
    assert queue.dispatch_mode() == "local"
    _register("w1")
    assert queue.dispatch_mode() == "queue"
    run_id = tfidf(classification_dataset)
    time.sleep(0.5)
    run = row(run_id)
    assert run.status is RunStatus.QUEUED and run.pid is None  # nobody launched it: the fleet will
    monkeypatch.setenv(settings.DISPATCH.name, "local")
    assert queue.dispatch_mode() == "local"
    monkeypatch.setenv(settings.DISPATCH.name, "sometimes")
    with pytest.raises(fleet.ProtolabError, match="PROTOLAB_DISPATCH must be 'auto', 'local' or 'queue'"):
        queue.dispatch_mode()


def test_claims_take_each_queued_run_once_on_sqlite(classification_dataset: int,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.DISPATCH.name, "queue")
    run_ids = [tfidf(classification_dataset) for _ in range(8)]
    workers = [_register(f"w{i}", max_parallel=3) for i in range(4)]
    taken = _claim_concurrently(workers, attempts=20, seed=1)
    assert sorted(taken) == sorted(run_ids)  # 4 workers × 3 slots ≥ 8 runs: all were taken, none twice
    with session_scope() as s:
        assert s.query(RunClaim).count() == 8


def _claim_concurrently(workers: list[fleet.FleetWorker], attempts: int, seed: int) -> list[int]:
    """Rounds of `attempts` threads released at once, each one claim transaction of a random worker, until a
    round takes nothing more; every run taken, in order. A daemon claims one transaction at a time (its loop
    does), so each worker has a lock; different workers claim concurrently."""
    rng = random.Random(seed)
    locks = {id(w): threading.Lock() for w in workers}
    taken: list[int] = []
    errors: list[BaseException] = []

    def attempt(daemon: fleet.FleetWorker, barrier: threading.Barrier) -> None:
        barrier.wait()
        try:
            with locks[id(daemon)]:
                got = daemon._claim()
                for run_id, claim_id, *_ in got:
                    # The slot is used now: the daemon would have started a child for the run.
                    daemon.children[claim_id] = fleet.Child(None, run_id, claim_id, 0, 1, ["cpu"])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            return
        taken.extend(run_id for run_id, *_ in got)

    while True:
        before = len(taken)
        barrier = threading.Barrier(attempts)
        threads = [threading.Thread(target=attempt, args=(rng.choice(workers), barrier)) for _ in range(attempts)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        if len(taken) == before:
            return taken


def test_a_worker_that_cannot_see_the_data_fails_the_run_clearly(classification_dataset: int, daemons: Daemons,
                                                                 tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.DISPATCH.name, "queue")
    elsewhere = tmp_path / "not-shared"
    elsewhere.mkdir()
    daemons.start("blind", PROTOLAB_HOME=str(elsewhere))
    daemons.wait_live("blind")
    run = wait_for(tfidf(classification_dataset), finished, "finished", 60, daemons)
    assert run.status is RunStatus.FAILED
    assert run.error.startswith("the files of dataset") and "same PROTOLAB_HOME" in run.error, run.error
    assert "Traceback" not in run.error


# --- PostgreSQL: the fleet, end to end ----------------------------------------------------------------

@pytest.mark.postgres
def test_claims_never_take_a_run_twice_on_postgres(pg_fleet: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Property: 50 concurrent claim transactions on 20 queued runs, over several random fleets."""
    monkeypatch.setenv(settings.DISPATCH.name, "queue")
    # Its workers never beat: on a loaded machine a round outlasts the fixture's 5 s lost-worker window, and a
    # worker counted lost claims nothing, which is not what this test is about (the lost-daemon tests are).
    monkeypatch.setenv(settings.WORKER_STALE_AFTER_S.name, "600")
    dataset_id = store_dataset()
    for seed in range(3):
        run_ids = [tfidf(dataset_id) for _ in range(20)]
        rng = random.Random(seed)
        workers = [_register(f"s{seed}-w{i}", max_parallel=rng.randint(1, 6)) for i in range(rng.randint(3, 10))]
        taken = _claim_concurrently(workers, attempts=50, seed=seed)
        # Then each daemon's next poll, one at a time: within a round a full worker still locks rows while it looks
        # for a short run to put in its express place, and SKIP LOCKED hides those rows from a worker with a free
        # slot, so a contended round can take nothing while capacity is left; a daemon polls again and takes it.
        for worker in workers:
            taken += [run_id for run_id, *_ in worker._claim()]
        assert len(taken) == len(set(taken)), Counter(taken).most_common(3)  # never twice
        capacity = sum(w.options.max_parallel for w in workers)
        assert set(taken) <= set(run_ids) and len(taken) == min(20, capacity)  # and none left behind
        for run_id in set(run_ids) - set(taken):  # what this fleet could not hold leaves the next round alone
            cancel(run_id)
        with session_scope() as s:
            claims = s.query(RunClaim).filter(RunClaim.run_id.in_(run_ids)).all()
            assert sorted(c.run_id for c in claims) == sorted(taken)
            for claim in claims:  # a worker never holds more runs than its slots
                assert claim.worker.max_parallel >= sum(c.worker_id == claim.worker_id for c in claims)



# --- the pages ----------------------------------------------------------------------------------------

def test_home_shows_the_fleet_and_train_says_where_a_run_waits(classification_dataset: int,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv(settings.DISPATCH.name, "queue")
    daemon = _register("gpu-less")
    first, waiting = tfidf(classification_dataset), tfidf(classification_dataset)
    [(claimed, *_)] = daemon._claim()
    assert claimed == first
    home = AppTest.from_file("../pages/home.py", default_timeout=60).run()
    assert not home.exception
    fleet_lines = [m.value for m in home.markdown if "gpu-less" in m.value]
    assert len(fleet_lines) == 1 and "cpu" in fleet_lines[0] and f"#{first} tfidf (cpu)" in fleet_lines[0]

    train = AppTest.from_file("../pages/train.py", default_timeout=60)
    train.query_params["run"] = str(first)
    train.run()
    assert not train.exception
    assert any(c.value == "🖥️ On gpu-less (cpu)" for c in train.caption), [c.value for c in train.caption]
    train.query_params["run"] = str(waiting)
    train.run()
    assert any(c.value == "🖥️ In the queue, 0 runs ahead" for c in train.caption)
    assert not train.warning  # a CPU run fits the fleet: it only waits its turn

    config = build_config("lstm", {"device": "cuda", "gpus": 2})
    gpu_run = queue_run(dataset_id=classification_dataset, model_kind="lstm", config=config)
    train.query_params["run"] = str(gpu_run)
    train.run()
    assert any(c.value == "🖥️ In the queue, 1 run ahead" for c in train.caption)
    assert [w.value for w in train.warning] == [
        "This run cannot start yet: no live worker offers 2 free CUDA GPUs (the fleet has gpu-less: cpu)."]


def test_the_train_cli_refuses_nodes_it_cannot_split(classification_dataset: int, capsys: pytest.CaptureFixture,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from core.cli import main

    base = ["train", "--dataset", "tiny-sentiment", "--device", "cpu"]
    assert main([*base, "--model", "tfidf", "--nodes", "2"]) == 1
    assert "does not train with DistributedDataParallel" in capsys.readouterr().err
    assert main([*base, "--model", "lstm", "--nodes", "2", "--gpus", "3"]) == 1
    assert "--gpus 3 cannot be shared evenly by --nodes 2" in capsys.readouterr().err
    monkeypatch.delenv(settings.DISPATCH.name, raising=False)
    assert main([*base, "--model", "lstm", "--nodes", "2", "--gpus", "2"]) == 1  # no fleet, nothing to span
    assert "needs the worker fleet" in capsys.readouterr().err
    monkeypatch.setenv(settings.DISPATCH.name, "queue")
    assert main([*base, "--model", "lstm", "--nodes", "2", "--gpus", "2", "--json"]) == 0
    out = capsys.readouterr()
    assert "no worker is running" in out.err  # said at once, not discovered after a silent wait

    assert row(json.loads(out.out)["run_id"]).config["nodes"] == 2


def test_a_name_in_use_by_a_live_worker_elsewhere_is_refused(protolab_home: Path) -> None:
    from db.models import utcnow

    init_db()
    with session_scope() as s:
        worker_queries.add_worker(s, name="gpu1", host="elsewhere", address="10.0.0.9", pid=4242, devices=["cuda:0"],
                                  gpu_memory_mb={}, max_parallel=1, version="0", state="online",
                                  started_at=utcnow(), heartbeat_at=utcnow())
    with pytest.raises(fleet.ProtolabError, match="already running on elsewhere .pid 4242.; give this one another"):
        _register("gpu1")
    with session_scope() as s:  # once it is silent, its name may be taken over
        worker = worker_queries.get_worker_by_name(s, "gpu1")
        worker.heartbeat_at = utcnow() - timedelta(seconds=settings.WORKER_STALE_AFTER_S.get() + 1)
    daemon = _register("gpu1")
    with session_scope() as s:
        worker = s.get(Worker, daemon.worker_id)
        assert (worker.host, worker.pid, worker.devices) == (fleet.socket.gethostname(), os.getpid(), ["cpu"])


def test_a_lost_run_resumes_starts_over_or_fails_as_asked(classification_dataset: int,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from core.cli import main

    monkeypatch.setenv(settings.DISPATCH.name, "queue")
    base = ["train", "--dataset", "tiny-sentiment", "--model", "lstm", "--device", "cpu", "--json"]
    assert main(base) == 0 and main([*base, "--if-worker-lost", "fail"]) == 0
    assert main([*base, "--if-worker-lost", "fail"]) == 0
    with session_scope() as s:
        plain, strict, strict_with_checkpoint = sorted(r.id for r in run_queries.list_runs(s))
    (run_dir(strict_with_checkpoint) / "checkpoint").mkdir(parents=True)
    lost = "worker w1 on box stopped sending heartbeats for over 15 s"
    with session_scope() as s:
        statuses = [queue.requeue_run(s, s.get(Run, i), lost, lost=True)
                    for i in (plain, strict, strict_with_checkpoint)]
    assert statuses == [RunStatus.QUEUED, RunStatus.FAILED, RunStatus.QUEUED]
    assert row(plain).config["resume"] is False and row(strict_with_checkpoint).config["resume"] is True
    assert row(strict).error == (f"{lost}; it had no checkpoint to resume from and was started with "
                                 "--if-worker-lost fail")
    for _ in range(queue.MAX_LOSSES - 1):  # a run that keeps losing its workers stops being requeued
        with session_scope() as s:
            status = queue.requeue_run(s, s.get(Run, plain), lost, lost=True)
    assert status is RunStatus.FAILED and "lost 3 times" in row(plain).error
