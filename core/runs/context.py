"""The executor contract: what a run's code gets from whoever runs it (RunContext).

The worker hands its own implementation (core.runs.worker.WorkerContext) to the executor that a model or job
kind names in core.runs.registry; tests hand a recording double. Both must have this shape, which a test checks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from core.runs.files import RunFiles
from db.enums import TaskKind
from db.models import Dataset


@runtime_checkable
class RunContext(Protocol):
    """One run's settings, and the callbacks an executor reports through (never the database itself)."""

    run_id: int
    task: TaskKind
    model_kind: str
    config: dict[str, Any]
    dataset_id: int
    artifact_dir: Path  # the run's folder; its layout is `files`
    rank: int  # this process's rank under torchrun (0 alone)
    world_size: int
    cancelled: bool  # set once a stop was seen, so the worker records the run as cancelled

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and reports."""
        ...

    @property
    def files(self) -> RunFiles: ...

    def dataset(self) -> Dataset:
        """The run's dataset row, detached from any session."""
        ...

    def set_device(self, device: str) -> None: ...

    def add_event(self, event: dict[str, Any]) -> None:
        """A one-off happening worth keeping on the run (auto batch size chosen, out-of-memory retry)."""
        ...

    def log_metric(self, name: str, value: float, *, step: int = 0, epoch: float | None = None,
                   split: str = "train") -> None: ...

    def progress(self, fraction: float, text: str, *, force: bool = False) -> None:
        """Progress (0..1) and a one-line status."""
        ...

    def should_stop(self) -> bool:
        """True once a stop was requested (cancel, or a hand-back to the queue)."""
        ...

    def raise_if_cancelled(self) -> None:
        """Raise the worker's RunCancelled when should_stop()."""
        ...
