"""One entry point for pre-flight estimates of any model kind: each kind names its estimator in core.runs.registry
(text classifiers: core.text.estimate, recommenders: core.recs.estimate; each measures a probe and adds start-up
and evaluation).
"""

from __future__ import annotations

from typing import Any

from core.errors import ProtolabError
from core.runs import registry


def estimate_any(dataset: Any, model_kind: str, config: dict[str, Any]) -> Any:
    """The Estimate (seconds, parts, device, …) of a run of `model_kind` with `config` on `dataset`."""
    kind = registry.get_kind(model_kind).for_task(getattr(dataset, "task", None))  # its variant for the data
    estimator = kind.estimator()
    if estimator is None:  # e.g. SetFit: its pair training has no probe yet; say so plainly
        raise ProtolabError(f"no time estimate for {kind.label} yet; with the default settings it trains in minutes "
                            "on a CPU")
    return estimator(dataset, model_kind, config)
