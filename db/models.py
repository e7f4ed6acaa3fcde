"""The database schema: datasets, runs and the metric points runs write while they train.

SQLAlchemy 2.0 typed declarative models. Schema changes go through an Alembic
revision in db/migrations/versions so existing databases upgrade in place.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Enum, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy import false as sa_false
from sqlalchemy import text as sa_text
from sqlalchemy import types as sa_types
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from db.enums import ReviewVerdict, RunStatus, SearchStatus, TaskKind, TrialState

MAX_ID = 2**31 - 1  # the largest id every database holds: PostgreSQL's INTEGER (SQLite's go to 2^63-1)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


# Enums are stored as short strings (no native PostgreSQL enum types) so that adding a
# value later is a code change, not a migration that rewrites a type.
def _str_enum(cls: type[enum.Enum]) -> Enum:
    return Enum(cls, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e],
                validate_strings=True)


class _TaskName(sa_types.TypeDecorator[str]):
    """A task's name as a short string: a TaskKind for the built-in tasks, the plain name for a task a plugin
    registers (core.tasks), which no enum here can list."""

    impl = String(16)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else str(value)

    def process_result_value(self, value: Any, dialect: Any) -> str | None:
        if value is None:
            return None
        try:
            return TaskKind(value)
        except ValueError:  # a plugin's task
            return str(value)


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    task: Mapped[str] = mapped_column(_TaskName(), index=True)  # a TaskKind for the built-in tasks
    source_filename: Mapped[str | None] = mapped_column(String(500))  # shown to users, never used as a path
    mapping: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    encoding: Mapped[str | None] = mapped_column(String(40))
    row_count: Mapped[int] = mapped_column(Integer, default=0)
    split_counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    warnings: Mapped[list[Any]] = mapped_column(JSON, default=list)
    storage_path: Mapped[str] = mapped_column(String(1000))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))
    changes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    runs: Mapped[list[Run]] = relationship(
        back_populates="dataset", cascade="all, delete-orphan", passive_deletes=True
    )
    parent: Mapped[Dataset | None] = relationship(remote_side="Dataset.id")

    def __repr__(self) -> str:
        return f"Dataset(id={self.id}, name={self.name!r}, task={self.task})"


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_status_device", "status", "device"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    task: Mapped[str] = mapped_column(_TaskName())  # a TaskKind for the built-in tasks
    model_kind: Mapped[str] = mapped_column(String(40))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[RunStatus] = mapped_column(_str_enum(RunStatus), default=RunStatus.QUEUED, index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    status_text: Mapped[str | None] = mapped_column(String(500))
    device: Mapped[str | None] = mapped_column(String(100))
    pid: Mapped[int | None] = mapped_column(Integer)
    host: Mapped[str | None] = mapped_column(String(255))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)
    artifact_path: Mapped[str | None] = mapped_column(String(1000))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # e.g. OOM retries and resumes, in order
    events: Mapped[list[Any]] = mapped_column(JSON, default=list, server_default=sa_text("'[]'"))
    parent_run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    # Chosen on purpose for demos: presentation mode shows a pinned run first, even a weak one
    pinned: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())
    # MLflow (core.tracking): the run's id there, and how far it got: "live" while logging as it trains, "logged"
    # once complete there, "failed" when the tracking server could not be reached (export-mlflow catches up)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64))
    mlflow_state: Mapped[str | None] = mapped_column(String(16))

    dataset: Mapped[Dataset] = relationship(back_populates="runs")
    reviews: Mapped[list[Review]] = relationship(
        back_populates="run", cascade="all, delete-orphan", passive_deletes=True, order_by="Review.id",
    )
    metric_points: Mapped[list[MetricPoint]] = relationship(
        back_populates="run", cascade="all, delete-orphan", passive_deletes=True,
        order_by="MetricPoint.id",
    )

    @property
    def duration_s(self) -> float | None:
        if not self.started_at:
            return None
        end = self.finished_at or utcnow()
        start = self.started_at
        if start.tzinfo is None:  # SQLite returns naive datetimes
            start = start.replace(tzinfo=UTC)
        if end.tzinfo is None:
            end = end.replace(tzinfo=UTC)
        return (end - start).total_seconds()

    def __repr__(self) -> str:
        return f"Run(id={self.id}, model={self.model_kind}, status={self.status.value})"


class MetricPoint(Base):
    __tablename__ = "metric_points"
    __table_args__ = (Index("ix_metric_points_run_name", "run_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer, default=0)
    epoch: Mapped[float | None] = mapped_column(Float)
    split: Mapped[str] = mapped_column(String(20), default="train")  # train | validation | test
    name: Mapped[str] = mapped_column(String(60))
    value: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    run: Mapped[Run] = relationship(back_populates="metric_points")


class Review(Base):
    """A stakeholder's verdict on a run: who, what they think, and when."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    reviewer: Mapped[str] = mapped_column(String(120))
    verdict: Mapped[ReviewVerdict] = mapped_column(_str_enum(ReviewVerdict))
    comment: Mapped[str] = mapped_column(Text, default="")
    # Runs compared together when the review was left on a comparison (empty for a single run).
    compared_run_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    run: Mapped[Run] = relationship(back_populates="reviews")


class Worker(Base):
    """A `protolab worker` daemon on some machine: what it offers and when it last said it was alive."""

    __tablename__ = "workers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    host: Mapped[str] = mapped_column(String(255))
    address: Mapped[str] = mapped_column(String(255))  # where other nodes reach it (rendezvous host)
    pid: Mapped[int] = mapped_column(Integer)
    devices: Mapped[list[Any]] = mapped_column(JSON, default=list)  # ["cuda:0", "cuda:1"] or ["cpu"]
    gpu_memory_mb: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # device -> total MiB
    max_parallel: Mapped[int] = mapped_column(Integer, default=1)
    version: Mapped[str] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(16), default="online")  # online | draining | stopped | lost
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)

    claims: Mapped[list[RunClaim]] = relationship(back_populates="worker", passive_deletes=True)


