"""Pre-flight estimate of a data audit: each of its steps timed on a sample of the dataset and scaled to all rows,
plus the worker's start-up (the data_audit kind's estimator in core.runs.kinds).

How the steps scale: embedding, the cross-validated probabilities and the zero-label baseline with the rows; the
near-duplicate search with the square of the rows (every text against every other). bench/queue_fairness.py prints
the estimate beside the real audit.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import numpy as np

from core.data.storage import load_frame
from core.health.audit import AuditError, cv_probabilities, oddities, parse_source
from core.health.duplicates import normalise_text
from core.health.embeddings import Encoder
from core.health.jobs import config_from_dict
from core.runs.timing import startup_seconds
from core.tasks import get_task
from core.text.estimate import Estimate, estimate_from_parts

PROBE_ROWS = 384  # rows the probe embeds and cross-validates: about 2-3 s on the 2-core box


@functools.cache
def _encoder() -> tuple[Encoder, float]:
    """MiniLM, loaded once per process, and the seconds its loading took (the audit's worker pays them once)."""
    start = time.perf_counter()
    encoder = Encoder()
    return encoder, time.perf_counter() - start


def estimate_audit(dataset: Any, model_kind: str, config: dict[str, Any]) -> Estimate:
    """Seconds an audit of `dataset` with `config` (as stored on the run) will take, and where they go."""
    if dataset is None:
        raise AuditError("that dataset no longer exists")
    task = get_task(dataset.task)
    if task.audit_estimate is not None:  # an audit of other things than texts (images) times its own steps
        return task.part("audit_estimate")(dataset, model_kind, config)
    cfg = config_from_dict(config)
    parts = {"start-up": startup_seconds(model_kind)}
    start = time.perf_counter()
    frame = load_frame(dataset)
    parts["loading data"] = time.perf_counter() - start
    n = len(frame)
    if n == 0:
        raise AuditError("the dataset has no rows to audit")
    sample = frame.sample(min(n, PROBE_ROWS), random_state=cfg.seed) if n > PROBE_ROWS else frame
    texts = sample["text"].astype(str).tolist()
    scale = n / len(sample)
    embeddings = None
    if cfg.embeddings:
        encoder, load_s = _encoder()
        start = time.perf_counter()
        embeddings = encoder.encode(texts)
        parts["embedding texts"] = load_s + (time.perf_counter() - start) * scale
    if task.audit_probe is not None:  # another task's label-error step (tag sets), on the same sample
        start = time.perf_counter()
        try:
            task.part("audit_probe")(sample, cfg, embeddings)
        except AuditError:  # a sample too small: the whole dataset may still do
            pass
        parts["label errors"] = (time.perf_counter() - start) * scale
    elif parse_source(cfg.source) is None:
        start = time.perf_counter()
        try:
            cv_probabilities(texts, sample["label"].astype(str).to_numpy(), cfg, embeddings=embeddings)
        except AuditError:  # a sample too small for every class: the whole dataset may still do
            pass
        parts["label errors"] = (time.perf_counter() - start) * scale
    start = time.perf_counter()
    for text in texts:
        normalise_text(text)
    oddities(texts, cfg.long_factor)
    linear = (time.perf_counter() - start) * scale
    if embeddings is not None:
        start = time.perf_counter()
        np.asarray(embeddings) @ np.asarray(embeddings).T
        linear += (time.perf_counter() - start) * scale * scale  # every row against every other
    parts["duplicates and oddities"] = linear
    seconds = sum(parts.values())
    return estimate_from_parts(parts, peak_memory_bytes=None, warning=None,
                               samples_per_s=n / seconds if seconds > 0 else None)
