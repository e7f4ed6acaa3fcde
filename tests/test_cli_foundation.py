"""The CLI's shared contract: `info --json`, one-line errors, exit codes, `python -m core.cli`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.auth import verify_password
from core.cli import main

PROTOLAB = str(Path(sys.executable).with_name("protolab"))


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    exe = [PROTOLAB] if os.path.exists(PROTOLAB) else [sys.executable, "-m", "core.cli"]
    return subprocess.run([*exe, *args], capture_output=True, text=True, input=stdin, timeout=120)


def test_info_json_is_valid_and_redacts_the_password(monkeypatch: pytest.MonkeyPatch, protolab_home: Path) -> None:
    proc = run_cli("info", "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["database"]["backend"] == "sqlite"
    assert info["counts"] == {"datasets": 0, "runs": 0, "runs_by_status": {}}
    assert info["device"]["kind"] in {"cpu", "cuda", "mps"} and info["device"]["cpu_cores"] >= 1
    assert info["home"] == str(protolab_home)

    from core.settings import redact_url

    assert "s3cret" not in redact_url("postgresql+psycopg://me:s3cret@db.example:5432/protolab")
    assert redact_url("postgresql+psycopg://me:s3cret@db.example:5432/protolab").startswith("postgresql+psycopg://me:")


def test_python_dash_m_core_cli_is_the_same_program() -> None:
    proc = subprocess.run([sys.executable, "-m", "core.cli", "info", "--json"], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parent.parent)
    assert proc.returncode == 0 and json.loads(proc.stdout)["version"]


def test_user_mistakes_are_one_line_on_stderr_with_a_non_zero_exit(capsys: pytest.CaptureFixture) -> None:
    assert main(["runs", "show", "999"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "protolab: error: no run with id 999"
    with pytest.raises(SystemExit) as exc:
        main(["runs", "show", "not-a-number"])
    assert exc.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_unreachable_database_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://me:s3cret@127.0.0.1:1/none")
    proc = run_cli("info", "--json")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "s3cret" not in proc.stderr
    assert proc.stderr.startswith("protolab: error: cannot use the database at postgresql+psycopg://me:***@")


def test_passwd_prints_a_hash_that_verifies() -> None:
    proc = run_cli("passwd", "--stdin", stdin="correct horse\n")
    assert proc.returncode == 0, proc.stderr
    stored = proc.stdout.strip()
    assert verify_password("correct horse", stored) and not verify_password("wrong horse", stored)
    assert run_cli("passwd", "--stdin", stdin="short\n").returncode == 1
