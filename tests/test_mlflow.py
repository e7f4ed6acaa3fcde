"""MLflow tracking against real stores (no mocks): a run logged live through the worker and read back with
mlflow.search_runs, its model predicting through mlflow.pyfunc.load_model; export-mlflow sending older runs once;
a real `mlflow server` stopped mid-run (the run completes, says logging failed) and caught up after a restart."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from core.cli import main as cli_main
from core.runs import worker
from core.text.config import build_config
from core.text.executor import execute_tfidf_run
from core.text.serving import load_classifier
from db import read_scope, session_scope
from db import runs as run_queries
from db.enums import RunStatus
from tests.helpers import queue_run, use_executor, wait_until_finished

TEXTS = ["great wonderful product", "awful broken service", "love it, perfect", "terrible, the worst"]


@pytest.fixture
def sqlite_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("PROTOLAB_MLFLOW_ARTIFACTS", str(tmp_path / "mlflow-artifacts"))
    return uri


def row(run_id: int) -> dict[str, Any]:
    with read_scope() as s:
        run = run_queries.get_run(s, run_id)
        return {"status": run.status, "metrics": run.metrics, "mlflow_run_id": run.mlflow_run_id,
                "mlflow_state": run.mlflow_state, "events": run.events, "error": run.error}


def wait_for_state(run_id: int, states: tuple[str, ...], timeout_s: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while (now := row(run_id))["mlflow_state"] not in states:
        assert time.monotonic() < deadline, now
        time.sleep(0.2)
    return now


def mlflow_runs_of(run_id: int) -> pd.DataFrame:
    import mlflow

    return mlflow.search_runs(experiment_names=["protolab"], filter_string=f"tags.`protolab.run_id` = '{run_id}'")


def test_a_run_is_logged_live_and_its_model_predicts_through_pyfunc(classification_dataset: int,
                                                                    sqlite_store: str) -> None:
    import mlflow

    run_id = queue_run(dataset_id=classification_dataset, model_kind="tfidf", config=build_config("tfidf", {}))
    assert wait_until_finished(run_id) == RunStatus.COMPLETED
    done = wait_for_state(run_id, ("logged", "failed"))
    assert done["mlflow_state"] == "logged", done["events"]
    found = mlflow_runs_of(run_id)
    assert len(found) == 1
    logged = found.iloc[0]
    assert logged["run_id"] == done["mlflow_run_id"] and logged["status"] == "FINISHED"
    assert logged["params.tfidf_c"] == str(build_config("tfidf", {})["tfidf_c"])
    assert logged["metrics.macro_f1"] == pytest.approx(done["metrics"]["macro_f1"])
    assert logged["tags.protolab.kind"] == "tfidf" and logged["tags.protolab.task"] == "classification"
    assert logged["tags.protolab.dataset_id"] == str(classification_dataset)
    client = mlflow.MlflowClient()
    with read_scope() as s:  # every point the run reported is in MLflow, at its step
        points = {(f"{p.split}/{p.name}", p.step, p.value) for p in run_queries.metric_points(s, run_id)}
    assert points
    for name in {n for n, _, _ in points}:
        history = {(name, m.step, m.value) for m in client.get_metric_history(done["mlflow_run_id"], name)}
        assert {p for p in points if p[0] == name} <= history
    charts = {a.path for a in client.list_artifacts(done["mlflow_run_id"], "charts")}
    assert {"charts/confusion_matrix.html", "charts/roc_curves.html"} <= charts
    model = mlflow.pyfunc.load_model(f"runs:/{done['mlflow_run_id']}/model")
    answer = model.predict(pd.DataFrame({"text": TEXTS}))
    assert list(answer["label"]) == [p.label for p in load_classifier(run_id).predict(TEXTS)]


def test_export_sends_older_runs_once(classification_dataset: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run_id = queue_run(dataset_id=classification_dataset, model_kind="tfidf", config=build_config("tfidf", {}))
    assert wait_until_finished(run_id) == RunStatus.COMPLETED
    assert row(run_id)["mlflow_state"] is None  # not configured: nothing tried, nothing said
    assert cli_main(["runs", "export-mlflow", "--all"]) == 1  # says how to configure it
    assert "MLFLOW_TRACKING_URI" in capsys.readouterr().err
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("PROTOLAB_MLFLOW_ARTIFACTS", str(tmp_path / "mlflow-artifacts"))
    assert cli_main(["runs", "export-mlflow", "--all", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert [(r["run_id"], r["outcome"]) for r in first] == [(run_id, "exported")]
    assert cli_main(["runs", "export-mlflow", "--all", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert cli_main(["runs", "export-mlflow", "--run", str(run_id), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["outcome"] == "already there"
    found = mlflow_runs_of(run_id)
    assert list(found["run_id"]) == [first[0]["mlflow_run_id"]] and found.iloc[0]["metrics.macro_f1"] > 0.5


@pytest.mark.slow
def test_a_search_logs_as_a_parent_run_with_its_trials_as_children(classification_dataset: int, sqlite_store: str,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import mlflow

    code = cli_main(["search", "--dataset", "tiny-sentiment", "--model", "tfidf", "--trials", "2", "--space",
                     "tfidf_c=log(0.01,0.1)", "--wait", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out
    parents = mlflow.search_runs(experiment_names=["protolab"],
                                 filter_string=f"tags.`protolab.search_id` = '{out['search_id']}'")
    assert len(parents) == 1
    parent = parents.iloc[0]
    # the driver ends its parent run before it writes the search's final status, which is what --wait waits for
    assert parent["status"] == "FINISHED" and parent["tags.protolab.status"] == "completed"
    assert parent["metrics.best_validation/macro_f1"] == pytest.approx(out["best"]["value"])
    assert parent["tags.protolab.best_run_id"] == str(out["best"]["run_id"])
    assert parent["params.search.space"] == "tfidf_c log[0.01, 0.1]; tfidf_ngram_max [1, 3]; tfidf_min_df [1, 5]"
    assert parent["metrics.trials_complete"] == 2
    history = mlflow.MlflowClient().get_metric_history(parent["run_id"], "trial_validation/macro_f1")
    assert sorted((m.step, m.value) for m in history) == sorted((t["number"], t["value"]) for t in out["trials"])
    for trial in out["trials"]:  # a trial's worker ends its MLflow run after its run row is final
        assert wait_for_state(trial["run_id"], ("logged", "failed"))["mlflow_state"] == "logged"
    children = mlflow.search_runs(experiment_names=["protolab"],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{parent['run_id']}'")
    assert sorted(children["tags.protolab.run_id"]) == sorted(str(t["run_id"]) for t in out["trials"])
    assert set(children["status"]) == {"FINISHED"}


def test_the_cli_starts_without_importing_mlflow() -> None:
    """`protolab --help` (every command's parser, export-mlflow's included) never pays for mlflow's import."""
    probe = ("import sys\nfrom core.cli import main\nfor argv in (['--help'], ['runs', 'export-mlflow', '--help']):\n"
             "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
             "print('MLFLOW=' + str('mlflow' in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parent.parent)
    assert "--all" in proc.stdout  # export-mlflow's own help was printed
    assert "MLFLOW=False" in proc.stdout, proc.stdout + proc.stderr


# --- a real tracking server that goes away -------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(store: Path, port: int) -> subprocess.Popen:
    # Without its job runner (a third process importing all of mlflow, and an 8 s application start-up, for the
    # server's GenAI jobs, which tracking never uses): each start is two heavy imports, not three.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}", "--artifacts-destination", str(store / "art")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 180  # its start-up (database tables, uvicorn) is slow on a busy box
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return proc
        except OSError:
            time.sleep(0.3)
    _stop_server(proc)
    raise AssertionError("mlflow server did not start within 180 s")


def _stop_server(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)  # the server and its uvicorn worker: a crash, not a clean shutdown
    proc.wait(timeout=10)


_server_gone = threading.Event()


def gated_tfidf_executor(ctx: Any) -> dict[str, Any]:
    """The real TF-IDF run, after a first step reported while the tracking server is still up."""
    ctx.log_metric("warm_up", 1.0, step=1)
    ctx.progress(0.05, "warming up", force=True)
    assert _server_gone.wait(60), "the test never stopped the server"
    ctx.log_metric("warm_up", 0.5, step=2)
    ctx.progress(0.1, "training", force=True)
    return execute_tfidf_run(ctx)


@pytest.mark.slow
def test_a_server_stopped_mid_run_does_not_stop_the_run(classification_dataset: int, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    port = _free_port()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    # A server that is down refuses at once whatever the timeout; a long one keeps a busy machine's slow but live
    # server from reading as down.
    monkeypatch.setenv("PROTOLAB_MLFLOW_TIMEOUT_S", "60")
    use_executor(monkeypatch, "tests.test_mlflow:gated_tfidf_executor")
    _server_gone.clear()
    server = _start_server(tmp_path, port)
    try:
        with session_scope() as s:  # queued by hand: this test runs the worker in its own process
            run_id = run_queries.create_run(s, dataset_id=classification_dataset, task="classification",
                                            model_kind="tfidf", config=build_config("tfidf", {})).id
        result: list[RunStatus] = []
        thread = threading.Thread(target=lambda: result.append(worker.execute(run_id)))
        thread.start()
        wait_for_state(run_id, ("live",))  # the MLflow run is open: now the server goes away
    finally:
        _stop_server(server)
    _server_gone.set()
    thread.join(timeout=120)
    assert result == [RunStatus.COMPLETED]
    done = row(run_id)
    assert done["status"] == RunStatus.COMPLETED and done["metrics"]["macro_f1"] > 0.5
    assert done["mlflow_state"] == "failed"
    notes = [e["message"] for e in done["events"] if e.get("event") == "mlflow"]
    assert notes and "MLflow logging failed" in notes[0] and f"export-mlflow --run {run_id}" in notes[0]

    server = _start_server(tmp_path, port)
    try:
        assert cli_main(["runs", "export-mlflow", "--run", str(run_id), "--json"]) == 0
        exported = json.loads(capsys.readouterr().out)[0]
        assert exported["outcome"] == "exported" and exported["mlflow_run_id"] != done["mlflow_run_id"]
        found = mlflow_runs_of(run_id)  # the partial run was replaced, not duplicated
        assert list(found["run_id"]) == [exported["mlflow_run_id"]]
        assert found.iloc[0]["metrics.macro_f1"] == pytest.approx(done["metrics"]["macro_f1"])
        assert row(run_id)["mlflow_state"] == "logged"
    finally:
        _stop_server(server)


def test_a_search_whose_driver_was_killed_ends_its_mlflow_parent_as_failed_when_reaped(
        classification_dataset: int, sqlite_store: str) -> None:
    """A driver killed with SIGKILL never ends its parent run: the reaper that marks the search failed does."""
    import mlflow

    from core.search import searches
    from core.tracking.mlflow_searches import start_search_tracking
    from db import searches as search_queries
    from db.enums import SearchStatus
    from db.models import utcnow

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid is that of no driver now, as a killed driver's is
    with session_scope() as s:
        search_id = search_queries.create_search(
            s, dataset_id=classification_dataset, model_kind="tfidf", config={}, space=[], metric="macro_f1",
            n_trials=2, parallel=1, settings={}, status=SearchStatus.RUNNING, stop_requested=False, pid=gone.pid,
            host=socket.gethostname(), heartbeat_at=utcnow()).id
    tracker = start_search_tracking(search_id)  # what the driver did before it was killed
    assert tracker is not None and not tracker.failed
    client = mlflow.MlflowClient(tracking_uri=sqlite_store)
    assert client.get_run(tracker.mlflow_run_id).info.status == "RUNNING"
    assert searches.reap_lost_searches() == [search_id]
    parent = client.get_run(tracker.mlflow_run_id)
    assert parent.info.status == "FAILED" and parent.data.tags["protolab.status"] == "failed"
    assert searches.reap_lost_searches() == []  # marked once: nothing left to end


def test_reaping_a_lost_search_never_raises_when_mlflow_is_down(classification_dataset: int,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """The reaper tries to end the parent run, says why it could not, and marks the search failed all the same."""
    from core.search import searches
    from db import searches as search_queries
    from db.enums import SearchStatus
    from db.models import utcnow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{_free_port()}")  # nothing listens there
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with session_scope() as s:
        search_id = search_queries.create_search(
            s, dataset_id=classification_dataset, model_kind="tfidf", config={}, space=[], metric="macro_f1",
            n_trials=2, parallel=1, settings={}, status=SearchStatus.RUNNING, stop_requested=False, pid=gone.pid,
            host=socket.gethostname(), heartbeat_at=utcnow(), mlflow_run_id="0" * 32).id
    assert searches.reap_lost_searches() == [search_id]
    with read_scope() as s:
        assert search_queries.get_search(s, search_id).status == SearchStatus.FAILED
    assert f"search {search_id}: its MLflow run {'0' * 32} was not ended" in caplog.text
