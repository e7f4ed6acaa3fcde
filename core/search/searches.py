"""Starting, stopping, resuming and reading hyperparameter searches (the CLI, the Train and Evaluate pages).

A search is a row (db.models.Search) plus a driver process (`python -m core.search.driver SEARCH_ID`, see
core.search.driver) that queues each trial as an ordinary run through the normal dispatch, so a fleet's workers
run several trials at once. The driver is launched by whoever starts the search and never claimed by a worker
daemon: it holds no device, so it can never take the slot its own trials wait for.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from core import settings
from core.errors import ProtolabError
from core.names import check_name
from core.runs import jobs, queue, registry
from core.runs.estimates import estimate_any
from core.runs.timing import format_eta
from core.search.space import Param, defaults_inside, parse_space
from core.search.study import DEFAULT_SETTINGS, PRUNERS, open_study, search_dir
from core.tasks import resolve
from db import after_commit, read_scope, session_scope
from db import runs as run_queries
from db import searches as search_queries
from db import workers as worker_queries
from db.enums import SearchStatus, TrialState
from db.models import Dataset, Search, utcnow

log = logging.getLogger(__name__)

MAX_TRIALS = 1000
# Ends the MLflow parent runs of searches the reaper marked failed (their killed driver never did). Named as a
# "module:function", as core.search.driver names its tracker: core.tracking sits above core.search.
LOST_SEARCH_TRACKING = "core.tracking.mlflow_searches:end_lost_searches"


class SearchError(ProtolabError):
    """A search that cannot be started or changed (what is wrong, and where)."""


def start_search(s: Session, *, dataset: Dataset, model_kind: str, trials: int, minutes: float | None = None,
                 metric: str | None = None, space: str | None = None, options: dict[str, Any] | None = None,
                 name: str | None = None, parallel: int | None = None,
                 search_settings: dict[str, Any] | None = None) -> int:
    """Create a search in the caller's transaction (its driver starts once that commits); its id. Everything is
    checked first, so a bad space or budget stores nothing."""
    kind = registry.get_kind(model_kind)
    if kind.task != dataset.task or kind.is_job or not kind.offered:
        raise SearchError(f"model {model_kind!r} cannot be searched on '{dataset.name}' (it trains on "
                          f"{kind.task} datasets; this one is {dataset.task})")
    if not 1 <= int(trials) <= MAX_TRIALS:
        raise SearchError(f"--trials must be between 1 and {MAX_TRIALS} (got {trials})")
    if minutes is not None and not minutes > 0:
        raise SearchError(f"--minutes must be above 0 (got {minutes})")
    params = parse_space(space, kind)
    fixed = {k: v for k, v in (options or {}).items() if k not in {p.name for p in params}}
    kind.make_config(fixed)  # the options every trial shares must be valid on their own
    metric = metric or kind.headline.key
    chosen = {**DEFAULT_SETTINGS, **(search_settings or {})}
    if chosen["pruner"] not in PRUNERS:
        raise SearchError(f"pruner must be one of {', '.join(PRUNERS)} (got {chosen['pruner']!r})")
    name = check_name(name, "a search", error=SearchError) if name and name.strip() else None
    search = search_queries.create_search(
        s, name=name, dataset_id=dataset.id, model_kind=kind.name, config=fixed,
        space=[p.as_dict() for p in params], metric=metric, n_trials=int(trials), minutes=minutes,
        parallel=int(parallel or default_parallel()), settings=chosen, status=SearchStatus.QUEUED,
        status_text="starting", stop_requested=False)
    search_id, first = search.id, defaults_inside(kind, params)

    def begin() -> None:
        if first is not None:  # trial 0 runs the kind's defaults: the search then never ends below them
            open_study(search_id, chosen).enqueue_trial(first, user_attrs={"defaults": True})
        launch_driver(search_id)
    after_commit(s, begin)
    return search_id


def default_parallel() -> int:
    """Trials queued at once: every slot of the live fleet (each GPU, each daemon's CPU runs), else what one
    machine runs at once (PROTOLAB_MAX_RUNS_PER_DEVICE)."""
    if queue.dispatch_mode() == "queue":
        with read_scope() as s:
            workers = worker_queries.live_workers(s, settings.WORKER_STALE_AFTER_S.get())
            slots = sum(max(1, len([d for d in w.devices or [] if d.startswith("cuda")]) or w.max_parallel)
                        for w in workers)
        return max(1, slots)
    return max(1, settings.MAX_RUNS_PER_DEVICE.get())


def driver_command(search_id: int) -> list[str]:
    return [sys.executable, "-m", "core.search.driver", str(int(search_id))]


def launch_driver(search_id: int) -> int:
    """Start the search's driver, detached (it outlives the page or CLI that started it); its pid."""
    folder = search_dir(search_id)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "driver.log", "ab") as log_file:
        proc = subprocess.Popen(driver_command(search_id), stdout=log_file, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=jobs.worker_env(), cwd=jobs.PROJECT_ROOT,
                                start_new_session=True)
    with session_scope() as s:
        search = search_queries.get_search(s, search_id)
        if search is not None:
            search.pid, search.host, search.heartbeat_at = proc.pid, socket.gethostname(), utcnow()
    return proc.pid


def stop_search(s: Session, search_id: int) -> None:
    """Ask a search to stop (its driver cancels the running trials); one whose driver is gone stops here."""
    search = _require(s, search_id)
    if not search.status.is_active:
        raise SearchError(f"search {search_id} is {search.status.value}; only a queued or running search can stop")
    search.stop_requested = True
    if _driver_gone(search):
        _stop_here(s, search)


