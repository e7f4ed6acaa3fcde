"""How long a page's read waits on SQLite while two workers write: session_scope (BEGIN IMMEDIATE) vs read_scope.

Two writer processes flush progress and metric points as fast as a busy worker would; the reader
alternates the two kinds of session on the same load and reports latency percentiles.
Run: .venv/bin/python bench/db_readers.py [seconds]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WRITER = """
import sys, time
from db import session_scope, with_retry
from db import runs as rq
from db.models import Run
run_id, end, i = int(sys.argv[1]), time.time() + float(sys.argv[2]), 0
while time.time() < end:
    i += 1
    def write():
        with session_scope() as s:
            rq.add_metric_points(s, run_id, [{"name": "loss", "value": 1.0 / i, "step": i}] * 5)
            run = s.get(Run, run_id)
            run.progress, run.status_text = (i % 100) / 100, f"step {i}"
            time.sleep(0.005)  # a flush that holds the write lock a little, as a busy disk does
    with_retry(write)
    time.sleep(0.02)
"""


def main(seconds: float = 16.0) -> None:
    home = tempfile.mkdtemp(prefix="protolab-bench-")
    os.environ["PROTOLAB_HOME"], os.environ["DATABASE_URL"] = home, f"sqlite:///{home}/protolab.db"
    sys.path.insert(0, str(ROOT))
    from core.data.storage import write_dataset
    from db import runs as run_queries
    from db import session_scope
    from db.engine import read_scope
    from db.enums import TaskKind
    from tests.conftest import sentiment_frame, with_splits

    with session_scope() as s:
        ds = write_dataset(s, name="bench", task=TaskKind.CLASSIFICATION, frame=with_splits(sentiment_frame()),
                           mapping={})
        ids = [run_queries.create_run(s, dataset_id=ds.id, task=TaskKind.CLASSIFICATION, model_kind="tfidf",
                                      config={}).id for _ in range(2)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(r), str(seconds + 1)], cwd=ROOT, env=env)
               for r in ids]
    time.sleep(2)
    latencies: dict[str, list[float]] = {"session_scope": [], "read_scope": []}
    end, i = time.time() + seconds - 3, 0
    while time.time() < end:
        name = "session_scope" if i % 2 == 0 else "read_scope"
        scope = session_scope if name == "session_scope" else read_scope
        i += 1
        start = time.perf_counter()
        with scope() as s:  # what the Home page reads
            run_queries.count_runs(s)
            [(r.id, r.status, r.progress) for r in run_queries.list_runs(s, limit=20)]
        latencies[name].append((time.perf_counter() - start) * 1000)
        time.sleep(0.01)
    for w in writers:
        w.wait()
    for name, values in latencies.items():
        values.sort()
        print(f"{name:>14}: n={len(values)} median={statistics.median(values):.1f} ms "
              f"p95={values[int(len(values) * 0.95)]:.1f} ms max={values[-1]:.1f} ms")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 16.0)
