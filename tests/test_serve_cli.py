"""`protolab keys` and `protolab serve` as programs: keys shown once and hashed, a real uvicorn server, refusals."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from core.api.snippets import predict_snippets
from core.cli import main
from core.cli.serve import is_loopback
from db import read_scope
from db.models import ApiKey

ROOT = Path(__file__).resolve().parent.parent


def test_keys_create_list_revoke(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "create", "--name", "crm-app"]) == 0
    captured = capsys.readouterr()
    key = captured.out.strip()
    assert key.startswith("pl_") and "not shown again" in captured.err
    with read_scope() as s:
        row = s.query(ApiKey).one()
        # Only a salted hash is stored: neither the key nor its secret appear in the row.
        assert row.name == "crm-app" and key not in (row.secret_hash, row.salt) and key.split("_", 2)[2] not in \
            row.secret_hash and len(row.salt) == 32
    assert main(["keys", "list"]) == 0
    listed = capsys.readouterr().out
    assert "crm-app" in listed and "active" in listed and key not in listed
    assert main(["keys", "create", "--name", "crm-app"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["keys", "revoke", "crm-app"]) == 0
    capsys.readouterr()
    assert main(["keys", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []  # revoked keys only with --all
    assert main(["keys", "list", "--all", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["active"] is False
    assert main(["keys", "revoke", "crm-app"]) == 1
    assert "no active key named 'crm-app'" in capsys.readouterr().err
    assert main(["keys", "create", "--name", "bad name!"]) == 1
    assert "not allowed" in capsys.readouterr().err


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("127.0.0.5", True), ("::1", True),
                                                ("[::1]", True), ("localhost", True), ("0.0.0.0", False),
                                                ("192.168.1.4", False), ("example.com", False), ("::", False)])
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_no_auth_is_refused_off_loopback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--host", "0.0.0.0", "--no-auth"]) == 1
    err = capsys.readouterr().err
    assert "--no-auth is only allowed on a loopback address" in err and len(err.strip().splitlines()) == 1


def test_serving_an_unknown_run_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--run", "77", "--port", "1"]) == 1
    assert "protolab: error: no run with id 77" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "core.cli", "serve", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_ready(proc: subprocess.Popen, url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited {proc.returncode}: {proc.stderr.read()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.3)
    raise AssertionError("server did not answer /healthz in time")


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err


def test_real_server_with_and_without_a_key(make_served_run) -> None:
    run_id = make_served_run("tfidf")
    key = subprocess.run([sys.executable, "-m", "core.cli", "keys", "create", "--name", "test"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert key.returncode == 0, key.stderr
    key = key.stdout.strip()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _start(["--run", str(run_id), "--port", str(port)])
    try:
        _wait_ready(proc, url)
        body = {"texts": ["love great wonderful", "hate awful terrible"]}
        refused = httpx.post(f"{url}/v1/runs/{run_id}/predict", json=body, timeout=30)
        assert refused.status_code == 401 and refused.json()["error"] == "missing_key"
        ok = httpx.post(f"{url}/v1/runs/{run_id}/predict", json=body, timeout=30,
                        headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200, ok.text
        assert [p["label"] for p in ok.json()["predictions"]] == ["positive", "negative"]
        assert httpx.get(f"{url}/docs", timeout=30).status_code == 200
        # The snippets the demo page shows work as pasted, with the key in the environment.
        snippets = predict_snippets(run_id, ["love great wonderful"], url)
        env = {**os.environ, "PROTOLAB_API_KEY": key}
        python = subprocess.run([sys.executable, "-c", snippets.python], capture_output=True, text=True, env=env,
                                timeout=60)
        assert python.returncode == 0 and python.stdout.startswith("positive "), python.stderr
        if shutil.which("curl"):
            curl = subprocess.run(["bash", "-c", snippets.curl], capture_output=True, text=True, env=env, timeout=60)
            assert json.loads(curl.stdout)["predictions"][0]["label"] == "positive"
    finally:
        err = _stop(proc)
    assert proc.returncode is not None and "Traceback" not in err
    assert f"run {run_id:>4}" in err and "ready (sklearn)" in err


def test_real_server_without_auth_on_loopback(make_served_run) -> None:
    run_id = make_served_run("tfidf")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _start(["--port", str(port), "--no-auth"])
    try:
        _wait_ready(proc, url)
        ok = httpx.post(f"{url}/v1/runs/{run_id}/predict", json={"texts": ["love it"]}, timeout=30)
        assert ok.status_code == 200 and httpx.get(f"{url}/v1/runs", timeout=30).json()["runs"][0]["id"] == run_id
    finally:
        _stop(proc)
