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


class ReviewVerdict(enum.StrEnum):
    APPROVE = "approve"
    NEEDS_WORK = "needs_work"
