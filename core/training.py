"""Starting a training run: the one door the Train page and `protolab train` both go through.

It refuses a model made for another task than the dataset's, maps a model on a dataset still being labelled to
the job that trains it on the labels so far (core.labelling.pool.kind_to_train), then queues the run. A run with
a time budget its estimate is over gets a plan first (`plan_training`): both callers show it, then start the
planned config with the plan as an event.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from core.labelling.curve_job import latest_curve_run, read_curve_of, train_counts
from core.labelling.label_curve import aggregate
from core.labelling.pool import kind_to_train, task_to_train
from core.runs import jobs, registry
from core.runs.budget_plan import KNOBS, BudgetPlan, plan_budget
from core.runs.estimates import estimate_any
from core.tasks import get_task
from db import runs as run_queries
from db.models import Dataset


def start_training(s: Session, *, dataset: Dataset, model_kind: str, config: dict[str, Any],
                   name: str | None = None, estimate_s: float | None = None,
                   plan: BudgetPlan | None = None) -> int:
    """Queue a run of `model_kind` with `config` on `dataset` in the caller's transaction; the run id.
    `estimate_s`: the run's pre-flight estimate, when one was made (a short run then never waits behind a long one).
    `plan`: the time budget's plan `config` follows, kept on the run as its first event.
    """
    kind = registry.get_kind(model_kind)
    if not kind.trains(dataset.task):
        raise jobs.JobError(f"model {model_kind!r} needs a dataset of {get_task(kind.task).holds}; "
                            f"'{dataset.name}' holds {get_task(dataset.task).holds}")
    run_id = jobs.start_run(s, dataset_id=dataset.id, model_kind=kind_to_train(dataset, kind.name), config=config,
                            name=name, estimate_s=plan.planned_s if plan else estimate_s,
                            task=task_to_train(s, dataset))
    if plan is not None:
        run = run_queries.get_run(s, run_id)
        run.events = [*(run.events or []), plan.event()]
    return run_id


def plan_training(s: Session, *, dataset: Dataset, model_kind: str, config: dict[str, Any]) -> BudgetPlan | None:
    """The plan that fits a run with a time budget (`minutes`) into it, when its estimate is over; None without
    a budget, when it fits, or for a kind with no sample, length or epochs option to turn (the registry says).
    What the sample costs is read from the dataset's latest label curve, when it has one."""
    kind = registry.get_kind(model_kind).for_task(dataset.task)
    knobs = [o.name for o in kind.options if o.name in KNOBS]
    if not config.get("minutes") or not knobs or kind.estimator() is None:
        return None
    estimate = estimate_any(dataset, model_kind, config)
    if estimate.seconds <= 60.0 * float(config["minutes"]):
        return None
    curve_run = latest_curve_run(s, dataset.id)
    curve = read_curve_of(curve_run) if curve_run is not None else None
    points = {r["size"]: r["mean"] for r in aggregate((curve or {}).get("points") or []) if r["model"] == kind.name}
    return plan_budget(estimate, config, knobs, train_counts(dataset), curve=points or None,
                       curve_model=kind.short_label)
