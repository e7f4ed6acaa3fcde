"""Logistic regression on MiniLM embeddings: one BLAS thread (`core.runs.device.one_blas_thread`) against the
default OpenBLAS threads, same process, alternating rounds.

This is the fit behind the SetFit head, the Label page's cross-validated learning curve and the data-health
audit's embedding model. Usage: .venv/bin/python bench/blas_threads.py [--sizes 300,1000,3000] [--rounds 3]
Prints, per labelled-set size, the median wall and CPU seconds of a single fit and of 5-fold cross-validated
predictions, and the ratio default / one thread (above 1: one thread is faster).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from core import settings  # noqa: E402  (after the path above: the checkout's core/)

TWEETS = Path(settings.TWEETS_CSV.get() or ROOT.parent / "shared/datasets/tweets-sentiment/tweets.csv")


def timed(fn) -> tuple[float, float]:  # noqa: ANN001
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", default="300,1000,3000")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from threadpoolctl import threadpool_info

    from core.labelling.strategy import embed_pool
    from core.runs.device import one_blas_thread

    sizes = [int(s) for s in args.sizes.split(",")]
    frame = pd.read_csv(TWEETS, encoding="cp1252", encoding_errors="replace")[["text", "sentiment"]].dropna()
    frame = frame.sample(max(sizes), random_state=0)
    start = time.perf_counter()
    embeddings = embed_pool(frame["text"].astype(str).tolist())
    y = np.unique(frame["sentiment"], return_inverse=True)[1]
    blas = [(i["internal_api"], i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"]
    print(f"{len(frame)} tweets embedded in {time.perf_counter() - start:.0f} s; BLAS libraries {blas}; "
          f"{os.cpu_count()} CPUs", flush=True)

    for n in sizes:
        x, target = embeddings[:n], y[:n]
        work = {"fit": lambda x=x, t=target: LogisticRegression(max_iter=1000).fit(x, t),
                "5-fold": lambda x=x, t=target: cross_val_predict(
                    LogisticRegression(max_iter=1000), x, t, cv=StratifiedKFold(5, shuffle=True, random_state=0))}
        for name, fn in work.items():
            runs: dict[str, list[tuple[float, float]]] = {"default": [], "one": []}
            for r in range(args.rounds):
                for mode in (("default", "one") if r % 2 == 0 else ("one", "default")):
                    if mode == "one":
                        with one_blas_thread():
                            runs[mode].append(timed(fn))
                    else:
                        runs[mode].append(timed(fn))
            med = {m: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for m, v in runs.items()}
            print(f"n={n:>5} {name:7s} default threads {med['default'][0]:6.3f} s wall {med['default'][1]:6.3f} s CPU"
                  f" | one thread {med['one'][0]:6.3f} s wall {med['one'][1]:6.3f} s CPU"
                  f" | default / one: {med['default'][0] / med['one'][0]:.2f}x wall, "
                  f"{med['default'][1] / med['one'][1]:.2f}x CPU", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
