"""Ingest benchmark: generate a 1,000,000-row (~100 MB) two-column CSV and import it like an upload.

Prints rows/s and peak RSS of the import next to a plain pandas.read_csv of the same file, each measured
in its own child process so their peaks do not mix. Target: import <= 15 s and <= 2 GB peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
WORDS = ["the", "product", "arrived", "quickly", "and", "works", "great", "but", "battery", "life", "could",
         "be", "better", "overall", "i", "would", "recommend", "it", "to", "friends", "although", "delivery",
         "was", "slow", "support", "helpful", "price", "fair", "quality", "poor", "screen", "bright", "sound",
         "clear", "fit", "comfortable", "size", "small", "colour", "nice"]


def generate(path: Path, rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    vocab = np.array(WORDS)
    chunk = 100_000
    with path.open("w", encoding="utf-8") as fh:
        fh.write("text,label\n")
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            lengths = rng.integers(8, 21, size=n)
            picks = vocab[rng.integers(0, len(vocab), size=int(lengths.sum()))]
            cuts = np.cumsum(lengths)[:-1]
            texts = [" ".join(words) + f" #{start + i}" for i, words in enumerate(np.split(picks, cuts))]
            labels = np.array(["negative", "positive", "neutral"])[rng.integers(0, 3, size=n)]
            fh.write("".join(f"{t},{lab}\n" for t, lab in zip(texts, labels, strict=True)))


def child(kind: str, path: Path) -> dict:
    started = time.perf_counter()
    if kind == "pandas":
        rows = len(pd.read_csv(path))
    else:
        from core.data import datasets as ds
        from core.data.classification import prepare_classification
        from core.data.mapping import guess_classification
        from db import init_db, session_scope

        init_db()
        started = time.perf_counter()  # the import itself, not the one-off database migration
        table = ds.read_table(path)
        stages = {"read": time.perf_counter() - started}
        prepared = prepare_classification(table, guess_classification(table.frame))
        stages["validate+split"] = time.perf_counter() - started - stages["read"]
        with session_scope() as s:
            ds.import_dataset(s, prepared, name="bench")
        stages["store"] = time.perf_counter() - started - sum(stages.values())
        rows = len(prepared.frame)
    seconds = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    out = {"kind": kind, "rows": rows, "seconds": round(seconds, 2), "peak_rss_mib": round(peak_mib)}
    if kind != "pandas":
        out["stages"] = {k: round(v, 2) for k, v in stages.items()}
    return out


def run_child(kind: str, path: Path, home: Path) -> dict:
    env = {**os.environ, "PROTOLAB_HOME": str(home), "DATABASE_URL": f"sqlite:///{home / 'bench.db'}"}
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(path)], capture_output=True, text=True,
                         env=env, cwd=ROOT, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, str(ROOT))
        print(json.dumps(child(args.child[0], Path(args.child[1]))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.csv"
        t0 = time.perf_counter()
        generate(path, args.rows)
        size_mb = path.stat().st_size / 1e6
        print(f"generated {args.rows:,} rows, {size_mb:.0f} MB in {time.perf_counter() - t0:.1f} s")
        base = run_child("pandas", path, Path(tmp))
        ours = run_child("protolab", path, Path(tmp))
    for r in (base, ours):
        print(f"{r['kind']:>9}: {r['rows']:,} rows in {r['seconds']:.2f} s = {r['rows'] / r['seconds']:,.0f} rows/s, "
              f"peak RSS {r['peak_rss_mib']:,} MiB")
    print("  protolab stages (s): " + ", ".join(f"{k} {v}" for k, v in ours["stages"].items()))
    print(f"  load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    ok = ours["seconds"] <= 15 and ours["peak_rss_mib"] <= 2048
    print(f"import / read_csv time ratio: {ours['seconds'] / base['seconds']:.2f}x; "
          f"target <= 15 s and <= 2 GB: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
