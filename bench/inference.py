"""Benchmark: Sentiment demo inference (single-text latency, batch throughput) against transformers.pipeline.

Targets (issue 7), default Transformer fine-tuned on tweets: p50 ≤ 25 ms, p95 ≤ 50 ms per text, batch ≥ 300 texts/s.
Run: `.venv/bin/python bench/inference.py [--device cpu|cuda] [--train-rows 2000] [--texts 2000] [--single 300]`.
With `--device cuda` the runs train and serve on the GPU and transformers.pipeline runs on the same GPU; timings
are bracketed by torch.cuda.synchronize() (the CPU-time columns then only count the host's share).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from core import settings  # noqa: E402  (after the path above: the checkout's core/)

TWEETS = Path(settings.TWEETS_CSV.get() or "/work/shared/datasets/tweets-sentiment/tweets.csv")
BATCH_SIZE = 64
DEVICE = "cpu"  # set from --device


def synchronize() -> None:
    if DEVICE.startswith("cuda"):
        import torch

        torch.cuda.synchronize(DEVICE)


def read_tweets(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, encoding="cp1252", encoding_errors="replace")
    frame = frame.rename(columns={"sentiment": "label"})[["text", "label"]].dropna()
    frame["text"] = frame["text"].astype(str).str.strip()
    return frame[frame["text"] != ""].reset_index(drop=True)


def store_dataset(frame: pd.DataFrame) -> int:
    from core.data.storage import write_dataset
    from db import session_scope
    from db.enums import TaskKind

    rng = np.random.default_rng(0)
    split = rng.choice(["train", "validation", "test"], size=len(frame), p=[0.8, 0.1, 0.1])
    with session_scope() as s:
        return write_dataset(s, name="bench-tweets", task=TaskKind.CLASSIFICATION, frame=frame.assign(split=split),
                             mapping={"text": "text", "label": "label"}).id


def train(dataset_id: int, kind: str, **options) -> tuple[int, float]:  # noqa: ANN003
    """Train through the real worker process; (run id, seconds)."""
    from core.runs.jobs import start_run
    from core.text.config import build_config
    from db import runs as run_queries
    from db import session_scope
    from db.enums import RunStatus

    start = time.perf_counter()
    with session_scope() as s:
        run_id = start_run(s, dataset_id=dataset_id, model_kind=kind, config=build_config(kind, options))
    while True:
        with session_scope() as s:
            run = run_queries.get_run(s, run_id)
            status, error, metrics = run.status, run.error, run.metrics
        if not status.is_active:
            if status != RunStatus.COMPLETED:
                raise SystemExit(f"{kind} run {run_id} {status.value}: {error}")
            print(f"trained {kind}: run {run_id}, macro-F1 {metrics.get('macro_f1', 0):.3f}, "
                  f"{time.perf_counter() - start:.0f} s", file=sys.stderr)
            return run_id, time.perf_counter() - start
        time.sleep(1.0)


def existing_runs() -> dict[str, tuple[int, float]]:
    """Completed runs per family already in this home (re-running the benchmark skips training)."""
    from db import runs as run_queries
    from db import session_scope
    from db.enums import RunStatus

    with session_scope() as s:
        return {r.model_kind: (r.id, float(r.duration_s or 0)) for r in
                run_queries.list_runs(s, statuses=[RunStatus.COMPLETED])}


def macro_f1(truth: list[str], proba: np.ndarray, labels: list[str]) -> float:
    from core.evaluation.metrics import classification_report

    return classification_report(truth, [labels[i] for i in proba.argmax(axis=1)], labels)["macro_f1"]


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "mean_ms": float(ms.mean())}


def timed(fn: Callable, arg: object) -> tuple[float, float]:
    """(wall seconds, this thread's CPU seconds); with one intra-op thread all the work runs on this thread,
    so CPU time is what the call costs without other processes' load."""
    synchronize()
    wall, cpu = time.perf_counter(), time.thread_time()
    fn(arg)
    synchronize()
    return time.perf_counter() - wall, time.thread_time() - cpu


def single_latency(fns: dict[str, Callable], texts: list[str], warmup: int = 20) -> dict[str, dict]:
    """Per-text latency of each function, interleaved text by text so shared-machine load hits all alike."""
    for fn in fns.values():
        for text in texts[:warmup]:
            fn(text)
    wall: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    for text in texts:
        for name, fn in fns.items():
            w, c = timed(fn, text)
            wall[name].append(w)
            cpu[name].append(c)
    return {name: {**percentiles(wall[name]), "cpu": percentiles(cpu[name])} for name in fns}


def throughput(fns: dict[str, Callable], texts: list[str], rounds: int = 3) -> dict[str, dict]:
    """Texts per second of each function over all `texts` (wall and CPU time), best of `rounds` alternating runs."""
    best = {name: (float("inf"), float("inf")) for name in fns}
    for fn in fns.values():
        fn(texts[:BATCH_SIZE])  # warm-up
    for _ in range(rounds):
        for name, fn in fns.items():
            w, c = timed(fn, texts)
            best[name] = (min(best[name][0], w), min(best[name][1], c))
    return {name: {"wall": len(texts) / w, "cpu": len(texts) / c} for name, (w, c) in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tweets", type=Path, default=TWEETS)
    parser.add_argument("--train-rows", type=int, default=1500, help="tweets used to fine-tune (1 epoch)")
    parser.add_argument("--texts", type=int, default=2000, help="tweets scored in the batch test")
    parser.add_argument("--single", type=int, default=300, help="tweets timed one at a time")
    parser.add_argument("--home", type=Path, help="reuse this bench home (and its trained runs) instead of a new one")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]: where the runs train and both sides serve")
    args = parser.parse_args()
    global DEVICE
    DEVICE = args.device

    home = args.home or Path(tempfile.mkdtemp(prefix="protolab-bench-inference-"))
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update(PROTOLAB_HOME=str(home), DATABASE_URL=f"sqlite:///{home / 'protolab.db'}",
                      HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    import torch
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    from core.runs.files import RunFiles
    from core.text.serving import PRECISION_ENV, load_classifier

    hf_logging.set_verbosity_error()
    if DEVICE.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA GPU is visible to torch")
    if DEVICE != "cpu" and not DEVICE.startswith("cuda"):
        raise SystemExit(f"--device must be cpu or cuda[:N], got {DEVICE!r}")
    load_before = os.getloadavg()
    tweets = read_tweets(args.tweets).sample(frac=1.0, random_state=0).reset_index(drop=True)
    runs = existing_runs()
    if not runs:
        dataset_id = store_dataset(tweets.iloc[:args.train_rows])
        runs = {"transformer": train(dataset_id, "transformer", epochs=1, device=DEVICE),
                "lstm": train(dataset_id, "lstm", epochs=1, device=DEVICE),
                "tfidf": train(dataset_id, "tfidf")}
    held_out = tweets.iloc[args.train_rows:]
    batch_texts = held_out["text"].iloc[:args.texts].tolist()
    truth = held_out["label"].iloc[:args.texts].tolist()
    single_texts = held_out["text"].iloc[args.texts:args.texts + args.single].tolist()
    gpu = torch.cuda.get_device_name(DEVICE) if DEVICE.startswith("cuda") else None
    results: dict[str, dict] = {"machine": {"cpus": os.cpu_count(), "loadavg_before": load_before, "device": DEVICE,
                                            "gpu": gpu, "torch": torch.__version__, "cuda": torch.version.cuda},
                                "texts": {"batch": len(batch_texts), "single": len(single_texts),
                                          "mean_chars": float(np.mean([len(t) for t in batch_texts]))}}
    for family in ("transformer", "lstm", "tfidf"):
        run_id, train_s = runs[family]
        clf = load_classifier(run_id, device=DEVICE)
        fns_single = {"protolab": lambda t, c=clf: c.predict([t])}
        fns_batch = {"protolab": lambda ts, c=clf: c.predict_proba(ts, batch_size=BATCH_SIZE)}
        entry: dict = {"run_id": run_id, "train_s": train_s, "precision": clf.precision,
                       "threads": torch.get_num_threads()}
        if family == "transformer":
            os.environ[PRECISION_ENV] = "fp32"
            fp32 = load_classifier(run_id, device=DEVICE)
            os.environ.pop(PRECISION_ENV)
            pipe = pipeline("text-classification", model=str(RunFiles.of(run_id).model), device=DEVICE, top_k=None)
            kwargs = {"truncation": True, "max_length": clf.max_length}
            fns_single["protolab_fp32"] = lambda t, c=fp32: c.predict([t])
            fns_single["pipeline"] = lambda t, p=pipe, k=kwargs: p(t, **k)
            fns_batch["protolab_fp32"] = lambda ts, c=fp32: c.predict_proba(ts, batch_size=BATCH_SIZE)
            fns_batch["pipeline"] = lambda ts, p=pipe, k=kwargs: p(ts, batch_size=BATCH_SIZE, **k)
            served, exact = clf.predict_proba(batch_texts), fp32.predict_proba(batch_texts)
            entry["agreement"] = {"same_label": float((served.argmax(1) == exact.argmax(1)).mean()),
                                  "max_abs_proba_diff": float(np.abs(served - exact).max()),
                                  "macro_f1_served": macro_f1(truth, served, clf.labels),
                                  "macro_f1_fp32": macro_f1(truth, exact, clf.labels)}
        else:
            entry["agreement"] = {"macro_f1_served": macro_f1(truth, clf.predict_proba(batch_texts), clf.labels)}
        entry["latency"] = single_latency(fns_single, single_texts)
        entry["texts_per_s"] = speed = throughput(fns_batch, batch_texts)
        latency = entry["latency"]
        if "pipeline" in speed:
            entry["ratios"] = {"batch_speedup": speed["protolab"]["wall"] / speed["pipeline"]["wall"],
                               "batch_speedup_cpu": speed["protolab"]["cpu"] / speed["pipeline"]["cpu"],
                               "p50_speedup": latency["pipeline"]["p50_ms"] / latency["protolab"]["p50_ms"],
                               "p95_speedup": latency["pipeline"]["p95_ms"] / latency["protolab"]["p95_ms"],
                               "p50_speedup_cpu": latency["pipeline"]["cpu"]["p50_ms"]
                               / latency["protolab"]["cpu"]["p50_ms"]}
        results[family] = entry
        print(f"{family}: " + json.dumps(entry), file=sys.stderr)
    results["machine"]["loadavg_after"] = os.getloadavg()
    results["home"] = str(home)
    t = results["transformer"]
    ours, speed = t["latency"]["protolab"], t["texts_per_s"]["protolab"]
    results["targets_met"] = {"wall": {"p50": ours["p50_ms"] <= 25, "p95": ours["p95_ms"] <= 50,
                                       "batch": speed["wall"] >= 300},
                              "cpu": {"p50": ours["cpu"]["p50_ms"] <= 25, "p95": ours["cpu"]["p95_ms"] <= 50,
                                      "batch": speed["cpu"] >= 300}}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
