"""What estimates measured on this machine, kept so the next estimate is a lookup and some arithmetic (issue 28,
item 5: a Transformer estimate took 30-70 s of probing on a 2-core CPU) and is corrected by what real runs took
(the LSTM's probe said half its real time).

One small JSON file in the data folder, keyed by what changes the speed of a step: the kind, its pretrained model,
max length, batch size, device and thread count. The probe writes its rates once; each completed run writes its
real seconds per training example, which the estimate then uses instead of the probe's. Loading the model has
its own entry (load_key): it depends on the kind and model only, and is measured cold, as the worker loads it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from core.settings import load_settings

FILE_NAME = "calibration.json"
REAL = "real_train_s_per_example"  # written by runs; preferred over the probe's rate
REAL_LOAD = "real_load_s"  # a run's seconds building its model, written by runs; preferred over COLD_LOAD
COLD_LOAD = "cold_load_s"  # the same measured by an estimate in a process that had not loaded it yet

log = logging.getLogger(__name__)

# The app's measurement at start writes from its own thread while pages' estimates write theirs: a read-merge-write
# at a time, so neither drops the other's entry.
_writing = threading.Lock()


def key_of(model_kind: str, config: Any, device: str, threads: int) -> str:
    """'lstm|minilm|64|32|cpu|2': a TrainConfig-like `config` on `device` with `threads` CPU threads."""
    get = config.get if isinstance(config, dict) else lambda name: getattr(config, name, None)
    return "|".join(str(v) for v in (model_kind, get("model_id") or "", get("max_length"), get("batch_size"),
                                     device, threads))


def load_key(model_kind: str, config: Any) -> str:
    """'model-load|transformer|<model id>|True': what loading the model of such a run takes does not depend on
    its length, batch or device (it is built on the CPU, then moved); the LSTM's embeddings from MiniLM do."""
    get = config.get if isinstance(config, dict) else lambda name: getattr(config, name, None)
    return "|".join(str(v) for v in ("model-load", model_kind, get("model_id") or "", get("init_embeddings")))


def _path() -> Path:
    return load_settings().home / FILE_NAME


def _read() -> dict[str, dict[str, Any]]:
    try:
        return json.loads(_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none yet, or half-written by a crashed process: measure again
        return {}


def lookup(key: str) -> dict[str, Any] | None:
    return _read().get(key)


def remember(key: str, **values: Any) -> None:
    """Merge `values` into the entry `key`, replacing the file in one step (a page never reads half of it)."""
    with _writing:
        _merge(key, values)


def _merge(key: str, values: dict[str, Any]) -> None:
    data = _read()
    data[key] = {**data.get(key, {}), **values}
    path = _path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        partial.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(partial, path)
    except OSError as exc:  # a read-only data folder: estimates still work, they just probe each time
        log.warning("could not keep the estimate's calibration in %s: %s", path, exc)
