"""Training on a busy CPU: torch's fixed thread count (the baseline) against the run's CPU thread governor
(`core.runs.device.CpuThreadGovernor`), with and without another program using one core.

Usage: .venv/bin/python bench/cpu_contention.py [--n-lstm 1024] [--n-minilm 256] [--rounds 2]
Each cell is bench/train_throughput.py in a fresh process (same data, seed and warm-up); "busy" adds a process
spinning on one core for the whole measurement, as a second run or a busy browser tab would. Prints samples/s,
the ratio adaptive / fixed under each load, and the busy/quiet ratio of each (how much of its quiet speed a run
keeps when a core is taken).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measure(variant: str, n: int, adaptive: bool, busy: bool) -> float:
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "r.json"
            env = {**os.environ, "PROTOLAB_ADAPT_THREADS": "1" if adaptive else "0"}
            subprocess.run([sys.executable, str(ROOT / "bench" / "train_throughput.py"), "--n", str(n),
                            "--variants", variant, "--rounds", "1", "--eval", "64", "--json", str(out)],
                           env=env, check=True, capture_output=True)
            return float(json.loads(out.read_text())[variant]["samples_per_s"])
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n-lstm", type=int, default=1024)
    p.add_argument("--n-minilm", type=int, default=256)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    print(f"{os.cpu_count()} CPUs; samples/s, median of {args.rounds} alternating rounds", flush=True)
    for variant, n in (("lstm", args.n_lstm), ("ours", args.n_minilm)):
        cells = {(a, b): [] for a in (False, True) for b in (False, True)}
        for r in range(args.rounds):
            order = list(cells) if r % 2 == 0 else list(cells)[::-1]
            for adaptive, busy in order:
                cells[(adaptive, busy)].append(measure(variant, n, adaptive, busy))
        med = {k: statistics.median(v) for k, v in cells.items()}
        name = "LSTM" if variant == "lstm" else "MiniLM"
        for busy in (False, True):
            print(f"{name:6s} {'one core busy' if busy else 'quiet':13s} fixed threads {med[(False, busy)]:7.1f}  "
                  f"adaptive {med[(True, busy)]:7.1f}  adaptive / fixed {med[(True, busy)] / med[(False, busy)]:.2f}x",
                  flush=True)
        print(f"{name:6s} busy / quiet: fixed {med[(False, True)] / med[(False, False)]:.2f}, "
              f"adaptive {med[(True, True)] / med[(True, False)]:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
