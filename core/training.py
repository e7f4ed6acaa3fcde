"""Starting a training run: the one door the Train page and `protolab train` both go through.

It refuses a model made for another task than the dataset's, maps a model on a dataset still being labelled to
the job that trains it on the labels so far (core.labelling.pool.kind_to_train), then queues the run.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from core.labelling.pool import kind_to_train
from core.runs import jobs, registry
from core.tasks import get_task
from db.models import Dataset


def start_training(s: Session, *, dataset: Dataset, model_kind: str, config: dict[str, Any],
                   name: str | None = None, estimate_s: float | None = None) -> int:
    """Queue a run of `model_kind` with `config` on `dataset` in the caller's transaction; the run id.
    `estimate_s`: the run's pre-flight estimate, when one was made (a short run then never waits behind a long one).
    """
    kind = registry.get_kind(model_kind)
    if not kind.trains(dataset.task):
        raise jobs.JobError(f"model {model_kind!r} needs a dataset of {get_task(kind.task).holds}; "
                            f"'{dataset.name}' holds {get_task(dataset.task).holds}")
    return jobs.start_run(s, dataset_id=dataset.id, model_kind=kind_to_train(dataset, kind.name), config=config,
                          name=name, estimate_s=estimate_s, task=dataset.task)
