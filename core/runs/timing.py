"""How long runs take beyond their training steps: a worker process's start-up (interpreter and imports,
measured on this machine), and the ETA text of running work. Shared by the estimates and the executors.
"""

from __future__ import annotations

import functools
import importlib
import os
import subprocess
import sys
import time
from pathlib import Path

from core.runs import calibration, registry

ROOT = Path(__file__).resolve().parents[2]


def worker_imports(model_kind: str) -> tuple[str, ...]:
    """What a worker of `model_kind` imports before and during its work, beyond its executor's module: the
    libraries the executor imports inside its functions (timed here once, never inside a probe)."""
    return registry.get_kind(model_kind).imports


def preload(model_kind: str) -> None:
    """Import what a run of `model_kind` imports, in this process, so a probe times work and not imports
    (the first estimate in a fresh server would otherwise count several seconds of imports twice)."""
    registry.get_kind(model_kind).executor()
    for module in worker_imports(model_kind):
        importlib.import_module(module)


@functools.cache
def startup_seconds(model_kind: str) -> float:
    """Seconds from launching a worker process to its first line of work: Python, the worker, the kind's
    executor and the libraries it imports.

    Measured once per server process by starting such a process: on a 2-core machine importing
    transformers alone takes about 10 s, which a 300-row run's estimate used to leave out.
    """
    kept = calibration.lookup(f"start-up|{model_kind}")
    if kept is not None:  # measured by an earlier server process on this machine: a new one needs no 10 s launch
        return float(kept["seconds"])
    code = (f"import core.runs.worker; from core.runs.registry import get_kind; get_kind({model_kind!r}).executor(); "
            + "; ".join(f"import {m}" for m in worker_imports(model_kind)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    # An import that fails here fails the run too, which then says why; the time is still what it took.
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, timeout=300, check=False)
    seconds = time.perf_counter() - start
    calibration.remember(f"start-up|{model_kind}", seconds=seconds)
    return seconds


def format_eta(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    if seconds >= 60:
        return f"{seconds // 60}m {seconds % 60}s"
    return f"{seconds}s"


def remaining_seconds(done: float, total: float, elapsed_s: float, after_s: float = 0.0) -> float | None:
    """Time left for `total` units when `done` took `elapsed_s`, plus `after_s` of work after the last unit
    (evaluation, saving); None before the first unit is done."""
    if done <= 0 or elapsed_s <= 0:
        return None
    return max(0.0, (total - done) * elapsed_s / done) + max(0.0, after_s)
