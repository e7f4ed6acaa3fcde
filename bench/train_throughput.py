"""Transformer fine-tuning throughput: Protolab's loop against Hugging Face Trainer, same process, alternating.

Usage: .venv/bin/python bench/train_throughput.py [--device cpu|cuda] [--csv PATH] [--n 2048] [--rounds 1]
       [--variants ours,trainer,...] [--arch minilm|bert-base]
Prints samples/s and held-out macro-F1 per variant (medians over rounds that alternate the order), and the ratios
ours / Trainer. On CUDA every timing is bracketed by torch.cuda.synchronize(), and the default variants are ours,
Trainer fp32 (its defaults) and Trainer bf16. `--arch bert-base` trains a BERT-base-sized model built from its
config (random weights, the bundled tokenizer), a model a GPU user would pick, when no such weights are offline.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from core import settings  # noqa: E402  (after the path above: the checkout's core/)

# ../shared/gpu/run.sh sets PROTOLAB_TWEETS_CSV to the corpus it carries to a GPU machine.
DEFAULT_CSV = Path(settings.TWEETS_CSV.get() or ROOT.parent / "shared" / "datasets" / "tweets-sentiment" / "tweets.csv")
# "ours" is the product default (bf16 autocast where the CPU does bf16 natively); _fp32/_bf16 force one.
VARIANTS = ("ours", "trainer", "trainer_bf16", "trainer_grouped", "ours_bf16", "ours_fp32", "lstm")
DEFAULT_VARIANTS = {"cpu": "ours,trainer,trainer_grouped", "cuda": "ours,trainer,trainer_bf16"}


def synchronize(device: str) -> None:
    """Wait for queued GPU work, so a timer measures the work and not its launch."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)


def build_arch(arch: str, tokenizer, n_labels: int):  # noqa: ANN001, ANN201
    """None for the bundled model; else a randomly initialised model of that architecture (same for every variant)."""
    if arch == "minilm":
        return None
    from transformers import AutoModelForSequenceClassification, BertConfig

    config = BertConfig(vocab_size=len(tokenizer), hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                        intermediate_size=3072, num_labels=n_labels, pad_token_id=tokenizer.pad_token_id)
    return AutoModelForSequenceClassification.from_config(config, attn_implementation="sdpa")


def load_tweets(path: Path, n_train: int, n_eval: int, seed: int = 0):  # noqa: ANN201
    import pandas as pd

    frame = pd.read_csv(path, encoding="cp1252", encoding_errors="replace")
    frame = frame.rename(columns={"sentiment": "label"})[["text", "label"]].dropna()
    frame = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    return frame.iloc[:n_train].reset_index(drop=True), frame.iloc[n_train:n_train + n_eval].reset_index(drop=True)


def macro_f1(model, tokenizer, held, labels, max_length: int, device: str = "cpu") -> float:  # noqa: ANN001
    """The same evaluation for every variant: our sorted-batch prediction, macro-F1 on the held-out slice."""
    from sklearn.metrics import f1_score

    from core.text.batching import TokenBatches, encode_texts
    from core.text.loop import predict_proba

    batches = TokenBatches(encode_texts(tokenizer, held["text"].tolist(), max_length), None,
                           tokenizer.pad_token_id, 64, shuffle=False)
    pred = predict_proba(model, batches, device).argmax(axis=1)
    return float(f1_score([labels.index(v) for v in held["label"]], pred, average="macro"))


