"""A short run starts beside a long one on a CPU (core.runs.scheduling), on one machine and in the fleet; long runs
still take turns; the device never holds more than its slots plus the express place."""

from __future__ import annotations

import os
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import settings
from core.runs import fleet, scheduling, worker
from core.runs.scheduling import Waiting, admitted
from db import runs as run_queries
from db import session_scope
from db.enums import RunStatus, TaskKind
from db.models import Run, utcnow

SHORT, LONG = 5.0, 1000.0  # seconds of the estimates these runs are queued with


class Waited(Exception):
    """Raised instead of sleeping: the run was not let through on its first look at the queue."""


def _run(dataset_id: int, *, estimate: float | None, running: bool = False) -> int:
    with session_scope() as s:
        run = run_queries.create_run(s, dataset_id=dataset_id, task=TaskKind.CLASSIFICATION, model_kind="tfidf",
                                     config={"device": "cpu"})
        if estimate is not None:
            run.events = [scheduling.estimate_event(estimate)]
        if running:  # held by this very process, so no reaper takes it for dead
            run.status, run.pid, run.host, run.heartbeat_at = RunStatus.RUNNING, os.getpid(), socket.gethostname(), \
                utcnow()
        return run.id


def _lets_through(run_id: int, monkeypatch: pytest.MonkeyPatch) -> bool:
    def no_sleep(_seconds: float) -> None:
        raise Waited()

    monkeypatch.setattr(worker.time, "sleep", no_sleep)
    try:
        return worker._wait_for_turn(run_id, "cpu", None)
    except Waited:
        return False


def _status_text(run_id: int) -> str:
    with session_scope() as s:
        return s.get(Run, run_id).status_text


def test_a_short_run_starts_beside_a_long_one_and_a_long_one_waits(classification_dataset: int,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.MAX_RUNS_PER_DEVICE.name, "1")
    _run(classification_dataset, estimate=LONG, running=True)  # the 17-minute audit
    waiting_long = _run(classification_dataset, estimate=None)  # queued first: no estimate counts as long
    short = _run(classification_dataset, estimate=SHORT)
    assert not _lets_through(waiting_long, monkeypatch)
    assert "runs estimated under 60 s start beside it" in _status_text(waiting_long)
    assert _lets_through(short, monkeypatch)  # not behind either of them


def test_without_the_express_lane_it_is_first_come_first_served(classification_dataset: int,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.EXPRESS_SLOTS.name, "0")
    _run(classification_dataset, estimate=LONG, running=True)
    short = _run(classification_dataset, estimate=SHORT)
    assert not _lets_through(short, monkeypatch)
    assert _status_text(short) == "queued: waiting for 1 run on cpu"


def test_the_express_place_holds_one_short_run_at_a_time(classification_dataset: int,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    _run(classification_dataset, estimate=LONG, running=True)
    _run(classification_dataset, estimate=SHORT, running=True)
    assert not _lets_through(_run(classification_dataset, estimate=SHORT), monkeypatch)


def test_a_fleet_daemon_claims_a_short_run_beside_its_long_one(classification_dataset: int,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.DISPATCH.name, "queue")
    daemon = fleet.FleetWorker(fleet.WorkerOptions(name="cpu-box", devices=("cpu",), max_parallel=1,
                                                   address="127.0.0.1"))
    daemon.register()
    daemon._beat_stop.set()
    audit, later_long, short = (_run(classification_dataset, estimate=e) for e in (LONG, LONG, SHORT))
    got = daemon._claim()
    # The long one queued second waits for the one place for long runs; the short one does not wait behind it.
    assert [run_id for run_id, *_ in got] == [audit, short]
    for run_id, claim, *_ in got:  # their workers run now
        daemon.children[claim] = fleet.Child(None, run_id, claim, 0, 1, ["cpu"], short=run_id == short)
    second_short = _run(classification_dataset, estimate=SHORT)
    assert daemon._claim() == []  # the express place is taken too
    del daemon.children[next(c for c, child in daemon.children.items() if child.short)]  # the short run ended
    assert [run_id for run_id, *_ in daemon._claim()] == [second_short]
    assert later_long not in [run_id for run_id, *_ in daemon._claim()]


@given(running=st.lists(st.booleans(), max_size=4), queued=st.lists(st.booleans(), max_size=8),
       slots=st.integers(1, 3), express=st.integers(0, 2))
def test_admission_never_overfills_a_device(running: list[bool], queued: list[bool], slots: int,
                                            express: int) -> None:
    if sum(not r for r in running) > slots or len(running) > slots + express:
        return  # a device this full is never reached through admission
    waiting = [Waiting(i, short) for i, short in enumerate(queued)]
    starting = admitted(running, waiting, slots, express)
    after = [*running, *(queued[i] for i in starting)]
    assert len(after) <= slots + express and sum(not s for s in after) <= slots
    assert starting == sorted(starting)
    if express == 0:  # without the lane: exactly the old rule, the oldest runs while there is room
        assert starting == list(range(min(len(queued), max(0, slots - len(running)))))
