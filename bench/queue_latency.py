"""Queue latency in team mode: enqueue → claim → start for N queued runs drained by 1, 2 and 4 worker daemons.

Each case gets a fresh PostgreSQL database and shared data folder, starts W `protolab worker --devices cpu`
daemons, queues N runs of a near-instant model kind (tests.toy_kind: the majority class) in one transaction,
and waits until all completed. Per run: enqueue→claim (the queue itself: the SKIP LOCKED claim and the poll)
and enqueue→start (claim plus a worker process starting and flipping the run to running).
Run: .venv/bin/python bench/queue_latency.py [--runs 100] [--workers 1,2,4] [--url postgresql+psycopg://...]
Without --url a throwaway PostgreSQL server is started with initdb/pg_ctl (as the tests do).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A throwaway server on 127.0.0.1; its URL (without a database name)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        raise SystemExit("PostgreSQL binaries not found (apt-get install postgresql), or pass --url")
    bin_dir, root = found[-1].parent, Path(tempfile.mkdtemp(prefix="protolab-pg-"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root; the Debian package brings a `postgres` user
        shutil.chown(root, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*prefix, str(bin_dir / "initdb"), "-D", str(root / "data"), "-U", "protolab", "-A", "trust",
                    "--no-sync"], check=True, capture_output=True)
    subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-l", str(root / "log"), "-w",
                    "-o", f"-p {port} -h 127.0.0.1 -k {root} -F", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://protolab@127.0.0.1:{port}"
    finally:
        subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def fresh_database(server: str) -> str:
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server.replace("postgresql+psycopg://", "postgresql://") + "/postgres",
                         autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"


def one_case(server: str, workers: int, runs: int) -> dict[str, float]:
    from db import dispose_engines

    home = Path(tempfile.mkdtemp(prefix="protolab-bench-"))
    os.environ.update(PROTOLAB_HOME=str(home), DATABASE_URL=fresh_database(server),
                      PROTOLAB_MODEL_KINDS="tests.toy_kind", PROTOLAB_DISPATCH="queue")
    dispose_engines()
    import core.settings  # noqa: F401 - hands db/ its URL
    from core.data.storage import write_dataset
    from core.runs import jobs
    from core.runs.registry import get_kind
    from db import session_scope
    from db.enums import RunStatus, TaskKind
    from db.models import Run
    from tests.conftest import sentiment_frame, with_splits

    frame = with_splits(sentiment_frame())
    with session_scope() as s:
        dataset_id = write_dataset(s, name="bench", task=TaskKind.CLASSIFICATION, frame=frame,
                                   mapping={"text": "text", "label": "label"}, stats={}).id
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("PROTOLAB_DISPATCH")
    daemons = [subprocess.Popen([sys.executable, "-m", "core.cli", "worker", "--devices", "cpu", "--name", f"w{i}",
                                 "--max-parallel", "1"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL) for i in range(workers)]
    try:
        time.sleep(3)  # registered and polling
        config = get_kind("toy-majority").make_config({})
        t0 = time.time()
        with session_scope() as s:
            ids = [jobs.start_run(s, dataset_id=dataset_id, model_kind="toy-majority", config=dict(config))
                   for _ in range(runs)]
        while True:
            with session_scope() as s:
                rows = [s.get(Run, i) for i in ids]
                if all(not r.status.is_active for r in rows):
                    break
            time.sleep(0.5)
        wall = time.time() - t0
        failed = sum(r.status != RunStatus.COMPLETED for r in rows)
        claim = [_seconds(r.created_at, _claimed_at(r)) for r in rows]
        start = [_seconds(r.created_at, r.started_at) for r in rows if r.started_at]
        spread = len({e["worker"] for r in rows for e in r.events if e.get("event") == "claimed"})
    finally:
        for proc in daemons:
            proc.send_signal(signal.SIGTERM)
        for proc in daemons:
            proc.wait(timeout=120)
        shutil.rmtree(home, ignore_errors=True)
    return {"workers": workers, "runs": runs, "failed": failed, "used": spread, "wall_s": wall,
            "claim_p50": statistics.median(claim), "claim_max": max(claim),
            "start_p50": statistics.median(start), "start_p95": _pct(start, 95), "start_max": max(start),
            "throughput": runs / wall}


def _claimed_at(run) -> datetime:  # noqa: ANN001
    first = next(e for e in run.events if e.get("event") == "claimed")
    return datetime.fromisoformat(first["at"])


def _seconds(a: datetime, b: datetime) -> float:
    if (a.tzinfo is None) != (b.tzinfo is None):
        a, b = a.replace(tzinfo=None), b.replace(tzinfo=None)
    return (b - a).total_seconds()


def _pct(values: list[float], p: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--url", help="a PostgreSQL server URL without database (one database per case is made)")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        server = args.url or stack.enter_context(postgres_server())
        print("| workers | runs | enqueue→claim p50 / max | enqueue→start p50 / p95 / max | drained in | runs/s |")
        print("|---|---|---|---|---|---|")
        for w in (int(x) for x in args.workers.split(",")):
            r = one_case(server, w, args.runs)
            note = f" ({r['failed']} failed)" if r["failed"] else ""
            print(f"| {w} (used {r['used']}) | {r['runs']}{note} | {r['claim_p50']:.1f} / {r['claim_max']:.1f} s | "
                  f"{r['start_p50']:.1f} / {r['start_p95']:.1f} / {r['start_max']:.1f} s | {r['wall_s']:.0f} s | "
                  f"{r['throughput']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
