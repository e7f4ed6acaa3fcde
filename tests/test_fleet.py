"""Team mode: `protolab worker` daemons claiming runs from one database, as real processes.

The PostgreSQL cases start real daemons on a throwaway server (the `postgres` marker) and check, in the
database, that every run ran exactly once: a claim is one transaction, a killed daemon's run is requeued and
resumed elsewhere, a stopped daemon hands its run back, and two daemons train one run with DDP over two nodes.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from core import settings
from core.cli.train import with_nodes
from core.runs import fleet, queue
from core.settings import run_dir
from core.text.config import build_config
from db import dispose_engines, init_db, session_scope
from db import runs as run_queries
from db import workers as worker_queries
from db.enums import RunStatus, TaskKind
from db.models import Run, RunClaim, Worker
from tests.conftest import sentiment_frame, with_splits
from tests.helpers import cancel, queue_run

ROOT = Path(__file__).resolve().parent.parent
STALE_S = 5.0  # how fast the daemons (and this process) give up on a silent daemon here


# --- fixtures and helpers -----------------------------------------------------------------------------

@pytest.fixture
def pg_fleet(fresh_postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """This test's database on the PostgreSQL server, migrated; the data folder is the test's PROTOLAB_HOME."""
    monkeypatch.setenv("DATABASE_URL", fresh_postgres_url)
    monkeypatch.setenv(settings.WORKER_STALE_AFTER_S.name, str(STALE_S))
    dispose_engines()
    init_db()
    return fresh_postgres_url


def store_dataset(n: int = 120, name: str = "tiny-sentiment") -> int:
    from core.data.storage import write_dataset

    frame = with_splits(sentiment_frame(n=n))
    with session_scope() as s:
        return write_dataset(s, name=name, task=TaskKind.CLASSIFICATION, frame=frame,
                             mapping={"text": "text", "label": "label"}, stats={}).id


class Daemons:
    """`protolab worker` processes started by one test, all stopped at its end."""

    def __init__(self, home: Path) -> None:
        self.home, self.procs = home, {}

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(PYTHONPATH=str(ROOT), PROTOLAB_WORKER_ADDRESS="127.0.0.1", OMP_NUM_THREADS="1",
                   PROTOLAB_WORKER_STALE_AFTER_S=str(STALE_S), PROTOLAB_WORKER_POLL_S="0.2",
                   PROTOLAB_MODEL_KINDS="tests.toy_kind", **extra)
        env.pop(settings.DISPATCH.name, None)
        return env

    def start(self, name: str, *args: str, **env: str) -> subprocess.Popen:
        log = open(self.home / f"daemon-{name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen([sys.executable, "-m", "core.cli", "worker", "--devices", "cpu", "--name", name,
                                 "--max-parallel", "1", *args], env=self.env(**env), cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT)
        self.procs[name] = proc
        return proc

    def wait_live(self, *names: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with session_scope() as s:
                live = {w.name for w in worker_queries.live_workers(s, STALE_S)}
            if set(names) <= live:
                return
            time.sleep(0.2)
        raise AssertionError(f"daemons {names} did not register: {self.logs()}")

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}"
                         for p in sorted(self.home.glob("daemon-*.log")))

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def daemons(protolab_home: Path) -> Iterator[Daemons]:
    d = Daemons(protolab_home)
    yield d
    d.stop_all()


def row(run_id: int) -> Run:
    with session_scope() as s:
        run = run_queries.get_run(s, run_id)
        s.expunge(run)
        return run


def wait_for(run_id: int, predicate, what: str, timeout: float = 120, daemons: Daemons | None = None) -> Run:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = row(run_id)
        if predicate(run):
            return run
        time.sleep(0.2)
    log = (run_dir(run_id) / "worker.log")
    raise AssertionError(f"run {run_id} not {what} in {timeout} s: {run.status} {run.status_text} {run.events}\n"
                         f"{log.read_text(errors='replace')[-2000:] if log.exists() else ''}\n"
                         f"{daemons.logs() if daemons else ''}")


def finished(run: Run) -> bool:
    return not run.status.is_active


def claimed_by(run: Run) -> list[str]:
    """Every worker that ever claimed the run, in order (the events keep them; claims are replaced on requeue)."""
    return [e["worker"] for e in run.events if e.get("event") == "claimed"]


def lstm(dataset_id: int, **options) -> int:  # noqa: ANN003
    config = build_config("lstm", {"max_length": 32, "batch_size": 8, "device": "cpu", "init_embeddings": False,
                                   "patience": 0, **options})
    return queue_run(dataset_id=dataset_id, model_kind="lstm", config=config)


def tfidf(dataset_id: int) -> int:
    return queue_run(dataset_id=dataset_id, model_kind="tfidf", config=build_config("tfidf", {}))


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


@pytest.mark.postgres
@pytest.mark.slow
def test_two_daemons_complete_six_runs_once_each_while_others_start_and_cancel(
        pg_fleet: str, daemons: Daemons, protolab_home: Path) -> None:
    dataset_id = store_dataset()
    daemons.start("alpha")
    daemons.start("beta")
    daemons.wait_live("alpha", "beta")
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


@pytest.mark.postgres
@pytest.mark.slow
def test_a_killed_daemons_run_resumes_on_the_other_from_its_checkpoint(pg_fleet: str, daemons: Daemons) -> None:
    dataset_id = store_dataset(n=400)
    daemons.start("alpha")
    daemons.start("beta")
    daemons.wait_live("alpha", "beta")
    victim_run = lstm(dataset_id, epochs=5)
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
    daemons.start("alpha")
    daemons.wait_live("alpha")
    run_id = lstm(dataset_id, epochs=4)
    wait_for(run_id, lambda r: "step" in (r.status_text or "") or finished(r), "training", 180, daemons)
    daemons.start("beta")
    daemons.wait_live("beta")
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


@pytest.mark.postgres
@pytest.mark.slow
def test_two_daemons_train_one_run_over_two_nodes(pg_fleet: str, daemons: Daemons) -> None:
    dataset_id = store_dataset()
    # No dropout: then the only difference DDP may make is the order of floating-point sums.
    options = dict(epochs=2, max_length=32, device="cpu", seed=7, learning_rate=5e-3, patience=0, lstm_dropout=0.0,
                   init_embeddings=False)
    daemons.start("alpha")
    daemons.start("beta")
    daemons.wait_live("alpha", "beta")
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
    import json

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
