"""A run's folder (PROTOLAB_HOME/runs/<id>/): the one place that knows its layout.

Every run keeps `meta.json` (what it is: kind, task, dataset, labels...) at the top, its servable model in
`model/`, resumable state in `checkpoint/`, prediction files in `predictions/`, the worker's log, and an
`INCOMPLETE` marker while it is not completed. Nothing else spells these paths.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ProtolabError
from core.settings import run_dir


class DiskSpaceError(ProtolabError):
    """Too little free space on the disk a run writes to: said before it starts, with what is free and where."""


def free_space(folder: Path) -> tuple[int, Path]:
    """(free bytes, the folder measured): the file system of `folder`, or of its nearest existing parent."""
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free, folder


def free_text(folder: Path) -> str:
    """'416 KB free on /data/runs': what a run's reason adds when a write found no room."""
    free, measured = free_space(folder)
    return f"{_size(free)} free on {measured}"


def check_room(folder: Path, need_mb: int, what: str) -> None:
    """DiskSpaceError unless `folder`'s disk has `need_mb` free: a run that cannot fit its model and checkpoint
    is refused before it starts, not after an hour of training."""
    free, measured = free_space(folder)
    if free < need_mb * 1024**2:
        raise DiskSpaceError(f"the disk is full: {_size(free)} free on {measured}; {what} needs at least about "
                             f"{need_mb} MB for its model and checkpoint (free some space or move PROTOLAB_HOME)")


def _size(n: int) -> str:
    return f"{n / 1024**3:.1f} GB" if n >= 1024**3 else f"{n / 1024**2:.1f} MB" if n >= 1024**2 else f"{n // 1024} KB"


@dataclass(frozen=True)
class RunFiles:
    root: Path
    meta: Path = field(init=False)  # what the run is: kind, task, dataset, labels...
    model: Path = field(init=False)  # the servable model, in its kind's own format
    checkpoint: Path = field(init=False)  # resumable training state
    predictions_dir: Path = field(init=False)
    worker_log: Path = field(init=False)
    incomplete_marker: Path = field(init=False)  # present while the files are partial (cancelled, failed)
    onnx_dir: Path = field(init=False)  # the ONNX export `protolab serve --runtime onnx` serves (made on demand)
    label_curve: Path = field(init=False)  # a label_curve job's scores so far (core.labelling.curve_job)

    def __post_init__(self) -> None:
        for name, relative in (("meta", "meta.json"), ("model", "model"), ("checkpoint", "checkpoint"),
                               ("predictions_dir", "predictions"), ("worker_log", "worker.log"),
                               ("incomplete_marker", "INCOMPLETE"), ("onnx_dir", "onnx"),
                               ("label_curve", "label_curve.json")):
            object.__setattr__(self, name, self.root / relative)

    @classmethod
    def of(cls, run_id: int) -> RunFiles:
        """The folder of run `run_id`, derived from its id only (never from a user-given path)."""
        return cls(run_dir(run_id))

    def predictions(self, split: str) -> Path:
        """The prediction file of one split ("validation" or "test")."""
        return self.predictions_dir / f"{split}.parquet"

    def exists(self) -> bool:
        return self.root.is_dir()

    def has_model(self) -> bool:
        return self.meta.is_file() and self.model.is_dir()

    def has_checkpoint(self) -> bool:
        return self.checkpoint.exists()

    def write_meta(self, meta: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.meta.write_text(json.dumps(meta, indent=2))

    def read_meta(self) -> dict[str, Any]:
        """meta.json as written; FileNotFoundError or ValueError (bad JSON) for the caller to explain."""
        meta = json.loads(self.meta.read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("meta.json does not hold an object")
        return meta

    def mark_incomplete(self, reason: str) -> None:
        """Keep a stopped run's files (for resume) but flag them as partial."""
        if self.root.exists():
            self.incomplete_marker.write_text(reason + "\n")

    def clear_incomplete(self) -> None:
        self.incomplete_marker.unlink(missing_ok=True)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
