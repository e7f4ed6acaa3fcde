"""A TF-IDF hyperparameter search through `protolab search` against the TF-IDF defaults, on the tweets corpus.

Usage: .venv/bin/python bench/search.py [--limit N] [--trials 30] [--csv PATH]
Everything goes through the command line in a fresh PROTOLAB_HOME: `datasets add` (the stored 80/10/10 split),
`train --model tfidf` at the defaults (the baseline), then `search --model tfidf --trials N`, whose trials are
scored on the validation split only; the best trial's run is then read for its test macro-F1, the figure compared
with the baseline's. Also prints the search's wall time against N x the single run's (the overhead target: <= +10 %
with one run at a time, which is what a single machine does by default).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import settings  # noqa: E402

DEFAULT_CSV = ROOT.parent / "shared" / "datasets" / "tweets-sentiment" / "tweets.csv"


def protolab(env: dict[str, str], *args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "core.cli", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"protolab {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout) if done.stdout.strip().startswith(("{", "[")) else {}


def write_sample(source: Path, target: Path, limit: int | None) -> int:
    import pandas as pd
    from sklearn.model_selection import train_test_split

    frame = pd.read_csv(source, encoding="cp1252", encoding_errors="replace")
    frame = frame.rename(columns={"sentiment": "label"})[["text", "label"]].dropna().reset_index(drop=True)
    if limit and limit < len(frame):
        frame, _ = train_test_split(frame, train_size=limit, stratify=frame["label"], random_state=0)
    frame.to_csv(target, index=False)
    return len(frame)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--csv", type=Path, default=settings.TWEETS_CSV.get() or DEFAULT_CSV)
    parser.add_argument("--limit", type=int, default=None, help="a stratified sample of N tweets (seed 0)")
    parser.add_argument("--trials", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "PROTOLAB_HOME": home, "DATABASE_URL": f"sqlite:///{home}/protolab.db",
               "PYTHONPATH": str(ROOT)}
        rows = write_sample(args.csv, Path(home) / "tweets.csv", args.limit)
        protolab(env, "datasets", "add", str(Path(home) / "tweets.csv"), "--name", "tweets", "--task",
                 "classification", "--text-col", "text", "--label-col", "label")
        start = time.perf_counter()
        baseline = protolab(env, "train", "--dataset", "tweets", "--model", "tfidf", "--wait", "--json")
        single_s = time.perf_counter() - start
        start = time.perf_counter()
        search = protolab(env, "search", "--dataset", "tweets", "--model", "tfidf", "--trials", str(args.trials),
                          "--wait", "--json")
        search_s = time.perf_counter() - start
        best = protolab(env, "runs", "show", str(search["best"]["run_id"]), "--json")
    base_f1, best_f1 = baseline["metrics"]["macro_f1"], best["metrics"]["macro_f1"]
    states = [t["state"] for t in search["trials"]]
    print(json.dumps({
        "tweets": rows, "trials": len(states), "complete": states.count("complete"),
        "defaults_test_macro_f1": round(base_f1, 4), "search_best_test_macro_f1": round(best_f1, 4),
        "gain_points": round(100 * (best_f1 - base_f1), 2),
        "search_best_validation_macro_f1": round(search["best"]["value"], 4), "best_params": search["best"]["params"],
        # trial 0 runs the defaults: the validation figure the search had to beat
        "defaults_validation_macro_f1": next((round(t["value"], 4) for t in search["trials"] if t["number"] == 0
                                              and t["value"] is not None), None),
        "single_run_wall_s": round(single_s, 1), "search_wall_s": round(search_s, 1),
        "search_over_n_single": round(search_s / (len(states) * single_s), 3),
        "load_avg": os.getloadavg()[0]}, indent=2))


if __name__ == "__main__":
    main()
