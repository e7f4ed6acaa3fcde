"""Multi-label text, through the CLI as a user would run it (`protolab datasets add` / `protolab train`).

1. MovieLens 100K titles -> genres (`movies.csv`, 1,682 titles, `|`-delimited genre sets): micro-F1 of each model kind
   against the "most frequent genres" baseline and against TF-IDF, all measured in this run on the same split.
2. A generated set with known ground truth (12 tags, rare tags and co-occurring pairs, weak keyword signals):
   macro-F1 on the test split at the per-tag thresholds tuned on validation against one global 0.5 threshold,
   same run, same probabilities.

3. `--throughput N`: training samples/s of the multi-label Transformer against the single-label one on the same N
   tweets (each tweet's sentiment as its one tag), one epoch each, alternated three times (A B A B A B) so the
   machine's drift and the first run's warm-up fall on both; nothing else runs in that mode.

Usage: .venv/bin/python bench/multilabel.py [--models tfidf,lstm,transformer,setfit] [--generated-rows 6000]
       [--generated-models tfidf] [--epochs 3] [--json out.json]
       .venv/bin/python bench/multilabel.py --throughput 1500
Every figure is a ratio of two numbers measured in the same run; the machine is shared, so times are loaded times.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MOVIES = ROOT.parent / "shared" / "datasets" / "movielens-100k" / "movies.csv"
TAGS = [f"tag{j:02d}" for j in range(12)]


def protolab(home: Path, *args: str) -> dict:
    env = {**os.environ, "PROTOLAB_HOME": str(home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONPATH": str(ROOT)}
    env.pop("DATABASE_URL", None)
    proc = subprocess.run([sys.executable, "-m", "core.cli", *args, "--json"], capture_output=True, text=True,
                          cwd=ROOT, env=env, check=False)
    if proc.returncode not in (0, 1) or not proc.stdout.strip():
        raise SystemExit(f"protolab {' '.join(args)} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def flags(model: str, epochs: int) -> list[str]:
    if model in ("transformer", "lstm"):
        return ["--epochs", str(epochs), "--max-length", "32"]
    return []


def train_all(home: Path, dataset: str, models: list[str], epochs: int) -> dict[str, dict]:
    out = {}
    for model in models:
        summary = protolab(home, "train", "--dataset", dataset, "--model", model, *flags(model, epochs), "--wait")
        if summary["status"] != "completed":
            raise SystemExit(f"{model} on {dataset}: {summary['status']}: {summary.get('error')}")
        m = summary["metrics"]
        out[model] = {"micro_f1": m["micro_f1"], "macro_f1": m["macro_f1"], "samples_f1": m["samples_f1"],
                      "macro_f1_at_0.5": m["at_half"]["test"]["macro_f1"],
                      "micro_f1_at_0.5": m["at_half"]["test"]["micro_f1"],
                      "macro_f1_global": m["at_global_threshold"]["test"]["macro_f1"],
                      "global_threshold": m["global_threshold"], "most_frequent": m["baselines"]["most_frequent"],
                      "train_time_s": m["train_time_s"], "train_samples_per_s": m["train_samples_per_s"]}
        print(f"  {dataset} {model}: micro-F1 {m['micro_f1']:.3f} macro-F1 {m['macro_f1']:.3f} "
              f"(0.5 everywhere: {m['at_half']['test']['macro_f1']:.3f}) in {m['train_time_s']:.1f} s", flush=True)
    return out


def generated(path: Path, n: int, seed: int = 0) -> Path:
    """12 tags with frequencies from 30 % down to 1 %, pairs that co-occur (tag j+1 follows tag j a third of the
    time), and weak signals: each tag shows one of its 6 keywords with probability 0.7, among 8 filler words, and
    each keyword also turns up by chance in 3 % of other texts."""
    import pandas as pd

    rng = random.Random(seed)
    freq = [0.30, 0.22, 0.16, 0.12, 0.09, 0.07, 0.05, 0.04, 0.03, 0.02, 0.015, 0.01]
    keywords = {t: [f"{t}w{k}" for k in range(6)] for t in TAGS}
    filler = [f"word{k}" for k in range(300)]
    rows = []
    for i in range(n):
        tags = {t for t, f in zip(TAGS, freq, strict=True) if rng.random() < f}
        for j, t in enumerate(TAGS[:-1]):
            if t in tags and rng.random() < 1 / 3:
                tags.add(TAGS[j + 1])
        words = rng.sample(filler, 8)
        words += [rng.choice(keywords[t]) for t in tags if rng.random() < 0.7]
        words += [rng.choice(keywords[t]) for t in TAGS if t not in tags and rng.random() < 0.03]
        rng.shuffle(words)
        rows.append({"text": " ".join(words) + f" r{i}", "tags": ";".join(sorted(tags))})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


TWEETS = ROOT.parent / "shared" / "datasets" / "tweets-sentiment" / "tweets.csv"


def throughput(rows: int) -> dict:
    """Samples/s of `protolab train --model transformer` on the same tweets as one label and as a one-tag set."""
    import pandas as pd

    frame = pd.read_csv(TWEETS, encoding="cp1252", encoding_errors="replace")
    frame = frame.rename(columns={"sentiment": "label"})[["text", "label"]].dropna().drop_duplicates("text")
    frame = frame.sample(n=rows, random_state=0).reset_index(drop=True)
    runs: dict[str, list[float]] = {"classification": [], "multilabel": []}
    with tempfile.TemporaryDirectory(prefix="bench-multilabel-throughput-") as tmp:
        home = Path(tmp) / "home"
        frame.to_csv(Path(tmp) / "single.csv", index=False)
        frame.rename(columns={"label": "tags"}).to_csv(Path(tmp) / "tags.csv", index=False)
        protolab(home, "datasets", "add", str(Path(tmp) / "single.csv"), "--task", "classification", "--name",
                 "single", "--text-col", "text", "--label-col", "label")
        protolab(home, "datasets", "add", str(Path(tmp) / "tags.csv"), "--task", "multilabel", "--name", "tags",
                 "--text-col", "text", "--labels-col", "tags")
        for _ in range(3):
            for task, name in (("classification", "single"), ("multilabel", "tags")):
                summary = protolab(home, "train", "--dataset", name, "--model", "transformer", "--epochs", "1",
                                   "--max-length", "64", "--seed", "0", "--wait")
                if summary["status"] != "completed":
                    raise SystemExit(f"{task}: {summary['status']}: {summary.get('error')}")
                runs[task].append(summary["metrics"]["train_samples_per_s"])
                print(f"  {task}: {runs[task][-1]:.1f} samples/s", flush=True)
    single, multi = (sum(v) / len(v) for v in (runs["classification"], runs["multilabel"]))
    return {"rows": rows, "samples_per_s": runs, "multilabel_over_single": round(multi / single, 3),
            "load_avg": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="tfidf,lstm,transformer,setfit")
    ap.add_argument("--generated-rows", type=int, default=6000)
    ap.add_argument("--generated-models", default="tfidf")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--movies", type=Path, default=MOVIES)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--throughput", type=int, metavar="N", help="only the samples/s comparison, on N tweets")
    args = ap.parse_args()
    if args.throughput:
        print(json.dumps(throughput(args.throughput), indent=2))
        return
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-multilabel-") as tmp:
        home = Path(tmp) / "home"
        added = protolab(home, "datasets", "add", str(args.movies), "--task", "multilabel", "--name", "movies",
                         "--text-col", "title", "--labels-col", "genres", "--drop-rare-tags")
        print(f"movies: {added['rows']} titles, splits {added['splits']}; notes: {added['warnings']}", flush=True)
        results["movielens"] = train_all(home, "movies", args.models.split(","), args.epochs)
        csv = generated(Path(tmp) / "generated.csv", args.generated_rows)
        added = protolab(home, "datasets", "add", str(csv), "--task", "multilabel", "--name", "generated",
                         "--text-col", "text", "--labels-col", "tags")
        print(f"generated: {added['rows']} texts, splits {added['splits']}", flush=True)
        results["generated"] = train_all(home, "generated", args.generated_models.split(","), args.epochs)
    base = results["movielens"].get("tfidf", {}).get("micro_f1")
    print("\nMovieLens titles -> genres (test split):")
    for model, r in results["movielens"].items():
        ratio = f", {r['micro_f1'] / base:.2f}x TF-IDF" if base else ""
        mf = r["most_frequent"]["micro_f1"]
        print(f"  {model:12s} micro-F1 {r['micro_f1']:.3f} vs most-frequent {mf:.3f} "
              f"({r['micro_f1'] / mf:.2f}x){ratio}")
    print("\nGenerated 12 tags (test split): macro-F1 at tuned per-tag thresholds vs one 0.5 threshold")
    for model, r in results["generated"].items():
        print(f"  {model:12s} {r['macro_f1']:.3f} vs {r['macro_f1_at_0.5']:.3f} "
              f"({r['macro_f1'] / max(r['macro_f1_at_0.5'], 1e-9):.2f}x); one tuned global threshold "
              f"{r['global_threshold']:.2f}: {r['macro_f1_global']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
