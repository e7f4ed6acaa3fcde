"""Queue fairness on one CPU machine: how long a short run (EASE on MovieLens 100K, a few seconds) waits behind a
long job, first come first served (PROTOLAB_EXPRESS_SLOTS=0, the old queue) against the express lane (1, the
default; core.runs.scheduling). Target: the short run starts within 15 s of being queued. Also the data audit's
pre-flight estimate beside the real audit, and its embedding speed in fp32 and in the precision it now uses.

Usage: .venv/bin/python bench/queue_fairness.py [--long-s 40] [--audit-rows 2000] [--data ../shared/datasets]
Runs in a throwaway PROTOLAB_HOME with real worker processes (local dispatch, one run per device). The long job is
a kind registered by this module (PROTOLAB_MODEL_KINDS=bench.queue_fairness) that keeps one core busy for
--long-s seconds, with no estimate, as a long audit or training run holds the queue.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.runs.registry import ModelKind, register  # noqa: E402
from db.enums import TaskKind  # noqa: E402

LONG_KIND = "bench-long-job"


def long_job(ctx: Any) -> dict[str, Any]:
    """Keeps one core busy for config["seconds"], reporting progress, until done or cancelled."""
    seconds = float(ctx.config.get("seconds", 40))
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        ctx.raise_if_cancelled()
        ctx.progress(elapsed / seconds, f"busy {elapsed:.0f}/{seconds:.0f} s")
        deadline = time.monotonic() + 0.2
        while time.monotonic() < deadline:
            pass
    return {"seconds": seconds}


def _config(name: str, options: dict[str, Any]) -> dict[str, Any]:
    return {"seconds": float(options.get("seconds", 40)), "device": "cpu"}


register(ModelKind(LONG_KIND, TaskKind.CLASSIFICATION, "Bench: a long job", "keeps a core busy",
                   "bench.queue_fairness:_config", "bench.queue_fairness:long_job", offered=False))


def _home() -> None:
    home = Path(tempfile.mkdtemp(prefix="protolab-bench-fairness-"))  # never the user's data folder
    os.environ.update({"PROTOLAB_HOME": str(home), "DATABASE_URL": f"sqlite:///{home / 'protolab.db'}",
                       "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PROTOLAB_DISPATCH": "local",
                       "PROTOLAB_MODEL_KINDS": "bench.queue_fairness", "PROTOLAB_MAX_RUNS_PER_DEVICE": "1"})
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))


def _wait(run_id: int, until: str) -> Any:
    from db import read_scope
    from db import runs as run_queries

    while True:
        with read_scope() as s:
            run = run_queries.get_run(s, run_id)
            s.expunge(run)
        if (until == "running" and run.status.value != "queued") or not run.status.is_active:
            return run
        time.sleep(0.1)


def _dataset(dataset_id: int) -> Any:
    from db import datasets as dataset_queries
    from db import read_scope

    with read_scope() as s:
        dataset = dataset_queries.get_dataset(s, dataset_id)
        s.expunge(dataset)
    return dataset


def fairness(express: int, long_s: float, tweets_id: int, ratings_id: int) -> dict[str, float]:
    """Queue the long job, then (once it runs) an estimated EASE run; the EASE run's wait and total time."""
    from core.runs import jobs, registry
    from core.runs.estimates import estimate_any
    from db import session_scope
    from db.models import Run

    os.environ["PROTOLAB_EXPRESS_SLOTS"] = str(express)  # the workers read it from their environment
    with session_scope() as s:
        long_id = jobs.start_run(s, dataset_id=tweets_id, model_kind=LONG_KIND, config={"seconds": long_s,
                                                                                        "device": "cpu"})
    _wait(long_id, "running")
    config = registry.get_kind("ease").make_config({})
    est = estimate_any(_dataset(ratings_id), "ease", config)
    queued = time.time()
    with session_scope() as s:
        short_id = jobs.start_run(s, dataset_id=ratings_id, model_kind="ease", config=config,
                                  estimate_s=est.seconds)
    started = _wait(short_id, "running")
    done = _wait(short_id, "finished")
    with session_scope() as s:
        if s.get(Run, long_id).status.is_active:
            jobs.cancel_run(s, long_id)
    _wait(long_id, "finished")
    wait = started.started_at.timestamp() - queued if started.started_at else float("nan")
    total = done.finished_at.timestamp() - queued if done.finished_at else float("nan")
    return {"estimate_s": est.seconds, "wait_s": wait, "total_s": total, "status": done.status.value}


