"""Small helpers tests share: start, cancel and resume runs in a transaction of their own, and swap an executor."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest

from core.runs import jobs, registry
from db import read_scope, session_scope
from db import runs as run_queries
from db.enums import RunStatus


def queue_run(*, dataset_id: int, model_kind: str, config: dict[str, Any], name: str | None = None) -> int:
    """Queue a run the way a page does; its worker starts when this transaction commits."""
    with session_scope() as s:
        return jobs.start_run(s, dataset_id=dataset_id, model_kind=model_kind, config=config, name=name)


def cancel(run_id: int) -> RunStatus:
    with session_scope() as s:
        return jobs.cancel_run(s, run_id)


def wait_until_finished(run_id: int, timeout_s: float = 120) -> RunStatus:
    """Poll the run row until its worker is done (or `timeout_s` passed); its status then."""
    deadline = time.monotonic() + timeout_s
    while True:
        with read_scope() as s:
            status = run_queries.get_run(s, run_id).status
        if not status.is_active or time.monotonic() > deadline:
            return status
        time.sleep(0.2)


def resume(run_id: int) -> None:
    with session_scope() as s:
        jobs.resume_run(s, run_id)


def use_executor(monkeypatch: pytest.MonkeyPatch, reference: str, kind: str = "tfidf") -> None:
    """Make runs of `kind` execute `reference` ("module:function") in this process, for one test."""
    replaced = dataclasses.replace(registry.get_kind(kind), execute=reference)
    monkeypatch.setitem(registry._registry.kinds, kind, replaced)


def form_key(at: Any, name: str) -> str:
    """The key of a Datasets upload-form widget: the page keys each one by the uploaded file."""
    return f"{name}_{at.file_uploader(key='upload').value.file_id}"
