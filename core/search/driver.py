"""A search's driver: `python -m core.search.driver SEARCH_ID` asks the Optuna study for trials, queues each as an
ordinary run (core.training.start_training, so the fleet's workers run several at once), feeds the study each
trial's per-epoch validation score as its worker writes it, prunes, and tells the study how each trial ended.

Pruning goes through the database like every other signal: the worker already writes the validation score of each
epoch as a metric point; when the pruner says stop, the driver requests the run's cancel, which the training loop
sees at its next step. So a pruned trial stops within an epoch and frees its worker; its run ends cancelled, with
a "pruned" event, and its trial is PRUNED in the study. The objective is the best validation score of the run (the
weights it keeps), never the test split.

A driver that dies leaves its search failed (core.search.searches.reap_lost_searches); resumed, a new driver
loads the study from its journal and carries on, the trials still running included: it takes them over as live
trials, so their next epochs are reported and pruned as before.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from core.errors import ProtolabError
from core.logs import configure_logging
from core.runs import registry
from core.search.space import Param, suggest
from core.search.study import open_study
from core.tasks import resolve
from core.training import start_training
from db import runs as run_queries
from db import searches as search_queries
from db import session_scope, with_retry
from db.enums import RunStatus, SearchStatus, TrialState
from db.models import Dataset, Search, SearchTrial, utcnow

log = logging.getLogger(__name__)

# core.search sits below core.tracking: the search's MLflow parent run is reached by name, as the worker's tracker is
SEARCH_TRACKER = "core.tracking.mlflow_searches:start_search_tracking"
POLL_S = 0.5  # how often the driver reads its trials: a pruned trial stops within this of its epoch
STOP_WAIT_S = 60.0  # how long a stopping search waits for its cancelled trials to end
HEARTBEAT_S = 2.0  # well within PROTOLAB_STALE_AFTER_S, after which a silent driver reads as lost


@dataclass
class Driver:
    search_id: int
    study: Any
    params: list[Param]
    live: dict[int, Any] = field(default_factory=dict)  # trial number -> optuna Trial asked by this process
    started: float = field(default_factory=time.monotonic)
    abort: str | None = None  # why the search cannot go on (its kind reports no validation score)
    tracker: Any = None  # the search's parent run in MLflow (core.tracking.mlflow_searches), when configured

    def step(self) -> bool:
        """Sync the running trials, queue new ones within the budget; False once the search is over."""
        with session_scope() as s:
            search = s.get(Search, self.search_id)
            for trial in search_queries.trials_of(s, self.search_id):
                if trial.state == TrialState.RUNNING:
                    self._sync(s, search, trial)
            search.heartbeat_at = utcnow()
            if search.stop_requested or self.abort is not None:
                return False
            trials = search_queries.trials_of(s, self.search_id)
            counted = [t for t in trials if t.state != TrialState.STOPPED]
            running = sum(t.state == TrialState.RUNNING for t in trials)
            in_time = search.minutes is None or time.monotonic() - self.started < search.minutes * 60
            while running < search.parallel and len(counted) < search.n_trials and in_time:
                counted.append(self._queue_trial(s, search))
                running += 1
            done = len([t for t in counted if t.state.is_finished])
            search.status_text = (f"{done}/{search.n_trials} trials finished, {running} running"
                                  + ("" if in_time else " · minute budget spent"))
            self.mark_best(s, search)
            return running > 0 or (len(counted) < search.n_trials and in_time)

    def _queue_trial(self, s: Any, search: Search) -> SearchTrial:
        trial = self.study.ask()
        values = suggest(trial, self.params)
        dataset = s.get(Dataset, search.dataset_id)
        try:
            config = registry.get_kind(search.model_kind).make_config({**search.config, **values})
            run_id = start_training(s, dataset=dataset, model_kind=search.model_kind, config=config,
                                    name=f"{search.name or f'search {search.id}'} · trial {trial.number}"[:200])
        except ProtolabError as exc:  # e.g. a combination the kind refuses: the trial fails, the search goes on
            log.warning("search %d trial %d not started: %s", search.id, trial.number, exc)
            self.study.tell(trial, state=_optuna_state(TrialState.FAILED))
            row = search_queries.add_trial(s, search.id, trial.number, None, values)
            search_queries.finish_trial(s, row, TrialState.FAILED, None)
            return row
        trial.set_user_attr("run_id", run_id)
        self.live[trial.number] = trial
        log.info("search %d: trial %d is run %d with %s", search.id, trial.number, run_id, values)
        return search_queries.add_trial(s, search.id, trial.number, run_id, values)

    def _sync(self, s: Any, search: Search, trial: SearchTrial) -> None:
        run = run_queries.get_run(s, trial.run_id) if trial.run_id is not None else None
        if run is None:
            self._finish(s, trial, TrialState.FAILED, None)
            return
        points = [p for p in run_queries.metric_points(s, run.id, search.metric) if p.split == "validation"]
        live = self.live.get(trial.number)
        pruned = any(e.get("event") == "pruned" for e in run.events or [])
        for point in points:
            epoch = int(round(point.epoch if point.epoch is not None else point.step))
            if epoch <= trial.last_step:
                continue
            trial.last_step, trial.value = epoch, point.value
            if live is not None:
                live.report(point.value, epoch)
                if not pruned and run.status.is_active and live.should_prune():
                    log.info("search %d: trial %d (run %d) pruned after epoch %d at %.4f", search.id, trial.number,
                             run.id, epoch, point.value)
                    run.events = [*(run.events or []), {"event": "pruned", "epoch": epoch, "at": utcnow().isoformat(),
                                                        "message": f"pruned by search {search.id} after epoch "
                                                                   f"{epoch}: below the other trials"}]
                    run_queries.request_cancel(s, run)
                    pruned = True
        if run.status.is_active:
            return
        best = max((p.value for p in points), default=None)
        if run.status == RunStatus.COMPLETED and best is not None:
            self._finish(s, trial, TrialState.COMPLETE, best)
        elif run.status == RunStatus.CANCELLED and pruned:
            run.status_text = f"pruned by search {search.id}"
            self._finish(s, trial, TrialState.PRUNED, trial.value)
        elif run.status == RunStatus.CANCELLED and search.stop_requested:
            self._finish(s, trial, TrialState.STOPPED, trial.value)
        else:
            if run.status == RunStatus.COMPLETED:
                self.abort = (f"run {run.id} completed without a validation {search.metric}: "
                              f"{registry.get_kind(search.model_kind).label} reports none, and a search never "
                              "scores on the test split")
            self._finish(s, trial, TrialState.FAILED, None)

    def _finish(self, s: Any, trial: SearchTrial, state: TrialState, value: float | None) -> None:
        target = self.live.pop(trial.number, trial.number)  # told by number when asked by an earlier driver
        if state == TrialState.COMPLETE:
            self.study.tell(target, value)
        else:
            self.study.tell(target, state=_optuna_state(state))
        search_queries.finish_trial(s, trial, state, value)
        if self.tracker is not None:
            self.tracker.trial_finished(trial.number, state, value, trial.search.metric)

    def mark_best(self, s: Any, search: Search) -> None:
        complete = [t for t in search_queries.trials_of(s, search.id)
                    if t.state == TrialState.COMPLETE and t.value is not None]
        if complete:
            search.best_run_id = max(complete, key=lambda t: (t.value, -t.number)).run_id

    def stop(self) -> None:
        """A stop was asked: cancel the running trials, wait for them to end, record them as stopped."""
        with session_scope() as s:
            for trial in search_queries.trials_of(s, self.search_id):
                run = run_queries.get_run(s, trial.run_id) if trial.run_id else None
                if trial.state == TrialState.RUNNING and run is not None and run.status.is_active:
                    run_queries.request_cancel(s, run)
        deadline = time.monotonic() + STOP_WAIT_S
        while time.monotonic() < deadline:
            with session_scope() as s:
                search = s.get(Search, self.search_id)
                search.heartbeat_at = utcnow()
                running = [t for t in search_queries.trials_of(s, self.search_id) if t.state == TrialState.RUNNING]
                for trial in running:
                    self._sync(s, search, trial)
                if not any(t.state == TrialState.RUNNING for t in running):
                    return
            time.sleep(POLL_S)


def _heartbeat_loop(search_id: int, stop: threading.Event) -> None:
    """Beat from a thread of its own, as a run's worker does: a step that blocks (opening the MLflow parent run on a
    slow store, a slow sampler) must not make a live driver read as lost and its search failed under it."""
    while not stop.wait(HEARTBEAT_S):
        try:
            with_retry(lambda: _touch(search_id))
        except Exception as exc:  # a missed beat is not worth failing the search for
            log.warning("search %d: heartbeat failed, the search goes on: %s: %s", search_id, type(exc).__name__, exc)


def _touch(search_id: int) -> None:
    with session_scope() as s:
        search_queries.touch_heartbeat(s, search_id)


def _optuna_state(state: TrialState) -> Any:
    import optuna  # heavy, but this is the driver's own process

    return {TrialState.PRUNED: optuna.trial.TrialState.PRUNED}.get(state, optuna.trial.TrialState.FAIL)


def drive(search_id: int) -> SearchStatus:
    """Run one search to its end (budget spent, stopped, or failed); its final status."""
    with session_scope() as s:
        search = s.get(Search, search_id)
        if search is None:
            log.error("no search with id %d", search_id)
            return SearchStatus.FAILED
        search.status, search.pid, search.host = SearchStatus.RUNNING, os.getpid(), socket.gethostname()
        search.heartbeat_at, search.started_at = utcnow(), search.started_at or utcnow()
        settings, params = dict(search.settings), [Param.of(p) for p in search.space]
    tracker, stop_heartbeat = None, threading.Event()
    threading.Thread(target=_heartbeat_loop, args=(search_id, stop_heartbeat), daemon=True).start()
    try:
        tracker = resolve(SEARCH_TRACKER)(search_id)  # before the first trial: its run names the parent
        driver = Driver(search_id, open_study(search_id, settings), params, tracker=tracker)
        _take_over_running(driver)
        while with_retry(driver.step) and driver.abort is None:
            time.sleep(POLL_S)
        if driver.abort is not None:
            raise ProtolabError(driver.abort)
        with session_scope() as s:
            stopping = s.get(Search, search_id).stop_requested
        if stopping:
            driver.stop()
        final = SearchStatus.STOPPED if stopping else SearchStatus.COMPLETED
        with session_scope() as s:
            driver.mark_best(s, s.get(Search, search_id))
        if tracker is not None:  # before the final status: whoever sees the search end finds its MLflow run ended
            tracker.finish(final)
        with session_scope() as s:
            search = s.get(Search, search_id)
            search.status, search.finished_at = final, utcnow()
            n = len([t for t in search.trials if t.state != TrialState.STOPPED])
            search.status_text = f"{'stopped' if stopping else 'completed'} after {n} trial(s)"
            log.info("search %d %s", search_id, search.status.value)
            return search.status
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the search row
        log.error("search %d failed: %s: %s", search_id, type(exc).__name__, exc, exc_info=not isinstance(
            exc, ProtolabError))
        if tracker is not None:
            tracker.finish(SearchStatus.FAILED)
        with session_scope() as s:
            search = s.get(Search, search_id)
            search.status, search.finished_at, search.status_text = SearchStatus.FAILED, utcnow(), "failed"
            search.error = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, KeyboardInterrupt):
            raise
        return SearchStatus.FAILED
    finally:
        stop_heartbeat.set()


def _take_over_running(driver: Driver) -> None:
    """The trials an earlier driver left RUNNING in the study. One recorded with a run is still training: it becomes
    a live trial of this driver (an optuna Trial on the same study row), so its epochs are reported and it can be
    pruned as before the crash; a trial only told by number at its end would run all its epochs. One without a run
    (that driver died between asking the study and recording it) is failed, so the budget and the sampler see only
    real trials."""
    import optuna  # heavy, but this is the driver's own process

    with session_scope() as s:
        recorded = {t.number: t for t in search_queries.trials_of(s, driver.search_id)}
    for frozen in driver.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        row = recorded.get(frozen.number)
        if row is None:
            driver.study.tell(frozen.number, state=optuna.trial.TrialState.FAIL)
        elif row.state == TrialState.RUNNING and row.run_id is not None:
            # A FrozenTrial keeps its storage id only as _trial_id (optuna's own Study.tell reads it there).
            driver.live[frozen.number] = optuna.trial.Trial(driver.study, frozen._trial_id)


def main(argv: list[str] | None = None) -> int:
    configure_logging(logging.INFO)  # this process's stderr is the search's driver.log
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        log.error("usage: python -m core.search.driver SEARCH_ID")
        return 2
    return 0 if drive(int(args[0])) in (SearchStatus.COMPLETED, SearchStatus.STOPPED) else 1


if __name__ == "__main__":
    sys.exit(main())