class RunClaim(Base):
    """One node of a run taken by a worker. The unique (run, node) pair is what makes a double claim impossible."""

    __tablename__ = "run_claims"
    __table_args__ = (UniqueConstraint("run_id", "node_rank", name="uq_run_claims_run_node"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"), index=True)
    node_rank: Mapped[int] = mapped_column(Integer, default=0)
    devices: Mapped[list[Any]] = mapped_column(JSON, default=list)  # the worker's devices given to this run
    endpoint: Mapped[str | None] = mapped_column(String(300))  # node 0 of a multi-node run: the rendezvous
    claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    worker: Mapped[Worker] = relationship(back_populates="claims")


class ApiKey(Base):
    """A key for `protolab serve`'s /v1 API: only a salted hash of its secret is kept (shown once at creation)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), index=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)  # the key's public part: finds the row
    salt: Mapped[str] = mapped_column(String(64))
    secret_hash: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Its scope: the run ids it may call (None: every run), and whether it may only list runs (GET /v1/runs).
    run_ids: Mapped[list[Any] | None] = mapped_column(JSON, default=None)
    read_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())


class LabelClass(Base):
    """One label of an unlabelled dataset's label set, in the order the Label page shows (shortcut 1-9)."""

    __tablename__ = "label_classes"
    __table_args__ = (Index("ux_label_classes_dataset_name", "dataset_id", "name", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(300), default="")
    position: Mapped[int] = mapped_column(Integer, default=0)


class LabelSet(Base):
    """The kind of label set a pool has: the task its labels make (one label a text, or a tag set a text); a pool
    without a row labels one label a text."""

    __tablename__ = "label_sets"

    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    task: Mapped[str] = mapped_column(_TaskName())  # a TaskKind whose entry has a `labelling`


class LabelEvent(Base):
    """One label given to one row of an unlabelled dataset, as it was given (an append-only log).

    A row's current label is its latest event; `label` NULL is a skip; undo deletes the latest event.
    """

    __tablename__ = "label_events"
    __table_args__ = (Index("ix_label_events_dataset_row", "dataset_id", "row_index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    row_index: Mapped[int] = mapped_column(Integer)  # the row's position in the dataset's data file
    # A class name, or a tag set encoded as multi-label datasets store one (a JSON list; "[]" is no tag).
    label: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DataAudit(Base):
    """A data health audit of one dataset version: counts, flagged rows and the zero-label baseline's scores."""

    __tablename__ = "data_audits"

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))  # None: from the CLI
    source: Mapped[str] = mapped_column(String(40))  # "cv" | "run:ID"
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    findings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    zero_label: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Search(Base):
    """A hyperparameter search: a run of runs. Its driver (core.search.driver) asks the Optuna study for trials,
    queues each as an ordinary run and tells the study their validation scores; the study itself is a journal file
    in the search's folder (core.search.study says why), this row is what pages and the CLI read."""

    __tablename__ = "searches"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    model_kind: Mapped[str] = mapped_column(String(40))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # options every trial shares
    space: Mapped[list[Any]] = mapped_column(JSON, default=list)  # [{"name", "type", "low", "high", "log", ...}]
    metric: Mapped[str] = mapped_column(String(60))  # the validation metric maximised
    n_trials: Mapped[int] = mapped_column(Integer)
    minutes: Mapped[float | None] = mapped_column(Float)  # no new trial after this long (None: trials only)
    parallel: Mapped[int] = mapped_column(Integer, default=1)  # trials queued at once
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # sampler seed, pruner
    status: Mapped[SearchStatus] = mapped_column(_str_enum(SearchStatus), default=SearchStatus.QUEUED, index=True)
    status_text: Mapped[str | None] = mapped_column(String(500))
    stop_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    pid: Mapped[int | None] = mapped_column(Integer)  # the driver's
    host: Mapped[str | None] = mapped_column(String(255))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)
    best_run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    # its parent run in MLflow (core.tracking.mlflow_searches): the trials' MLflow runs are its children
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64))

    trials: Mapped[list[SearchTrial]] = relationship(
        back_populates="search", cascade="all, delete-orphan", passive_deletes=True, order_by="SearchTrial.number")


class SearchTrial(Base):
    """One trial of a search: the Optuna trial number, the run that trains it, its parameters and its score."""

    __tablename__ = "search_trials"
    __table_args__ = (UniqueConstraint("search_id", "number", name="uq_search_trials_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    search_id: Mapped[int] = mapped_column(ForeignKey("searches.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)  # the study's trial number
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"), index=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[TrialState] = mapped_column(_str_enum(TrialState), default=TrialState.RUNNING)
    value: Mapped[float | None] = mapped_column(Float)  # the validation metric (the last reported, if pruned)
    last_step: Mapped[int] = mapped_column(Integer, default=0)  # the last epoch reported to the pruner
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    search: Mapped[Search] = relationship(back_populates="trials")


class AppSetting(Base):
    """One setting saved from the app, by its key (db.enums.AppSettingKey), as text; no row: not set.

    Key/value rather than one row with a column per setting: the settings are few, optional and each one short text,
    so adding one is a new key in code, not a migration, and "not set" is a missing row rather than a NULL column
    that an old row and a cleared one would both show."""

    __tablename__ = "app_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
