"""The vocabulary runs and datasets share: what a run is doing, what a dataset holds, a reviewer's verdict.

Plain enums with no database import, so pure logic (core/) can use them without the ORM; db.models stores them
as short strings.
"""

from __future__ import annotations

import enum


class RunStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_active(self) -> bool:
        return self in (RunStatus.QUEUED, RunStatus.RUNNING)


class TaskKind(enum.StrEnum):
    CLASSIFICATION = "classification"
    INTERACTIONS = "interactions"
    MULTILABEL = "multilabel"  # texts with a set of tags each (core.multilabel)


class ReviewVerdict(enum.StrEnum):
    APPROVE = "approve"
    NEEDS_WORK = "needs_work"


# Run.model_kind of background jobs that are not models (a dataset's health audit, its label curve): the worker
# runs them like any run, but model pickers, leaderboards and demos leave them out.
AUDIT_KIND = "data_audit"
LABEL_CURVE_KIND = "label_curve"  # "how many labels do I need": few-shot models at 8..64 labels a class
JOB_KINDS = frozenset({AUDIT_KIND, LABEL_CURVE_KIND})
# The Label page's background retrain: a SetFit model trained on the labels given so far. A job (only its page
# starts it, no picker offers it), but its model serves the demos, so lists of models keep it.
LABEL_RETRAIN_KIND = "label_retrain"


class AppSettingKey(enum.StrEnum):
    """A setting a user saves from the app (db.app_settings). An environment variable of the same meaning, where
    there is one, wins over it (core.tracking.setting says so on the page)."""

    MLFLOW_TRACKING_URI = "mlflow.tracking_uri"  # MLFLOW_TRACKING_URI's stand-in
    MLFLOW_EXPERIMENT = "mlflow.experiment"  # PROTOLAB_MLFLOW_EXPERIMENT's


class SearchStatus(enum.StrEnum):
    """A hyperparameter search (db.models.Search): its driver process asks Optuna for trials and queues them."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"  # its budget is spent
    STOPPED = "stopped"  # stopped on request; resumable
    FAILED = "failed"  # its driver failed (or died: resumable too)

    @property
    def is_active(self) -> bool:
        return self in (SearchStatus.QUEUED, SearchStatus.RUNNING)


class TrialState(enum.StrEnum):
    """One trial of a search, as Optuna's study records it (plus "stopped": ended by a stop of its search)."""

    RUNNING = "running"
    COMPLETE = "complete"
    PRUNED = "pruned"  # stopped early by the pruner: its run is cancelled, on purpose
    FAILED = "failed"
    STOPPED = "stopped"

    @property
    def is_finished(self) -> bool:
        return self != TrialState.RUNNING
