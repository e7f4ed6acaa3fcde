"""Query functions for hyperparameter searches and their trials (db.models.Search, SearchTrial).

Like every query module: the session comes first and nothing here commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.enums import SearchStatus, TrialState
from db.models import Search, SearchTrial, utcnow


def create_search(s: Session, **values: Any) -> Search:
    search = Search(**values)
    s.add(search)
    s.flush()
    return search


def get_search(s: Session, search_id: int) -> Search | None:
    return s.get(Search, search_id)


def list_searches(s: Session, dataset_id: int | None = None) -> Sequence[Search]:
    q = select(Search).order_by(Search.id.desc())
    if dataset_id is not None:
        q = q.where(Search.dataset_id == dataset_id)
    return s.scalars(q).all()


def add_trial(s: Session, search_id: int, number: int, run_id: int, params: dict[str, Any]) -> SearchTrial:
    trial = SearchTrial(search_id=search_id, number=number, run_id=run_id, params=params, state=TrialState.RUNNING)
    s.add(trial)
    s.flush()
    return trial


def trials_of(s: Session, search_id: int) -> Sequence[SearchTrial]:
    return s.scalars(select(SearchTrial).where(SearchTrial.search_id == search_id)
                     .order_by(SearchTrial.number)).all()


def trial_of_run(s: Session, run_id: int) -> SearchTrial | None:
    return s.scalars(select(SearchTrial).where(SearchTrial.run_id == run_id)).first()


def trials_of_runs(s: Session, run_ids: Iterable[int]) -> dict[int, SearchTrial]:
    ids = list(run_ids)
    if not ids:
        return {}
    return {t.run_id: t for t in s.scalars(select(SearchTrial).where(SearchTrial.run_id.in_(ids))).all()}


def finish_trial(s: Session, trial: SearchTrial, state: TrialState, value: float | None) -> None:
    trial.state, trial.value, trial.finished_at = state, value, utcnow()


def active_searches(s: Session) -> Sequence[Search]:
    return s.scalars(select(Search).where(Search.status.in_([SearchStatus.QUEUED, SearchStatus.RUNNING]))).all()


def touch_heartbeat(s: Session, search_id: int) -> None:
    s.execute(update(Search).where(Search.id == search_id).values(heartbeat_at=utcnow()))
