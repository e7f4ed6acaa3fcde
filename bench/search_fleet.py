"""Two `protolab worker` daemons on one PostgreSQL share one search (issue 27's fleet benchmark).

Usage: .venv/bin/python bench/search_fleet.py [--trials 8] [--limit 3000] [--csv PATH]
Starts a throwaway PostgreSQL 15 on 127.0.0.1 (initdb + pg_ctl, as the `postgres` user when run as root), two
worker daemons (alpha, beta) on the same data folder, then `protolab search --model tfidf --trials N --wait --json`
on a tweets sample. The search's trials are queued as ordinary runs; the daemons claim them. Checked and printed:
every trial's run was claimed exactly once, both daemons ran trials, the Optuna study's trial count equals the
runs table's count of the search's runs, and the wall time against the same search with one daemon.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.search import DEFAULT_CSV, protolab, write_sample  # noqa: E402
from core import settings  # noqa: E402
from core.search.study import open_study  # noqa: E402
from db import dispose_engines, read_scope, session_scope  # noqa: E402
from db import runs as run_queries  # noqa: E402
from db import workers as worker_queries  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_postgres() -> tuple[str, Callable[[], None]]:
    bin_dir = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))[-1].parent
    root = Path(tempfile.mkdtemp(prefix="protolab-bench-pg-"))
    prefix = []
    if os.geteuid() == 0:  # initdb refuses root; Debian's package brings the postgres user
        shutil.chown(root, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", free_port()
    subprocess.run([*prefix, str(bin_dir / "initdb"), "-D", str(data), "-U", "protolab", "-A", "trust", "--no-sync"],
                   check=True, capture_output=True)
    subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-o",
                    f"-p {port} -h 127.0.0.1 -k {root} -F", "start"], check=True, capture_output=True)

    def stop() -> None:
        subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)

    return f"postgresql+psycopg://protolab@127.0.0.1:{port}/postgres", stop


def run_search(env: dict[str, str], names: list[str], trials: int, home: Path) -> dict:
    daemons = [subprocess.Popen([sys.executable, "-m", "core.cli", "worker", "--devices", "cpu", "--name", name,
                                 "--max-parallel", "1"], env=env, cwd=ROOT,
                                stdout=open(home / f"daemon-{name}.log", "ab"), stderr=subprocess.STDOUT)  # noqa: SIM115
               for name in names]
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # until every daemon is registered and beating
            with session_scope() as s:
                live = {w.name for w in worker_queries.live_workers(s, 15.0)}
            if set(names) <= live:
                break
            time.sleep(0.5)
        start = time.perf_counter()
        out = protolab(env, "search", "--dataset", "tweets", "--model", "tfidf", "--trials", str(trials),
                       "--wait", "--json")
        out["wall_s"] = time.perf_counter() - start
        return out
    finally:
        for proc in daemons:
            proc.send_signal(signal.SIGTERM)
        for proc in daemons:
            proc.wait(timeout=120)


def check(search: dict) -> dict:
    run_ids = [t["run_id"] for t in search["trials"]]
    with read_scope() as s:
        runs = [run_queries.get_run(s, i) for i in run_ids]
        claims = {r.id: [e["worker"] for e in r.events if e.get("event") == "claimed"] for r in runs}
        statuses = {r.status.value for r in runs}
        prefix = f"search {search['search_id']} "  # how the driver names its trials' runs
        searched = [r for r in run_queries.list_runs(s) if r.name and r.name.startswith(prefix)]
    study = open_study(search["search_id"])
    return {"trials": len(run_ids), "statuses": sorted(statuses),
            "claimed_exactly_once": all(len(c) == 1 for c in claims.values()),
            "trials_per_worker": {w: sum(c == [w] for c in claims.values())
                                  for w in sorted({w for c in claims.values() for w in c})},
            "study_trials": len(study.trials), "runs_of_the_search": len(searched),
            "wall_s": round(search["wall_s"], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--csv", type=Path, default=settings.TWEETS_CSV.get() or DEFAULT_CSV)
    parser.add_argument("--limit", type=int, default=3000)
    parser.add_argument("--trials", type=int, default=8)
    args = parser.parse_args()
    results = {}
    for names in (["alpha", "beta"], ["solo"]):
        url, stop = start_postgres()
        try:
            with tempfile.TemporaryDirectory() as folder:
                home = Path(folder)
                env = {**os.environ, "PROTOLAB_HOME": str(home), "DATABASE_URL": url, "PYTHONPATH": str(ROOT),
                       "PROTOLAB_WORKER_ADDRESS": "127.0.0.1", "OMP_NUM_THREADS": "1"}
                os.environ.update(PROTOLAB_HOME=str(home), DATABASE_URL=url)  # this process reads the same database
                dispose_engines()
                write_sample(args.csv, home / "tweets.csv", args.limit)
                protolab(env, "datasets", "add", str(home / "tweets.csv"), "--name", "tweets", "--task",
                         "classification", "--text-col", "text", "--label-col", "label")
                results["+".join(names)] = check(run_search(env, names, args.trials, home))
                dispose_engines()
        finally:
            stop()
    two, one = results["alpha+beta"], results["solo"]
    results["two_over_one_wall"] = round(two["wall_s"] / one["wall_s"], 3)
    results["load_avg"] = os.getloadavg()[0]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