def run_ours(train, held, labels, args, bf16: bool | None = None, family: str = "transformer") -> dict:  # noqa: ANN001
    from core.text import config as text_config
    from core.text import executor, loop
    from core.text.batching import TokenBatches, encode_texts

    batch_size = args.lstm_batch_size if family == "lstm" else args.batch_size
    cfg = text_config.config_from_dict(text_config.build_config(family, {
        "epochs": 1, "batch_size": batch_size, "max_length": args.max_length, "seed": args.seed,
        "device": args.device, "patience": 0}))
    loop.seed_everything(cfg.seed)
    model, tokenizer = executor.build_model(family, cfg, labels)
    if family == "transformer":
        model = build_arch(args.arch, tokenizer, len(labels)) or model
    y = [labels.index(v) for v in train["label"]]
    import numpy as np

    batches = TokenBatches(encode_texts(tokenizer, train["text"].tolist(), cfg.max_length), np.array(y),
                           tokenizer.pad_token_id, cfg.batch_size, seed=cfg.seed)
    tiny_val = TokenBatches(batches.ids[:32], np.array(y[:32]), tokenizer.pad_token_id, 64, shuffle=False)
    previous, loop.CPU_BF16 = loop.CPU_BF16, bf16
    variable = settings.TRAIN_PRECISION.name
    previous_env = os.environ.pop(variable, None)
    if bf16 is not None:  # the CPU flag above; on CUDA the precision is chosen by model size unless forced
        os.environ[variable] = "bf16" if bf16 else "fp32"
    try:
        synchronize(args.device)
        start = time.perf_counter()
        result = loop.train_classifier(model, batches, tiny_val, cfg, device=args.device)
        synchronize(args.device)
        wall = time.perf_counter() - start
    finally:
        loop.CPU_BF16 = previous
        os.environ.pop(variable, None)
        if previous_env is not None:
            os.environ[variable] = previous_env
    return {"samples_per_s": len(train) / wall, "loop_samples_per_s": result.samples_per_s, "seconds": wall,
            "macro_f1": macro_f1(model, tokenizer, held, labels, cfg.max_length, args.device),
            "precision": str(loop.training_precision(args.device, loop.count_parameters(model))[0] or "fp32"),
            "padded_tokens": batches.padded_tokens(0), "real_tokens": int(batches.lengths.sum())}


