"""Benchmark: `protolab serve` under concurrent clients vs a plain FastAPI endpoint over transformers.pipeline,
and the int8 ONNX export vs PyTorch on the CPU.

1. Load test on localhost: 1, 4 and 16 concurrent clients, one tweet per request, against (a) `protolab serve`
   (warm model, micro-batching) and (b) a plain FastAPI endpoint whose handler calls a `transformers.pipeline`
   (loaded once) per request; same model, same run, same thread setting. p50/p95 latency and texts/s, and the ratio.
   Targets (issue 14): at 16 clients ≥ 3x the plain endpoint's throughput, p95 ≤ 250 ms on the 2-core CPU.
2. Export: onnxruntime int8 vs PyTorch fp32 (and bf16 where the CPU has it natively), batch texts/s on the tweets
   test split with label agreement. Target: ≥ 2x PyTorch fp32 at ≥ 99 % agreement.

The model is the default Transformer (MiniLM-L6) fine-tuned through the real worker on a slice of the train part
of tweets-sentiment (80/20 split stratified, random_state=0, as the datasets README); the test part is never
trained on. Run: `.venv/bin/python bench/serve.py [--train-rows 1500] [--requests 240] [--export-texts 2000]`.
`--plain-server DIR --port P` is the baseline server itself (started by the benchmark in its own process).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TWEETS = Path("/work/shared/datasets/tweets-sentiment/tweets.csv")
CONCURRENCY = (1, 4, 16)


# --- the baseline: a plain FastAPI endpoint calling transformers.pipeline ------------------------------------

def plain_server(model_dir: str, port: int, threads: int) -> None:
    import torch
    import uvicorn
    from fastapi import FastAPI
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.set_num_threads(threads)  # the same intra-op threads as protolab serve uses
    pipe = pipeline("text-classification", model=model_dir, device="cpu", top_k=None)
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.post("/predict")
    def predict(body: dict) -> dict:  # a sync handler: FastAPI runs it in its thread pool, as most apps do
        return {"predictions": pipe(body["texts"], truncation=True, max_length=128)}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --- set-up -------------------------------------------------------------------------------------------------

def tweets_split(path: Path) -> tuple:
    from sklearn.model_selection import train_test_split

    from bench.inference import read_tweets

    frame = read_tweets(path)
    train, test = train_test_split(frame, test_size=0.2, stratify=frame["label"], random_state=0)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(cmd: list[str], url: str, env: dict[str, str]) -> subprocess.Popen:
    import httpx

    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{cmd[:4]} exited: {proc.stderr.read()[-2000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"{cmd[:4]} did not start")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


# --- load ---------------------------------------------------------------------------------------------------

async def load(url: str, texts: list[str], clients: int, requests: int) -> dict:
    """`clients` concurrent clients each sending one text per request, back to back, `requests` in all."""
    import httpx

    latencies: list[float] = []
    counter = iter(range(requests))

    async def client(http: httpx.AsyncClient) -> None:
        for i in counter:
            t0 = time.perf_counter()
            r = await http.post(url, json={"texts": [texts[i % len(texts)]]})
            r.raise_for_status()
            latencies.append(time.perf_counter() - t0)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        for text in texts[:3]:  # warm-up (first-call allocations, connection set-up)
            (await http.post(url, json={"texts": [text]})).raise_for_status()
        start_t = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        wall = time.perf_counter() - start_t
    ms = np.asarray(latencies) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 1), "p95_ms": round(float(np.percentile(ms, 95)), 1),
            "texts_per_s": round(requests / wall, 1), "requests": requests}


def load_test(run_id: int, model_dir: Path, texts: list[str], requests: int, threads: int) -> dict:
    import httpx
    import psutil

    env = {**os.environ, "PYTHONPATH": str(ROOT), "PROTOLAB_INFERENCE_THREADS": str(threads)}
    results: dict = {}
    servers = {
        "protolab": ([sys.executable, "-m", "core.cli", "serve", "--run", str(run_id), "--no-auth"],
                     f"/v1/runs/{run_id}/predict"),
        "plain": ([sys.executable, str(Path(__file__).resolve()), "--plain-server", str(model_dir),
                   "--threads", str(threads)], "/predict"),
    }
    for name, (cmd, path) in servers.items():
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start([*cmd, "--port", str(port)], base, env)
        server = psutil.Process(proc.pid)
        try:
            for clients in CONCURRENCY:
                n = max(requests, 20 * clients)
                cpu_before = sum(server.cpu_times()[:2])
                results.setdefault(name, {})[clients] = entry = asyncio.run(load(base + path, texts, clients, n))
                # CPU seconds the server spent: on a shared box, what a text costs whatever else is running
                # (a server with more runnable threads also gets a bigger share of a contended CPU).
                entry["texts_per_cpu_s"] = round((n + 3) / max(1e-9, sum(server.cpu_times()[:2]) - cpu_before), 1)
                if name == "protolab":
                    runs = httpx.get(f"{base}/v1/runs", timeout=30).json()["runs"]
                    entry["batching_so_far"] = runs[0].get("batching")
                print(f"{name} {clients} clients: {json.dumps(entry)}", file=sys.stderr, flush=True)
        finally:
            stop(proc)
    for key in ("texts_per_s", "texts_per_cpu_s"):
        results[f"ratio_{key}"] = {c: round(results["protolab"][c][key] / results["plain"][c][key], 2)
                                   for c in CONCURRENCY}
    return results


# --- export ---------------------------------------------------------------------------------------------------

def export_bench(run_id: int, texts: list[str], truth: list[str], threads: int) -> dict:
    from bench.inference import macro_f1
    from core.export.exporting import export_run
    from core.export.onnx import load_onnx_folder
    from core.text.serving import PRECISION_ENV, load_classifier, native_bf16_cpu

    folders = {}
    for fmt in ("onnx", "onnx-int8"):
        folders[fmt] = Path(tempfile.mkdtemp(prefix=f"protolab-bench-{fmt}-")) / "out"
        t0 = time.perf_counter()
        export_run(run_id, fmt, folders[fmt])
        print(f"exported {fmt} in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    os.environ[PRECISION_ENV] = "fp32"
    models = {"pytorch_fp32": load_classifier(run_id)}
    if native_bf16_cpu():
        os.environ[PRECISION_ENV] = "bf16"
        models["pytorch_bf16"] = load_classifier(run_id)
    os.environ.pop(PRECISION_ENV)
    models["onnx_fp32"] = load_onnx_folder(folders["onnx"])
    models["onnx_int8"] = load_onnx_folder(folders["onnx-int8"])
    out: dict = {"texts": len(texts), "threads": threads}
    proba = {}
    for name, model in models.items():
        model.predict_proba(texts[:64])  # warm-up
        t0 = time.perf_counter()
        proba[name] = model.predict_proba(texts)
        out[name] = {"texts_per_s": round(len(texts) / (time.perf_counter() - t0), 1),
                     "macro_f1": round(macro_f1(truth, proba[name], model.labels), 4)}
        print(f"{name}: {json.dumps(out[name])}", file=sys.stderr, flush=True)
    ref = proba["pytorch_fp32"]
    for name in models:
        if name != "pytorch_fp32":
            out[name]["label_agreement_vs_fp32"] = round(float((proba[name].argmax(1) == ref.argmax(1)).mean()), 4)
            out[name]["max_abs_proba_diff"] = round(float(np.abs(proba[name] - ref).max()), 5)
            out[name]["speedup_vs_fp32"] = round(out[name]["texts_per_s"] / out["pytorch_fp32"]["texts_per_s"], 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tweets", type=Path, default=TWEETS)
    parser.add_argument("--train-rows", type=int, default=1500, help="tweets of the train part to fine-tune on")
    parser.add_argument("--requests", type=int, default=240, help="requests per concurrency level (at least 20 "
                                                                  "per client)")
    parser.add_argument("--export-texts", type=int, default=2000, help="test-split tweets in the export benchmark "
                                                                       "(0: the whole test split)")
    parser.add_argument("--home", type=Path, help="reuse this bench home (and its trained run)")
    parser.add_argument("--skip", choices=("load", "export"), action="append", default=[])
    parser.add_argument("--plain-server", metavar="MODEL_DIR", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_server:
        return plain_server(args.plain_server, args.port, args.threads)

    home = args.home or Path(tempfile.mkdtemp(prefix="protolab-bench-serve-"))
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update(PROTOLAB_HOME=str(home), DATABASE_URL=f"sqlite:///{home / 'protolab.db'}",
                      HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    from transformers.utils import logging as hf_logging

    from bench.inference import existing_runs, store_dataset, train
    from core.runs.files import RunFiles
    from core.text.serving import configure_torch_threads

    hf_logging.set_verbosity_error()
    configure_torch_threads()
    import torch

    threads = torch.get_num_threads()
    load_before = os.getloadavg()
    train_part, test_part = tweets_split(args.tweets)
    runs = existing_runs()
    if "transformer" not in runs:
        dataset_id = store_dataset(train_part.sample(n=args.train_rows, random_state=0))
        runs["transformer"] = train(dataset_id, "transformer", epochs=1, device="cpu")
    run_id = runs["transformer"][0]
    test = test_part if args.export_texts == 0 else test_part.iloc[:args.export_texts]
    texts, truth = test["text"].tolist(), test["label"].tolist()
    results: dict = {"machine": {"cpus": os.cpu_count(), "loadavg_before": load_before}, "run_id": run_id,
                     "home": str(home), "threads": threads}
    if "load" not in args.skip:
        results["load"] = load_test(run_id, RunFiles.of(run_id).model, test_part["text"].tolist(), args.requests,
                                    threads)
    if "export" not in args.skip:
        results["export"] = export_bench(run_id, texts, truth, threads)
    results["machine"]["loadavg_after"] = os.getloadavg()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
