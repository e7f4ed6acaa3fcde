"""Data health in Chromium: open the tab, audit a dataset with flipped labels in the background, accept the
suggestions and save them as a new dataset version."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, Server, wait_for_text
from tests.e2e.test_journeys import click, no_errors, settle
from tests.test_health import topics_frame

pytestmark = pytest.mark.e2e


def protolab(server: Server, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "core.cli", *args], cwd=ROOT, env=server.env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_open_data_health_audit_accept_a_suggestion_and_save_a_version(server: Server, page,  # noqa: ANN001
                                                                        tmp_path: Path) -> None:
    frame, _, _ = topics_frame()
    csv = tmp_path / "topics.csv"
    frame.drop(columns="split").to_csv(csv, index=False)
    protolab(server, "datasets", "add", str(csv), "--name", "noisy topics", "--task", "classification")

    page.goto(server.url)
    wait_for_text(page, "Turn a dataset into a demo")
    page.get_by_role("link", name="Datasets").first.click()
    wait_for_text(page, "Upload your own")
    page.get_by_role("tab", name="Data health").click()
    wait_for_text(page, "has not been audited yet")
    page.get_by_text("MiniLM near-duplicates and zero-label baseline").click()  # exact duplicates only: faster
    settle(page)
    click(page, "Run the audit")
    wait_for_text(page, "Suspicious rows", timeout_ms=180_000)  # the worker ran it; the tab redrew itself
    page.get_by_role("tab", name="Data health").click()
    page.get_by_text("Pre-fill suggested labels for the flags scored at least this").click()
    settle(page)
    # The pre-filled marks arrive with the rerun the toggle started: wait for the button to count them.
    save = page.get_by_role("button", name=re.compile(r"Save [1-9][0-9]* changes as a new dataset version"))
    save.wait_for(timeout=60_000)
    # Only the flags scored at or above the pre-filled cut (0.98, where measured precision reaches 70 %) are marked.
    assert int(save.inner_text().split()[1]) >= 1, save.inner_text()
    save.click()
    settle(page)
    wait_for_text(page, "Saved dataset version")
    no_errors(page, server)

    versions = [d for d in json.loads(protolab(server, "datasets", "list", "--json")) if d["name"] != "noisy topics"]
    assert len(versions) == 1 and versions[0]["name"] == "noisy topics v2"
