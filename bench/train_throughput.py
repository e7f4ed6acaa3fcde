"""Transformer fine-tuning throughput: Protolab's loop against Hugging Face Trainer, same process, alternating.

Usage: .venv/bin/python bench/train_throughput.py [--csv PATH] [--n 2048] [--rounds 1] [--variants ours,trainer,...]
Prints samples/s and held-out macro-F1 per variant, and the ratios ours / Trainer.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_CSV = ROOT.parent / "shared" / "datasets" / "tweets-sentiment" / "tweets.csv"
# "ours" is the product default (bf16 autocast where the CPU does bf16 natively); _fp32/_bf16 force one.
VARIANTS = ("ours", "trainer", "trainer_grouped", "ours_bf16", "ours_fp32", "lstm")


def load_tweets(path: Path, n_train: int, n_eval: int, seed: int = 0):  # noqa: ANN201
    import pandas as pd

    frame = pd.read_csv(path, encoding="cp1252", encoding_errors="replace")
    frame = frame.rename(columns={"sentiment": "label"})[["text", "label"]].dropna()
    frame = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    return frame.iloc[:n_train].reset_index(drop=True), frame.iloc[n_train:n_train + n_eval].reset_index(drop=True)


def macro_f1(model, tokenizer, held, labels, max_length: int) -> float:  # noqa: ANN001
    """The same evaluation for every variant: our sorted-batch prediction, macro-F1 on the held-out slice."""
    from sklearn.metrics import f1_score

    from core.text.batching import TokenBatches, encode_texts
    from core.text.loop import predict_proba

    batches = TokenBatches(encode_texts(tokenizer, held["text"].tolist(), max_length), None,
                           tokenizer.pad_token_id, 64, shuffle=False)
    pred = predict_proba(model, batches, "cpu").argmax(axis=1)
    return float(f1_score([labels.index(v) for v in held["label"]], pred, average="macro"))


def run_ours(train, held, labels, args, bf16: bool | None = None, family: str = "transformer") -> dict:  # noqa: ANN001
    from core.text import config as text_config
    from core.text import executor, loop
    from core.text.batching import TokenBatches, encode_texts

    batch_size = args.lstm_batch_size if family == "lstm" else args.batch_size
    cfg = text_config.config_from_dict(text_config.build_config(family, {
        "epochs": 1, "batch_size": batch_size, "max_length": args.max_length, "seed": args.seed,
        "device": "cpu", "patience": 0}))
    loop.seed_everything(cfg.seed)
    model, tokenizer = executor.build_model(family, cfg, labels)
    y = [labels.index(v) for v in train["label"]]
    import numpy as np

    batches = TokenBatches(encode_texts(tokenizer, train["text"].tolist(), cfg.max_length), np.array(y),
                           tokenizer.pad_token_id, cfg.batch_size, seed=cfg.seed)
    tiny_val = TokenBatches(batches.ids[:32], np.array(y[:32]), tokenizer.pad_token_id, 64, shuffle=False)
    previous, loop.CPU_BF16 = loop.CPU_BF16, bf16
    try:
        start = time.perf_counter()
        result = loop.train_classifier(model, batches, tiny_val, cfg, device="cpu")
        wall = time.perf_counter() - start
    finally:
        loop.CPU_BF16 = previous
    return {"samples_per_s": len(train) / wall, "loop_samples_per_s": result.samples_per_s, "seconds": wall,
            "macro_f1": macro_f1(model, tokenizer, held, labels, cfg.max_length),
            "padded_tokens": batches.padded_tokens(0), "real_tokens": int(batches.lengths.sum())}


def run_trainer(train, held, labels, args, grouped: bool) -> dict:  # noqa: ANN001
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
    model = AutoModelForSequenceClassification.from_pretrained(resolve_model_path(None), num_labels=len(labels))
    enc = tokenizer(train["text"].tolist(), truncation=True, max_length=args.max_length)
    rows = [{"input_ids": ids, "attention_mask": mask, "labels": labels.index(y)}
            for ids, mask, y in zip(enc["input_ids"], enc["attention_mask"], train["label"], strict=True)]
    with tempfile.TemporaryDirectory() as out:
        extra = {"train_sampling_strategy": "group_by_length"} if grouped else {}
        targs = TrainingArguments(output_dir=out, per_device_train_batch_size=args.batch_size, num_train_epochs=1,
                                  seed=args.seed, report_to="none", disable_tqdm=True, use_cpu=True, **extra)
        trainer = Trainer(model=model, args=targs, train_dataset=rows,
                          data_collator=DataCollatorWithPadding(tokenizer))
        start = time.perf_counter()
        output = trainer.train()
        wall = time.perf_counter() - start
    return {"samples_per_s": len(train) / wall, "trainer_reported_samples_per_s":
            output.metrics.get("train_samples_per_second"), "seconds": wall,
            "macro_f1": macro_f1(model, tokenizer, held, labels, args.max_length)}


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
    p.add_argument("--variants", default="ours,trainer,trainer_grouped")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        p.error(f"unknown variant(s) {sorted(unknown)}; choose from {VARIANTS}")

    import torch

    train, held = load_tweets(args.csv, args.n, args.eval)
    labels = sorted(set(train["label"]))
    print(f"{len(train)} training / {len(held)} held-out tweets, labels {labels}, torch threads "
          f"{torch.get_num_threads()}", flush=True)
    runners = {"ours": lambda: run_ours(train, held, labels, args),
               "ours_bf16": lambda: run_ours(train, held, labels, args, bf16=True),
               "ours_fp32": lambda: run_ours(train, held, labels, args, bf16=False),
               "lstm": lambda: run_ours(train, held, labels, args, family="lstm"),
               "trainer": lambda: run_trainer(train, held, labels, args, grouped=False),
               "trainer_grouped": lambda: run_trainer(train, held, labels, args, grouped=True)}
    results: dict[str, list[dict]] = {v: [] for v in variants}
    for r in range(args.rounds):
        order = variants if r % 2 == 0 else variants[::-1]  # alternate so drift in machine load evens out
        for variant in order:
            res = runners[variant]()
            results[variant].append(res)
            print(f"round {r + 1} {variant:16s} {res['samples_per_s']:7.1f} samples/s  "
                  f"{res['seconds']:6.1f} s  macro-F1 {res['macro_f1']:.4f}", flush=True)
    summary = {v: {"samples_per_s": statistics.median(x["samples_per_s"] for x in rs),
                   "macro_f1": statistics.median(x["macro_f1"] for x in rs), "runs": rs}
               for v, rs in results.items()}
    print("\nmedian over rounds:")
    for v, s in summary.items():
        print(f"  {v:16s} {s['samples_per_s']:7.1f} samples/s  macro-F1 {s['macro_f1']:.4f}")
    for base in ("trainer", "trainer_grouped"):
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
