"""One entry point for pre-flight estimates of any model kind: text classifiers are timed by
core.text.estimate, recommenders by core.recs.estimate (both measure a probe and add start-up and evaluation).
"""

from __future__ import annotations

from typing import Any

from core.errors import ProtolabError
from core.recs.estimate import estimate_recommender
from core.runs import registry
from core.text.estimate import estimate_run
from db.enums import TaskKind

ESTIMATED_TEXT_KINDS = ("transformer", "lstm", "tfidf")


def estimate_any(dataset: Any, model_kind: str, config: dict[str, Any]) -> Any:
    """The Estimate (seconds, parts, device, …) of a run of `model_kind` with `config` on `dataset`."""
    if registry.get_kind(model_kind).task is TaskKind.INTERACTIONS:
        return estimate_recommender(dataset, model_kind, config)
    if model_kind not in ESTIMATED_TEXT_KINDS:  # e.g. SetFit: its pair training has no probe yet; say so plainly
        raise ProtolabError(f"no time estimate for {registry.get_kind(model_kind).label} yet; "
                            "with the default settings it trains in minutes on a CPU")

    return estimate_run(dataset, model_kind=model_kind, config=config)
