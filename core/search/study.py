"""The Optuna study of a search: where it is stored, how it is opened, and its plotly figures.

Storage: Optuna's journal storage, one append-only file per search under PROTOLAB_HOME/searches/<id>/. Not the RDB
storage on the team's database, because (1) Optuna's RDB storage creates its own tables (studies, trials, ...) and
runs its own Alembic migrations, whose version table would sit beside Protolab's in the same database and schema;
(2) every worker already sees PROTOLAB_HOME (the dataset files live there; see the README, 'Several machines'), so
the study needs no new service; (3) JournalFileOpenLock takes its lock by creating a file, which works on NFS too.
Only the search's driver writes the study; the trials' workers report through their runs' metric points.

Optuna is imported inside the functions: it is heavy, and the pages import this module on start-up.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.settings import load_settings

log = logging.getLogger(__name__)

PRUNERS = ("median", "halving", "none")
DEFAULT_SETTINGS = {"seed": 42, "pruner": "median", "startup_trials": 2}


def search_dir(search_id: int) -> Path:
    """The folder of one search (its study journal and its driver's log); from its id only."""
    return load_settings().home / "searches" / str(int(search_id))


def study_path(search_id: int) -> Path:
    return search_dir(search_id) / "study.journal"


def study_name(search_id: int) -> str:
    return f"protolab-search-{int(search_id)}"


def open_study(search_id: int, settings: Mapping[str, Any] | None = None) -> Any:
    """The search's optuna.Study (created on first use; a resumed driver loads what the journal holds)."""
    import optuna  # heavy: kept off the pages' start-up path
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalStorage

    settings = {**DEFAULT_SETTINGS, **(settings or {})}
    path = study_path(search_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    storage = JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))
    sampler = optuna.samplers.TPESampler(seed=int(settings["seed"]), n_startup_trials=int(settings.get(
        "sampler_startup", 5)))
    return optuna.create_study(study_name=study_name(search_id), storage=storage, sampler=sampler,
                               pruner=make_pruner(settings), direction="maximize", load_if_exists=True)


def make_pruner(settings: Mapping[str, Any]) -> Any:
    """Optuna's median pruner (the default: a trial below the median of the finished ones at the same epoch stops),
    successive halving, or none."""
    import optuna  # heavy: kept off the pages' start-up path

    kind = settings.get("pruner", "median")
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=int(settings.get("startup_trials", 2)),
                                           n_warmup_steps=0)
    if kind == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


def search_figures(search_id: int) -> dict[str, Any]:
    """Optuna's plotly figures of a search: its optimisation history, parallel coordinates, parameter importances
    and slices; a figure that cannot be drawn yet (importances need two finished trials) is a str saying why."""
    import optuna  # heavy: kept off the pages' start-up path
    from optuna import visualization as vis

    if not study_path(search_id).exists():
        return {"history": "the study has no trials yet"}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(search_id)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    figures: dict[str, Any] = {}
    for key, draw, needs in (("history", vis.plot_optimization_history, 1),
                             ("parallel", vis.plot_parallel_coordinate, 1),
                             ("importances", vis.plot_param_importances, 2),
                             ("slices", vis.plot_slice, 1)):
        if len(complete) < needs:
            figures[key] = f"needs {needs} completed trial{'s' if needs > 1 else ''} ({len(complete)} so far)"
            continue
        try:
            figures[key] = draw(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:  # e.g. importances of a parameter never varied
            log.info("search %d: no %s figure: %s", search_id, key, exc)
            figures[key] = f"cannot be drawn yet: {exc}"
    return figures
