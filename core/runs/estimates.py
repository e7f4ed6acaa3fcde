"""One entry point for pre-flight estimates of any model kind: each kind names its estimator in core.runs.registry
(text classifiers: core.text.estimate, recommenders: core.recs.estimate; each measures a probe and adds start-up
and evaluation).
"""

from __future__ import annotations

import importlib
import logging
import threading
from typing import Any

from core import settings
from core.errors import ProtolabError
from core.runs import registry
from core.runs.timing import startup_seconds
from db.enums import TaskKind

log = logging.getLogger(__name__)
_started = threading.Event()


def estimate_any(dataset: Any, model_kind: str, config: dict[str, Any]) -> Any:
    """The Estimate (seconds, parts, device, …) of a run of `model_kind` with `config` on `dataset`."""
    kind = registry.get_kind(model_kind).for_task(getattr(dataset, "task", None))  # its variant for the data
    estimator = kind.estimator()
    if estimator is None:  # e.g. SetFit: its pair training has no probe yet; say so plainly
        raise ProtolabError(f"no time estimate for {kind.label} yet; with the default settings it trains in minutes "
                            "on a CPU")
    return estimator(dataset, model_kind, config)


def measure_cold_starts_in_background() -> bool:
    """Start, once per process, measure_cold_starts in a thread (the app calls it when it starts); False when it
    had started already or PROTOLAB_MEASURE_AT_START is 0.

    Why at start and not in the first estimate: that launch is what made the first estimate take 11-20 s
    (issue 28: 9-13 s of a worker-like process on a loaded 2-core box, against the 5 s asked for), and timing the
    imports in the estimating process instead is rarely possible in the app: by then the server has imported
    torch and transformers (the Datasets page counts tokens with MiniLM's tokenizer), and it counts nothing of
    what the worker imports that the server has already (pandas, the database, the executor). Each figure is
    kept in calibration.json, so this costs one launch per kind once per machine; an estimate that comes first
    waits for the launch under way and launches what is still missing itself.
    """
    if _started.is_set() or not settings.MEASURE_AT_START.get():
        return False
    _started.set()
    threading.Thread(target=measure_cold_starts, name="protolab-cold-starts", daemon=True).start()
    return True


def measure_cold_starts(names: tuple[str, ...] | None = None) -> None:
    """For each offered kind with an estimate (or those `names`), text classifiers first (the most trained): a
    worker's start-up and (neural kinds, the estimator module's `measure_cold`) its default model's cold load,
    where this machine has not measured them yet."""
    kinds = sorted((k for k in registry.all_kinds() if k.estimate and k.offered and (names is None or k.name in names)),
                   key=lambda k: str(k.task) != str(TaskKind.CLASSIFICATION))
    for kind in kinds:
        measure = getattr(importlib.import_module(kind.estimate.partition(":")[0]), "measure_cold", startup_seconds)
        try:
            measure(kind.name)
        except Exception:  # noqa: BLE001 -- a kind that cannot start here: its estimate says why when asked
            log.warning("could not measure how %s starts", kind.name, exc_info=True)
