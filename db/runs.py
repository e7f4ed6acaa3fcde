"""Query functions for runs and their metric points. They take the session first and never commit."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, selectinload

from db.enums import JOB_KINDS, ReviewVerdict, RunStatus
from db.models import MetricPoint, Review, Run, utcnow


def create_run(
    s: Session, *, dataset_id: int, task: str, model_kind: str, config: dict[str, Any],
    name: str | None = None, parent_run_id: int | None = None, device: str | None = None,
) -> Run:
    run = Run(dataset_id=dataset_id, task=task, model_kind=model_kind, config=config, name=name,
              parent_run_id=parent_run_id, device=device, status=RunStatus.QUEUED, progress=0.0,
              status_text="queued", metrics={}, events=[], cancel_requested=False)
    s.add(run)
    s.flush()
    return run


def get_run(s: Session, run_id: int) -> Run | None:
    return s.get(Run, run_id)


def list_runs(
    s: Session, *, dataset_id: int | None = None, task: str | None = None,
    statuses: Iterable[RunStatus] | None = None, limit: int | None = None, models_only: bool = False,
) -> Sequence[Run]:
    # Every list shows the run's dataset: load them in one query, not one per run.
    q = select(Run).options(selectinload(Run.dataset)).order_by(Run.created_at.desc(), Run.id.desc())
    if dataset_id is not None:
        q = q.where(Run.dataset_id == dataset_id)
    if task is not None:
        q = q.where(Run.task == task)
    if statuses is not None:
        q = q.where(Run.status.in_(list(statuses)))
    if models_only:  # leave out background jobs such as data audits
        q = q.where(Run.model_kind.not_in(JOB_KINDS))
    if limit:
        q = q.limit(limit)
    return s.scalars(q).all()


def latest_run_of_kind(s: Session, dataset_id: int, model_kind: str) -> Run | None:
    """The newest run of `model_kind` on a dataset, whatever its status (a job's page shows its progress)."""
    return s.scalar(select(Run).where(Run.dataset_id == dataset_id, Run.model_kind == model_kind)
                    .order_by(Run.id.desc()).limit(1))


def best_completed_run_of_kind(s: Session, dataset_id: int, model_kind: str, *, exclude_run_id: int | None,
                               metric_key: str) -> Run | None:
    """The completed `model_kind` run on a dataset with the highest numeric `metrics[metric_key]` (newest on ties)."""
    score = Run.metrics[metric_key].as_float()
    q = select(Run.id).where(Run.dataset_id == dataset_id, Run.model_kind == model_kind,
                             Run.status == RunStatus.COMPLETED, score.is_not(None))
    if exclude_run_id is not None:
        q = q.where(Run.id != exclude_run_id)
    # Only the winner's row is loaded: a dataset with hundreds of runs must not parse every report.
    best = s.scalar(q.order_by(score.desc(), Run.id.desc()).limit(1))
    return s.get(Run, best) if best is not None else None


@dataclass(frozen=True)
class RunRecord:
    """A light view of a run for pickers and leaderboards: headline metrics only, no per-split reports."""

    id: int
    name: str | None
    model_kind: str
    task: str  # a TaskKind for the built-in tasks
    dataset_id: int
    config: dict[str, Any]
    metrics: dict[str, Any]
    device: str | None
    duration_s: float | None


def run_records(s: Session, metric_keys: Sequence[str], *, dataset_ids: Iterable[int] | None = None,
                run_ids: Iterable[int] | None = None) -> list[RunRecord]:
    """Completed runs, newest first, with only `metric_keys` of their metrics (extracted in SQL)."""
    columns = [Run.id, Run.name, Run.model_kind, Run.task, Run.dataset_id, Run.config, Run.device,
               Run.started_at, Run.finished_at, *(Run.metrics[k] for k in metric_keys)]
    # Jobs (data audits) are runs too, but have no model to pick or rank.
    q = (select(*columns).where(Run.status == RunStatus.COMPLETED, Run.model_kind.not_in(JOB_KINDS))
         .order_by(Run.created_at.desc(), Run.id.desc()))
    if dataset_ids is not None:
        q = q.where(Run.dataset_id.in_([int(i) for i in dataset_ids]))
    if run_ids is not None:
        q = q.where(Run.id.in_([int(i) for i in run_ids]))
    out = []
    for row in s.execute(q).all():
        metrics = {k: v for k, v in zip(metric_keys, row[9:], strict=True) if v is not None}
        out.append(RunRecord(id=row.id, name=row.name, model_kind=row.model_kind, task=row.task,
                             dataset_id=row.dataset_id, config=row.config or {}, metrics=metrics, device=row.device,
                             duration_s=_seconds(row.started_at, row.finished_at)))
    return out


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    if (start.tzinfo is None) != (end.tzinfo is None):  # SQLite hands back naive datetimes
        start, end = start.replace(tzinfo=None), end.replace(tzinfo=None)
    return (end - start).total_seconds()


def count_runs(s: Session) -> dict[str, int]:
    rows = s.execute(select(Run.status, func.count()).group_by(Run.status)).all()
    return {status.value: n for status, n in rows}


def add_metric_points(s: Session, run_id: int, points: Iterable[dict[str, Any]]) -> None:
    """Insert points given as dicts with name, value and optional step, epoch, split."""
    s.add_all(MetricPoint(run_id=run_id, **p) for p in points)


def metric_points(s: Session, run_id: int, name: str | None = None) -> Sequence[MetricPoint]:
    q = select(MetricPoint).where(MetricPoint.run_id == run_id).order_by(MetricPoint.id)
    if name is not None:
        q = q.where(MetricPoint.name == name)
    return s.scalars(q).all()


def metric_point_rows(s: Session, run_ids: Iterable[int]) -> list[tuple[Any, ...]]:
    """(run_id, name, split, step, epoch, value) of every metric point of several runs, in insertion order."""
    ids = [int(i) for i in run_ids]
    if not ids:
        return []
    q = (select(MetricPoint.run_id, MetricPoint.name, MetricPoint.split, MetricPoint.step, MetricPoint.epoch,
                MetricPoint.value)
         .where(MetricPoint.run_id.in_(ids)).order_by(MetricPoint.id))
    return [tuple(row) for row in s.execute(q).all()]


def request_cancel(s: Session, run: Run) -> None:
    """Ask a run to stop: a queued run is cancelled at once, a running one at its next step."""
    if run.status == RunStatus.QUEUED:
        run.status = RunStatus.CANCELLED
        run.finished_at = utcnow()
        run.status_text = "cancelled before it started"
    run.cancel_requested = True


def is_cancel_requested(s: Session, run_id: int) -> bool:
    return bool(s.scalar(select(Run.cancel_requested).where(Run.id == run_id)))


def touch_heartbeat(s: Session, run_id: int) -> None:
    s.execute(update(Run).where(Run.id == run_id).values(heartbeat_at=utcnow()))


def runs_with_stale_heartbeat(s: Session, older_than_s: float) -> Sequence[Run]:
    """Runs that claim to be active but whose worker has not reported for `older_than_s` seconds."""
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    q = select(Run).where(Run.status.in_([RunStatus.RUNNING, RunStatus.QUEUED]))
    return [r for r in s.scalars(q).all() if r.heartbeat_at is not None and as_utc(r.heartbeat_at) < cutoff]


def active_runs(s: Session) -> Sequence[Run]:
    return s.scalars(select(Run).where(Run.status.in_([RunStatus.RUNNING, RunStatus.QUEUED]))
                     .order_by(Run.id)).all()


def set_pinned(s: Session, run: Run, pinned: bool) -> None:
    """Pin a run for demos (the one pinned run of its task: pinning another unpins it), or unpin it."""
    if pinned:
        s.execute(update(Run).where(Run.task == run.task, Run.id != run.id, Run.pinned.is_(True))
                  .values(pinned=False))
    run.pinned = pinned
    s.flush()


def set_mlflow(s: Session, run_id: int, *, mlflow_run_id: str | None, state: str) -> None:
    """Record where a run went in MLflow and how far ("live", "logged", "failed")."""
    s.execute(update(Run).where(Run.id == run_id).values(mlflow_run_id=mlflow_run_id, mlflow_state=state))


def runs_not_in_mlflow(s: Session) -> Sequence[Run]:
    """Finished runs, oldest first, that are not completely logged to MLflow yet."""
    q = (select(Run).options(selectinload(Run.dataset)).order_by(Run.id)
         .where(Run.status.in_([RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED]))
         .where((Run.mlflow_state.is_(None)) | (Run.mlflow_state != "logged")))
    return s.scalars(q).all()


def delete_run(s: Session, run: Run) -> None:
    s.delete(run)


def as_utc(ts: datetime) -> datetime:
    # SQLite hands back naive datetimes even for timezone=True columns; they are UTC.
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def add_review(s: Session, run_id: int, *, reviewer: str, verdict: ReviewVerdict, comment: str = "",
               compared_run_ids: list[int] | None = None) -> Review:
    review = Review(run_id=run_id, reviewer=reviewer.strip()[:120], verdict=verdict, comment=comment,
                    compared_run_ids=list(compared_run_ids or []))
    s.add(review)
    s.flush()
    return review


def reviews_of(s: Session, run_id: int) -> Sequence[Review]:
    return s.scalars(select(Review).where(Review.run_id == run_id).order_by(Review.id)).all()
