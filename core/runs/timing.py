"""How long runs take beyond their training steps: a worker process's start-up (interpreter and imports,
measured on this machine), and the ETA text of running work. Shared by the estimates and the executors.
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from core.runs import calibration, registry

ROOT = Path(__file__).resolve().parents[2]
log = logging.getLogger(__name__)


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


def imports_pending(model_kind: str) -> bool:
    """Whether some library a worker of `model_kind` imports is not imported in this process yet: a model that
    this process then builds is built cold, with its lazily imported modules, as the worker builds it."""
    return not all(module in sys.modules for module in worker_imports(model_kind))


def startup_key(model_kind: str) -> str:
    """The calibration entry of a worker's start-up: kinds with the same executor and imports start the same
    process (the Transformer and the LSTM), so one launch measures both."""
    kind = registry.get_kind(model_kind)
    return f"start-up|{kind.execute}|{','.join(kind.imports)}"


# One cold measurement at a time in a process: the server's pass at start (core.runs.estimates) and an estimate
# wait for each other instead of launching the same process twice (each is seconds of a core on a small box).
measuring = threading.RLock()


@functools.cache
def startup_seconds(model_kind: str) -> float:
    """Seconds from launching a worker process to its first line of work: Python, the worker, the kind's
    executor and the libraries it imports.

    Measured once per machine by starting such a process (kept in calibration.json): on a 2-core machine
    importing transformers alone takes about 10 s, which a 300-row run's estimate used to leave out.
    """
    with measuring:
        kept = calibration.lookup(startup_key(model_kind))
        if kept is not None:  # measured by an earlier process on this machine: no launch
            return float(kept["seconds"])
        return cold_start(model_kind).startup_s


@dataclass(frozen=True)
class ColdStart:
    startup_s: float  # launch to the imports done (and the process gone), less the load
    load_s: float | None  # the `load` call's seconds in that fresh process; None without one or when it failed


# The worker-like process: the worker module, the kind's executor and imports, then the optional load call
# (argv: kind, "module:function", its one string argument), timed on its own and printed as JSON.
_CHILD = """import importlib, json, sys, time
import core.runs.worker
from core.runs.registry import get_kind
from core.tasks import resolve
kind = get_kind(sys.argv[1])
kind.executor()
for module in kind.imports:
    importlib.import_module(module)
if len(sys.argv) > 2:
    start = time.perf_counter()
    resolve(sys.argv[2])(sys.argv[3])
    print(json.dumps({"load_s": time.perf_counter() - start}))
"""


def cold_start(model_kind: str, load: str | None = None, arg: str = "") -> ColdStart:
    """Launch one process as a worker of `model_kind` starts (kept as its start-up), and with `load` time that
    call in it too: a model built there is built cold, as the worker builds it (its libraries' lazily imported
    modules, its files read for the first time by this process), which a probe in a server that already loaded
    it cannot time (0.07 s warm against several seconds in the worker: the Transformer's 0.63, issue 28)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    argv = [sys.executable, "-c", _CHILD, model_kind, *((load, arg) if load else ())]
    start = time.perf_counter()
    # An import that fails here fails the run too, which then says why; the time is still what it took.
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    seconds = time.perf_counter() - start
    load_s = _load_seconds(done.stdout) if load and done.returncode == 0 else None
    if load and load_s is None:
        log.warning("could not time a cold load of %s: %s", model_kind, done.stderr.strip()[-300:])
    startup = max(0.0, seconds - (load_s or 0.0))
    calibration.remember(startup_key(model_kind), seconds=startup)
    return ColdStart(startup, load_s)


def _load_seconds(stdout: str) -> float | None:
    try:
        return float(json.loads(stdout.strip().splitlines()[-1])["load_s"])
    except (IndexError, KeyError, TypeError, ValueError):
        return None


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