def run_trainer(train, held, labels, args, grouped: bool, bf16: bool = False) -> dict:  # noqa: ANN001
    from transformers import (
        AutoModelForSequenceClassification,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        set_seed,
    )
    from transformers.utils import logging as hf_logging

    from core.text.pretrained import load_tokenizer, resolve_model_path

    hf_logging.set_verbosity_error()
    set_seed(args.seed)
    tokenizer = load_tokenizer()
    model = build_arch(args.arch, tokenizer, len(labels)) or AutoModelForSequenceClassification.from_pretrained(
        resolve_model_path(None), num_labels=len(labels))
    enc = tokenizer(train["text"].tolist(), truncation=True, max_length=args.max_length)
    rows = [{"input_ids": ids, "attention_mask": mask, "labels": labels.index(y)}
            for ids, mask, y in zip(enc["input_ids"], enc["attention_mask"], train["label"], strict=True)]
    with tempfile.TemporaryDirectory() as out:
        extra = {"train_sampling_strategy": "group_by_length"} if grouped else {}
        if bf16:
            extra["bf16"] = True
        targs = TrainingArguments(output_dir=out, per_device_train_batch_size=args.batch_size, num_train_epochs=1,
                                  seed=args.seed, report_to="none", disable_tqdm=True,
                                  use_cpu=args.device == "cpu", save_strategy="no", **extra)
        trainer = Trainer(model=model, args=targs, train_dataset=rows,
                          data_collator=DataCollatorWithPadding(tokenizer))
        synchronize(args.device)
        start = time.perf_counter()
        output = trainer.train()
        synchronize(args.device)
        wall = time.perf_counter() - start
    return {"samples_per_s": len(train) / wall, "trainer_reported_samples_per_s":
            output.metrics.get("train_samples_per_second"), "seconds": wall,
            "macro_f1": macro_f1(model, tokenizer, held, labels, args.max_length, args.device)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    p.add_argument("--n", type=int, default=2048, help="training examples")
    p.add_argument("--eval", type=int, default=1024, help="held-out examples for macro-F1")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lstm-batch-size", type=int, default=64)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--variants", help=f"comma-separated, from {', '.join(VARIANTS)} (default per device: "
                                      f"{DEFAULT_VARIANTS})")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (every variant trains there)")
    p.add_argument("--arch", choices=("minilm", "bert-base"), default="minilm",
                   help="the bundled MiniLM, or a BERT-base-sized model built from its config")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--no-warmup", dest="warmup", action="store_false",
                   help="skip the untimed warm-up run of every variant before round 1")
    args = p.parse_args(argv)
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            p.error("--device cuda: no CUDA GPU is visible to torch")
    elif args.device != "cpu":
        p.error(f"--device must be cpu or cuda[:N], got {args.device!r}")
    args.variants = args.variants or DEFAULT_VARIANTS["cuda" if args.device.startswith("cuda") else "cpu"]
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        p.error(f"unknown variant(s) {sorted(unknown)}; choose from {VARIANTS}")

    import torch

    train, held = load_tweets(args.csv, args.n, args.eval)
    labels = sorted(set(train["label"]))
    gpu = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "none"
    print(f"{len(train)} training / {len(held)} held-out tweets, labels {labels}, device {args.device} (GPU {gpu}), "
          f"torch {torch.__version__} (CUDA {torch.version.cuda}), threads {torch.get_num_threads()}, "
          f"batch {args.batch_size}, arch {args.arch}", flush=True)
    runners = {"ours": lambda tr, he: run_ours(tr, he, labels, args),
               "ours_bf16": lambda tr, he: run_ours(tr, he, labels, args, bf16=True),
               "ours_fp32": lambda tr, he: run_ours(tr, he, labels, args, bf16=False),
               "lstm": lambda tr, he: run_ours(tr, he, labels, args, family="lstm"),
               "trainer": lambda tr, he: run_trainer(tr, he, labels, args, grouped=False),
               "trainer_bf16": lambda tr, he: run_trainer(tr, he, labels, args, grouped=False, bf16=True),
               "trainer_grouped": lambda tr, he: run_trainer(tr, he, labels, args, grouped=True)}
    if args.warmup:
        # Untimed: the first variant in a process would otherwise pay the one-time costs (the CUDA context, cuBLAS
        # handles, kernel selection, oneDNN's JIT on a CPU): round 1 ran "ours" first and measured it up to 40 %
        # slow on the CPU.
        start = time.perf_counter()
        for variant in variants:
            runners[variant](train.iloc[:4 * args.batch_size], held.iloc[:64])
        print(f"warm-up: every variant on {min(len(train), 4 * args.batch_size)} examples, untimed "
              f"({time.perf_counter() - start:.1f} s)", flush=True)
    results: dict[str, list[dict]] = {v: [] for v in variants}
    try:
        for r in range(args.rounds):
            order = variants if r % 2 == 0 else variants[::-1]  # alternate so drift in machine load evens out
            for variant in order:
                res = runners[variant](train, held)
                results[variant].append(res)
                print(f"round {r + 1} {variant:16s} {res['samples_per_s']:7.1f} samples/s  "
                      f"{res['seconds']:6.1f} s  macro-F1 {res['macro_f1']:.4f}", flush=True)
    except KeyboardInterrupt:  # bench/gpu_checks.sh stops a step at its time limit: keep the rounds that finished
        print("interrupted: the summary below holds the runs that finished", flush=True)
    summary = {v: {"samples_per_s": statistics.median(x["samples_per_s"] for x in rs),
                   "macro_f1": statistics.median(x["macro_f1"] for x in rs), "runs": rs}
               for v, rs in results.items() if rs}
    print("\nmedian over rounds:")
    for v, s in summary.items():
        print(f"  {v:16s} {s['samples_per_s']:7.1f} samples/s  macro-F1 {s['macro_f1']:.4f}")
    for base in ("trainer", "trainer_bf16", "trainer_grouped"):
        for ours in ("ours", "ours_bf16"):
            if base in summary and ours in summary:
                ratio = summary[ours]["samples_per_s"] / summary[base]["samples_per_s"]
                delta = summary[ours]["macro_f1"] - summary[base]["macro_f1"]
                print(f"  {ours} / {base}: {ratio:.2f}x samples/s, macro-F1 {delta * 100:+.1f} points")
    if "ours" in summary:
        run = summary["ours"]["runs"][0]
        print(f"  padding: our batches hold {run['padded_tokens'] / len(train):.1f} tokens/text "
              f"for {run['real_tokens'] / len(train):.1f} real")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
