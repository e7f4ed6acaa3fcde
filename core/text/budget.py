"""A run's time budget (`--minutes N`): when training must stop so the whole run ends in time, and what the
run says when it did. The loop asks `TimeBudget.spent` after each step; the executor builds the budget.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import psutil

from core.runs.context import RunContext
from core.text.config import TrainConfig


@dataclass(frozen=True)
class TimeBudget:
    """When training must be over: `deadline` (time.monotonic) less the time to evaluate `eval_examples` more
    examples after it (the final validation and test predictions) at the rate this run's forward passes go."""

    deadline: float
    eval_examples: int = 0

    def spent(self, train_seconds: float, samples: int, step_seconds: float, val_examples: int) -> bool:
        """True when one more step would leave too little time for a validation pass and the final predictions
        (a forward pass taken as a third of a training step, per example)."""
        if samples == 0:
            return False
        after = train_seconds / samples / 3 * (val_examples + self.eval_examples)
        return time.monotonic() + step_seconds + after >= self.deadline


SAVE_RESERVE_S = 5.0  # writing the model, predictions and metrics after the last prediction


def time_budget(ctx: RunContext, cfg: TrainConfig, *, n_eval: int, distributed: bool) -> TimeBudget | None:
    """The run's time budget as a deadline for training, counted from when this worker process started (its
    start-up and loading count: the user waits for them too); None without one. Under DDP each rank would
    decide on its own clock and the collectives would hang, so the budget is not applied there (said on the run)."""
    if cfg.minutes is None:
        return None
    if distributed:
        if ctx.is_main:
            ctx.add_event({"event": "time_budget_ignored",
                           "message": "the time budget is not applied to a run on several GPUs (DDP)"})
        return None
    started = psutil.Process().create_time()
    deadline = time.monotonic() - (time.time() - started) + 60.0 * cfg.minutes - SAVE_RESERVE_S
    return TimeBudget(deadline=deadline, eval_examples=n_eval)


def budget_event(cfg: TrainConfig, result: Any) -> dict[str, Any]:
    """What a run that stopped at its time budget says: where it stopped and which weights it kept."""
    state = result.state
    kept = (f"kept the weights of epoch {state.best_epoch} (validation macro-F1 {state.best_metric:.3f})"
            if state.best_epoch else "kept the last weights")
    return {"event": "time_budget", "minutes": cfg.minutes, "epochs_done": state.epoch, "steps": state.step,
            "best_epoch": state.best_epoch,
            "message": f"stopped at the {cfg.minutes:g}-minute time budget after {state.step} steps "
                       f"(in epoch {max(1, state.epoch)} of {cfg.epochs}); {kept}"}


