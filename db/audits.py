"""Query functions for data health audits. They take the session first and never commit."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.enums import AUDIT_KIND
from db.models import DataAudit, Run


def add_audit(s: Session, *, dataset_id: int, run_id: int | None, source: str, config: dict[str, Any],
              summary: dict[str, Any], findings: dict[str, Any], zero_label: dict[str, Any] | None) -> DataAudit:
    audit = DataAudit(dataset_id=dataset_id, run_id=run_id, source=source, config=config, summary=summary,
                      findings=findings, zero_label=zero_label or {})
    s.add(audit)
    s.flush()
    return audit


def latest_audit(s: Session, dataset_id: int) -> DataAudit | None:
    return s.scalar(select(DataAudit).where(DataAudit.dataset_id == dataset_id)
                    .order_by(DataAudit.created_at.desc(), DataAudit.id.desc()).limit(1))


def latest_audit_run(s: Session, dataset_id: int) -> Run | None:
    """The newest audit run of a dataset, whatever its status (what the page shows progress of)."""
    return s.scalar(select(Run).where(Run.dataset_id == dataset_id, Run.model_kind == AUDIT_KIND)
                    .order_by(Run.id.desc()).limit(1))
