"""Executors used by tests of the worker's state machine (the real ones: core.text.training, core.recs.training)."""

from __future__ import annotations

from typing import Any

from core.errors import ProtolabError
from core.runs.context import RunContext


def counting_executor(ctx: RunContext) -> dict[str, Any]:
    """Reports ten steps of progress and a loss that falls; stops early when cancelled."""
    for step in range(1, 11):
        if ctx.should_stop():
            return {}
        ctx.log_metric("train_loss", 1.0 / step, step=step)
        ctx.progress(step / 10, f"step {step}/10", force=True)
        (ctx.artifact_dir / "model.txt").write_text(f"step {step}")
    return {"macro_f1": 0.9, "steps": 10}


def cancel_midway_executor(ctx: RunContext) -> dict[str, Any]:
    from db import runs as run_queries
    from db import session_scope

    for step in range(1, 100):
        if step == 3:
            with session_scope() as s:
                run_queries.request_cancel(s, run_queries.get_run(s, ctx.run_id))
        ctx.raise_if_cancelled()
        ctx.progress(step / 100, f"step {step}", force=True)
    return {"never": True}


def user_error_executor(ctx: RunContext) -> dict[str, Any]:
    raise ProtolabError("max_length must be positive (got -3)")


def crashing_executor(ctx: RunContext) -> dict[str, Any]:
    return {"ratio": 1 / 0}
