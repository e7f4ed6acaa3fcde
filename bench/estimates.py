"""Estimates against real runs: for each model kind on two dataset sizes, the Train page's pre-flight estimate
beside the wall time of the real run (start_run to completed, worker start-up included). Target: within ±30 %.

Usage: .venv/bin/python bench/estimates.py [--kinds tfidf,lstm,...] [--sizes 600,37000] [--quick] [--out results.json]
                                          [--measured-at-start]
A fresh data folder each time: the first estimate of each kind measures the worker's start-up (one launch) unless
--measured-at-start first runs what the app runs in the background when it starts (its time printed apart).
The text kinds' sizes are those a user meets (issue 28): 600 rows and the whole tweets corpus (~37k); on a loaded
2-core CPU the Transformer on 37k takes over an hour, so `--sizes 600` for it there.
Data: the tweets corpus and MovieLens 100K from ../shared/datasets (synthetic stand-ins when absent).
Runs in a throwaway PROTOLAB_HOME; one run at a time, so each has the machine to itself (as far as it is ours).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# ../shared beside the main checkout; a worktree (/work/wt/NAME) finds it one level further up.
SHARED = next((p / "shared" / "datasets" for p in (ROOT.parent, ROOT.parent.parent)
               if (p / "shared" / "datasets").exists()), ROOT.parent / "shared" / "datasets")
_home = Path(tempfile.mkdtemp(prefix="protolab-bench-estimates-"))  # never the user's data folder
os.environ["PROTOLAB_HOME"] = str(_home)
os.environ["DATABASE_URL"] = f"sqlite:///{_home / 'protolab.db'}"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))

import pandas as pd  # noqa: E402

# Each kind: (its two sizes in rows or interactions, the options a user would set on the Train page).
PLAN = {
    "tfidf": ((600, 37_000), {}),
    "lstm": ((600, 37_000), {"epochs": 1, "max_length": 64}),
    "transformer": ((600, 37_000), {"epochs": 1, "max_length": 64, "batch_size": 16}),
    "popularity": ((20_000, 100_000), {}),
    "itemknn": ((20_000, 100_000), {}),
    "ease": ((20_000, 100_000), {}),
    "bpr": ((20_000, 100_000), {"epochs": 20, "device": "cpu"}),
    "sequential": ((20_000, 100_000), {"epochs": 3, "device": "cpu", "split_protocol": "leave_last_out"}),
    "content": ((20_000, 100_000), {"device": "cpu"}),
}
TEXT_KINDS = ("tfidf", "lstm", "transformer")


def tweets(n: int) -> pd.DataFrame:
    path = SHARED / "tweets-sentiment" / "tweets.csv"
    if path.exists():
        frame = pd.read_csv(path, encoding="cp1252", encoding_errors="replace")
        frame = frame.rename(columns={"sentiment": "label"})[["text", "label"]].dropna()
    else:
        from tests.conftest import sentiment_frame

        frame = sentiment_frame(max(n, 1000), seed=0)[["text", "label"]]
    return frame.sample(n=min(n, len(frame)), random_state=0).reset_index(drop=True)


def ratings(n: int) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    folder = SHARED / "movielens-100k"
    if (folder / "ratings.csv").exists():
        frame = pd.read_csv(folder / "ratings.csv").rename(columns={"user_id": "user", "item_id": "item"})
        movies = pd.read_csv(folder / "movies.csv").rename(columns={"item_id": "item"})
    else:
        from tests.conftest import interactions_frame, items_frame

        frame, movies = interactions_frame(400, 300, 40), items_frame(300)
    users = frame["user"].drop_duplicates().sample(frac=1.0, random_state=0)
    per_user = frame.groupby("user").size().loc[users].cumsum()
    keep = set(per_user[per_user <= n].index) or set(users[:1])
    return frame[frame["user"].isin(keep)].reset_index(drop=True), movies


def store(kind: str, size: int) -> int:
    from core.data import datasets as ds
    from core.data.classification import prepare_classification
    from core.data.interactions import prepare_interactions
    from core.data.mapping import guess_catalogue, guess_classification, guess_interactions
    from db import session_scope

    if kind in TEXT_KINDS:
        frame = tweets(size)
        table = ds.read_table(frame.to_csv(index=False).encode(), f"tweets-{size}.csv")
        prepared = prepare_classification(table, guess_classification(table.frame))
    else:
        frame, movies = ratings(size)
        table = ds.read_table(frame.to_csv(index=False).encode(), f"ratings-{size}.csv")
        items = ds.read_table(movies.to_csv(index=False).encode(), "movies.csv") if movies is not None else None
        prepared = prepare_interactions(table, guess_interactions(table.frame), None, items,
                                        guess_catalogue(items.frame, "item") if items is not None else None)
    with session_scope() as s:
        return ds.import_dataset(s, prepared, name=f"{kind}-{size}", allow_duplicate=True).id


def measure(kind: str, size: int, options: dict) -> dict:
    from core.runs import jobs, registry
    from core.runs.estimates import estimate_any
    from db import datasets as dataset_queries
    from db import read_scope, session_scope
    from db import runs as run_queries

    dataset_id = store(kind, size)
    config = registry.get_kind(kind).make_config(options)
    with read_scope() as s:
        dataset = dataset_queries.get_dataset(s, dataset_id)
        s.expunge(dataset)
    tick = time.perf_counter()
    est = estimate_any(dataset, kind, config)
    estimate_took = time.perf_counter() - tick
    start = time.perf_counter()
    with session_scope() as s:
        run_id = jobs.start_run(s, dataset_id=dataset_id, model_kind=kind, config=config)
    while True:
        time.sleep(0.25)
        with read_scope() as s:
            run = run_queries.get_run(s, run_id)
            status, error = run.status, run.error
        if not status.is_active:
            break
    actual = time.perf_counter() - start
    if status.value != "completed":
        raise SystemExit(f"{kind} on {size}: run #{run_id} {status.value}: {error}")
    return {"kind": kind, "size": size, "estimate_s": round(est.seconds, 1), "actual_s": round(actual, 1),
            "ratio": round(est.seconds / actual, 2), "estimate_took_s": round(estimate_took, 1),
            "parts": est.parts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", default=",".join(PLAN))
    parser.add_argument("--quick", action="store_true", help="the smaller size only")
    parser.add_argument("--sizes", help="comma-separated sizes instead of each kind's two")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--measured-at-start", action="store_true",
                        help="first measure start-ups and cold loads as the app does when it starts")
    args = parser.parse_args()
    from db import init_db

    init_db()
    if args.kinds and not (SHARED / "tweets-sentiment" / "tweets.csv").exists():
        print(f"no {SHARED / 'tweets-sentiment'}: texts are synthetic stand-ins")
    if args.measured_at_start:
        from core.runs.estimates import measure_cold_starts

        tick = time.perf_counter()
        measure_cold_starts(tuple(args.kinds.split(",")))
        print(f"measured at start (the app's background pass): {time.perf_counter() - tick:.0f}s")
    results = []
    print(f"{'kind':<12}{'size':>8}{'estimate':>10}{'actual':>9}{'ratio':>7}  within ±30%  (estimating took)")
    for kind in args.kinds.split(","):
        sizes, options = PLAN[kind]
        if args.sizes:
            sizes = tuple(int(n) for n in args.sizes.split(","))
        for size in sizes[:1] if args.quick else sizes:
            row = measure(kind, size, options)
            results.append(row)
            ok = "yes" if 0.7 <= row["ratio"] <= 1.3 else "NO"
            print(f"{kind:<12}{size:>8}{row['estimate_s']:>9.1f}s{row['actual_s']:>8.1f}s{row['ratio']:>7.2f}  "
                  f"{ok:<11}  ({row['estimate_took_s']:.0f}s)  {row['parts']}", flush=True)
    inside = sum(0.7 <= r["ratio"] <= 1.3 for r in results)
    print(f"{inside}/{len(results)} estimates within ±30 % of the real run")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