def _stop_here(s: Session, search: Search) -> None:
    for trial in search_queries.trials_of(s, search.id):
        run = run_queries.get_run(s, trial.run_id) if trial.run_id else None
        if trial.state == TrialState.RUNNING:
            if run is not None and run.status.is_active:
                run_queries.request_cancel(s, run)
            search_queries.finish_trial(s, trial, TrialState.STOPPED, trial.value)
    search.status, search.finished_at, search.status_text = SearchStatus.STOPPED, utcnow(), "stopped"


def resume_search(s: Session, search_id: int) -> None:
    """Start a stopped or failed search's driver again (after the commit): it loads the study and goes on."""
    search = _require(s, search_id)
    if search.status.is_active and not _driver_gone(search):
        raise SearchError(f"search {search_id} is {search.status.value}; only a stopped or failed one resumes")
    search.status, search.stop_requested, search.error = SearchStatus.QUEUED, False, None
    search.finished_at, search.status_text, search.pid = None, "queued to resume", None
    after_commit(s, lambda: launch_driver(search_id))


def reap_lost_searches() -> list[int]:
    """Mark searches whose driver died (crashed, killed, its machine lost) as failed, so they can be resumed."""
    with read_scope() as s:
        lost = [x.id for x in search_queries.active_searches(s) if _driver_gone(x)]
    if not lost:
        return []
    marked = []
    with session_scope() as s:
        for search_id in lost:
            search = s.get(Search, search_id, with_for_update=True, populate_existing=True)
            if search is not None and search.status.is_active and _driver_gone(search):
                search.status, search.finished_at = SearchStatus.FAILED, utcnow()
                search.error = "the search's driver stopped without finishing (crashed or killed): resume it"
                search.status_text = "failed: driver lost"
                log.warning("search %d marked failed: its driver is gone", search_id)
                marked.append(search_id)
    if marked:  # only the reaper that marked them: its MLflow parent would otherwise say RUNNING forever
        resolve(LOST_SEARCH_TRACKING)(marked)
    return lost


def _driver_gone(search: Search) -> bool:
    if search.pid is None or search.heartbeat_at is None:
        return False  # being launched
    if search.host == socket.gethostname() and not _pid_alive(search.pid):
        return True
    stale = timedelta(seconds=settings.STALE_AFTER_S.get())
    return utcnow() - run_queries.as_utc(search.heartbeat_at) > stale


def _pid_alive(pid: int) -> bool:
    import psutil  # as core.runs.jobs: a recycled pid that now runs another program is not our driver

    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and "core.search.driver" in " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return pid == os.getpid()


def promote_best(s: Session, search_id: int) -> int:
    """Pin the search's best trial run for the demos and the API (core.runs.jobs.set_demo_pin); its run id."""
    search = _require(s, search_id)
    if search.best_run_id is None:
        raise SearchError(f"search {search_id} has no completed trial yet; nothing to promote")
    jobs.set_demo_pin(s, search.best_run_id, True)
    return search.best_run_id


@dataclass(frozen=True)
class SearchEstimate:
    """How long a whole search should take: one trial's estimate times the rounds of `parallel` trials."""

    seconds: float
    trial_seconds: float
    rounds: int
    capped: bool  # the minute budget ends it first

    def text(self) -> str:
        cap = " (the minute budget ends it first)" if self.capped else ""
        return (f"about {format_eta(self.seconds)} for the search{cap}: {self.rounds} round(s) of trials at about "
                f"{format_eta(self.trial_seconds)} each; pruning makes it shorter")


def estimate_search(dataset: Any, model_kind: str, options: dict[str, Any], trials: int, minutes: float | None,
                    parallel: int | None = None) -> SearchEstimate:
    """The whole search's time from its budget, from the kind's own estimate of one run at its options."""
    kind = registry.get_kind(model_kind)
    one = estimate_any(dataset, model_kind, kind.make_config(options)).seconds
    rounds = math.ceil(int(trials) / max(1, parallel or default_parallel()))
    total = one * rounds
    capped = minutes is not None and total > minutes * 60 + one  # the last trials started before the cut finish
    return SearchEstimate(minutes * 60 + one if capped else total, one, rounds, capped)


def summary(s: Session, search_id: int) -> dict[str, Any]:
    """What `protolab search --json` prints and the Search view shows: the search, its trials and its best."""
    search = _require(s, search_id)
    trials = [{"number": t.number, "run_id": t.run_id, "params": t.params, "value": t.value,
               "state": t.state.value} for t in search_queries.trials_of(s, search_id)]
    best = next((t for t in trials if t["run_id"] is not None and t["run_id"] == search.best_run_id), None)
    return {"search_id": search.id, "name": search.name, "dataset_id": search.dataset_id,
            "model": search.model_kind, "status": search.status.value, "status_text": search.status_text,
            "metric": f"validation {search.metric}", "n_trials": search.n_trials, "minutes": search.minutes,
            "space": [Param.of(p).describe() for p in search.space], "error": search.error,
            "trials": trials, "best": best}


def _require(s: Session, search_id: int) -> Search:
    search = search_queries.get_search(s, search_id)
    if search is None:
        raise SearchError(f"no search with id {search_id} (see `protolab search --list`)")
    return search
