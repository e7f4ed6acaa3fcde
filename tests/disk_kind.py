"""A test-only model kind whose run fills its disk: it writes its "checkpoint" until the file system refuses with
a real ENOSPC (loaded through PROTOLAB_MODEL_KINDS=tests.disk_kind, like tests.toy_kind)."""

from __future__ import annotations

from typing import Any

from core.runs.registry import ModelKind, register
from db.enums import TaskKind

NAME = "disk-filler"


def build_config(name: str, options: dict[str, Any]) -> dict[str, Any]:
    return {}


def execute(ctx: Any) -> dict[str, Any]:
    ctx.files.checkpoint.mkdir(parents=True, exist_ok=True)
    with open(ctx.files.checkpoint / "state.bin", "wb") as fh:  # grows until the disk is full
        while True:
            fh.write(bytes(256 * 1024))
            fh.flush()


register(ModelKind(NAME, TaskKind.CLASSIFICATION, "Disk filler", "writes until the disk is full",
                   "tests.disk_kind:build_config", "tests.disk_kind:execute", disk_mb=1))
