"""Query functions for worker daemons and their claims on runs. They take the session first and never commit.

The claim query locks queued runs with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so daemons on several machines
never wait for, nor take, the same row; SQLite has no row locks, but every writing transaction there starts with
BEGIN IMMEDIATE (db.engine), which makes a whole claim a single writer's turn.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, exists, func, or_, select, update
from sqlalchemy.orm import Session

from db.enums import RunStatus
from db.models import Run, RunClaim, Worker, utcnow
from db.runs import as_utc


def get_worker_by_name(s: Session, name: str) -> Worker | None:
    return s.scalar(select(Worker).where(Worker.name == name))


def add_worker(s: Session, **values: Any) -> Worker:
    worker = Worker(**values)
    s.add(worker)
    s.flush()
    return worker


def touch_worker(s: Session, worker_id: int, state: str | None = None) -> None:
    values: dict[str, Any] = {"heartbeat_at": utcnow()}
    if state is not None:
        values["state"] = state
    s.execute(update(Worker).where(Worker.id == worker_id).values(**values))


def live_workers(s: Session, within_s: float) -> list[Worker]:
    """Workers taking or finishing work whose last heartbeat is at most `within_s` seconds old."""
    cutoff = utcnow() - timedelta(seconds=within_s)
    q = select(Worker).where(Worker.state.in_(["online", "draining"])).order_by(Worker.name)
    return [w for w in s.scalars(q).all() if as_utc(w.heartbeat_at) >= cutoff]


def any_live_worker(s: Session, within_s: float) -> bool:
    return bool(live_workers(s, within_s))  # a handful of rows: compared in Python, as naive SQLite times need


def silent_workers(s: Session, older_than_s: float) -> list[Worker]:
    """Workers that claim to be online or draining but have not sent a heartbeat for `older_than_s` seconds."""
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    q = select(Worker).where(Worker.state.in_(["online", "draining"]))
    return [w for w in s.scalars(q).all() if as_utc(w.heartbeat_at) < cutoff]


def touch_queued_runs(s: Session, run_ids: Iterable[int]) -> None:
    ids = [int(i) for i in run_ids]
    if ids:
        s.execute(update(Run).where(Run.id.in_(ids), Run.status == RunStatus.QUEUED).values(heartbeat_at=utcnow()))


def all_workers(s: Session) -> Sequence[Worker]:
    return s.scalars(select(Worker).order_by(Worker.name)).all()


def lock_claimable_runs(s: Session, limit: int = 16) -> Sequence[Run]:
    """Queued runs that still need a node, oldest first, locked for this transaction (skipping locked ones).

    Few at a time: the rows a claim looks at are locked until it commits, and the others skip them.
    """
    nodes = func.coalesce(Run.config["nodes"].as_integer(), 1)
    unclaimed = ~exists().where(RunClaim.run_id == Run.id)
    q = (select(Run).where(Run.status == RunStatus.QUEUED, Run.cancel_requested.is_(False),
                           or_(unclaimed, nodes > 1))
         .order_by(Run.id).limit(limit).with_for_update(skip_locked=True, of=Run))
    return s.scalars(q).all()


def claims_of_run(s: Session, run_id: int) -> Sequence[RunClaim]:
    return s.scalars(select(RunClaim).where(RunClaim.run_id == run_id).order_by(RunClaim.node_rank)).all()


def claims_of_runs(s: Session, run_ids: Iterable[int]) -> dict[int, list[RunClaim]]:
    ids = [int(i) for i in run_ids]
    out: dict[int, list[RunClaim]] = {i: [] for i in ids}
    if ids:
        q = select(RunClaim).where(RunClaim.run_id.in_(ids)).order_by(RunClaim.run_id, RunClaim.node_rank)
        for claim in s.scalars(q).all():
            out[claim.run_id].append(claim)
    return out


def claims_of_worker(s: Session, worker_id: int) -> Sequence[RunClaim]:
    return s.scalars(select(RunClaim).where(RunClaim.worker_id == worker_id).order_by(RunClaim.id)).all()


def add_claim(s: Session, *, run_id: int, worker_id: int, node_rank: int, devices: list[str],
              endpoint: str | None = None) -> RunClaim:
    claim = RunClaim(run_id=run_id, worker_id=worker_id, node_rank=node_rank, devices=devices, endpoint=endpoint,
                     claimed_at=utcnow())
    s.add(claim)
    s.flush()  # the unique (run, node) constraint fires here, inside the claim's transaction
    return claim


def claim_exists(s: Session, claim_id: int) -> bool:
    return bool(s.scalar(select(exists().where(RunClaim.id == claim_id))))


def delete_claims(s: Session, run_id: int) -> None:
    s.execute(delete(RunClaim).where(RunClaim.run_id == run_id))


def delete_claim(s: Session, claim_id: int) -> None:
    s.execute(delete(RunClaim).where(RunClaim.id == claim_id))


def queued_ahead(s: Session, run_id: int) -> int:
    """How many queued, unclaimed runs were queued before `run_id` (its place in the queue minus one)."""
    unclaimed = ~exists().where(RunClaim.run_id == Run.id)
    return int(s.scalar(select(func.count()).select_from(Run).where(
        Run.status == RunStatus.QUEUED, Run.cancel_requested.is_(False), Run.id < run_id, unclaimed)) or 0)