def embedding_speed(rows: int) -> dict[str, float]:
    """Texts/s of the audit's encoder on `rows` tweets: fp32 (before) and the precision it now picks."""
    import torch

    from bench.estimates import tweets
    from core.health.embeddings import Encoder

    texts = tweets(rows)["text"].astype(str).tolist()
    encoder = Encoder()
    speeds = {}
    for name, dtype in (("shipped (" + encoder.precision + ")", None), ("fp32 (before)", torch.float32)):
        if dtype is not None:
            encoder.model = encoder.model.to(dtype)
        encoder.encode(texts[:64])  # warm-up
        start = time.perf_counter()
        encoder.encode(texts)
        speeds[name] = len(texts) / (time.perf_counter() - start)
    return speeds


def audit_estimate(tweets_id: int) -> dict[str, float]:
    """The audit's pre-flight estimate (with embeddings) beside the real audit run, start-up included."""
    from core.health import jobs as health_jobs
    from core.runs.estimates import estimate_any
    from db import session_scope
    from db.enums import AUDIT_KIND

    config = health_jobs.build_config(AUDIT_KIND, {})
    dataset, tick = _dataset(tweets_id), time.perf_counter()
    est = estimate_any(dataset, AUDIT_KIND, config)
    took = time.perf_counter() - tick
    start = time.perf_counter()
    with session_scope() as s:
        run_id = health_jobs.start_audit(s, tweets_id, {}, estimate_s=est.seconds)
    run = _wait(run_id, "finished")
    return {"estimate_s": est.seconds, "actual_s": time.perf_counter() - start, "estimate_took_s": took,
            "status": run.status.value, "parts": est.breakdown()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long-s", type=float, default=40.0, help="how long the long job keeps its core busy")
    parser.add_argument("--audit-rows", type=int, default=2000, help="tweets in the audited dataset (0: skip)")
    parser.add_argument("--data", type=Path, default=None,
                        help="the folder with tweets-sentiment/ and movielens-100k/ (default: ../shared/datasets)")
    args = parser.parse_args()
    _home()
    import bench.estimates
    from bench.estimates import store
    from db import init_db

    if args.data is not None:
        bench.estimates.SHARED = args.data
    if not (bench.estimates.SHARED / "movielens-100k" / "ratings.csv").exists():
        raise SystemExit(f"no MovieLens 100K under {bench.estimates.SHARED}: pass --data")

    init_db()
    tweets_id, ratings_id = store("tfidf", max(args.audit_rows, 300)), store("ease", 100_000)
    print(f"load average at the start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    for express, label in ((0, "first come, first served (before)"), (1, "express lane (shipped)")):
        result = fairness(express, args.long_s, tweets_id, ratings_id)
        print(f"{label}: EASE estimated {result['estimate_s']:.1f} s waited {result['wait_s']:.1f} s, done "
              f"{result['total_s']:.1f} s after queueing ({result['status']}) behind a {args.long_s:.0f} s job",
              flush=True)
    if args.audit_rows:
        for name, speed in embedding_speed(512).items():
            print(f"audit embedding, {name}: {speed:.1f} texts/s", flush=True)
        audit = audit_estimate(tweets_id)
        print(f"audit of {args.audit_rows} tweets: estimated {audit['estimate_s']:.1f} s "
              f"({audit['parts']}; the estimate took {audit['estimate_took_s']:.1f} s), real "
              f"{audit['actual_s']:.1f} s ({audit['status']}): ratio {audit['estimate_s'] / audit['actual_s']:.2f}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
