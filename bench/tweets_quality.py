"""Quality on the tweets corpus: TF-IDF baseline, LSTM and fine-tuned MiniLM on one 80/20 stratified split (seed 0).

Usage: .venv/bin/python bench/tweets_quality.py [--limit N] [--models tfidf,lstm,transformer] [--epochs 1]
--limit N first draws a stratified sample of N tweets (seed 0), for quick runs on a CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_CSV = ROOT.parent / "shared" / "datasets" / "tweets-sentiment" / "tweets.csv"
REFERENCE_TFIDF_MACRO_F1 = 0.728


def load_split(path: Path, limit: int | None):  # noqa: ANN201
    import pandas as pd
    from sklearn.model_selection import train_test_split

    frame = pd.read_csv(path, encoding="cp1252", encoding_errors="replace")
    frame = frame.rename(columns={"sentiment": "label"})[["text", "label"]].dropna().reset_index(drop=True)
    frame["text"], frame["label"] = frame["text"].astype(str), frame["label"].astype(str)
    if limit and limit < len(frame):
        frame, _ = train_test_split(frame, train_size=limit, stratify=frame["label"], random_state=0)
    train, test = train_test_split(frame, test_size=0.2, stratify=frame["label"], random_state=0)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def scores(y_true, y_pred) -> dict:  # noqa: ANN001
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": float(accuracy_score(y_true, y_pred)), "macro_f1": float(f1_score(y_true, y_pred,
                                                                                          average="macro"))}


def run_tfidf(train, test, args) -> dict:  # noqa: ANN001
    from core.text.tfidf import train_tfidf

    start = time.perf_counter()
    model = train_tfidf(train["text"].tolist(), train["label"].tolist())
    seconds = time.perf_counter() - start
    return {**scores(test["label"], model.predict(test["text"].tolist())), "seconds": seconds}


def run_neural(family: str, train, test, args) -> dict:  # noqa: ANN001
    import numpy as np
    from sklearn.model_selection import train_test_split

    from core.text import config as text_config
    from core.text import executor, loop
    from core.text.batching import TokenBatches, encode_texts

    labels = sorted(set(train["label"]))
    # Early stopping needs a validation set: 10 % of the training part, never the test part.
    fit, val = train_test_split(train, test_size=0.1, stratify=train["label"], random_state=0)
    batch_size = args.lstm_batch_size if family == "lstm" else args.batch_size
    cfg = text_config.config_from_dict(text_config.build_config(family, {
        "epochs": args.lstm_epochs if family == "lstm" else args.epochs, "batch_size": batch_size,
        "max_length": args.max_length, "device": args.device}))
    loop.seed_everything(cfg.seed)
    start = time.perf_counter()
    model, tokenizer = executor.build_model(family, cfg, labels)

    def batches(frame, shuffle: bool, size: int) -> TokenBatches:  # noqa: ANN001
        ids = encode_texts(tokenizer, frame["text"].tolist(), cfg.max_length)
        return TokenBatches(ids, np.array([labels.index(v) for v in frame["label"]]), tokenizer.pad_token_id,
                            size, shuffle=shuffle, seed=cfg.seed)

    def report(log) -> None:  # noqa: ANN001
        print(f"    {family} epoch {log.epoch}: validation macro-F1 {log.macro_f1:.4f}", flush=True)

    result = loop.train_classifier(model, batches(fit, True, batch_size), batches(val, False, 128), cfg,
                                       on_epoch=report)
    proba = loop.predict_proba(model, batches(test, False, 128), result_device(model))
    seconds = time.perf_counter() - start
    pred = [labels[i] for i in proba.argmax(axis=1)]
    return {**scores(test["label"], pred), "seconds": seconds, "epochs_run": result.state.epoch,
            "best_epoch": result.state.best_epoch, "train_samples_per_s": result.samples_per_s}


def result_device(model) -> str:  # noqa: ANN001
    return str(next(model.parameters()).device)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    p.add_argument("--limit", type=int, help="use a stratified sample of N tweets")
    p.add_argument("--models", default="tfidf,lstm,transformer")
    p.add_argument("--epochs", type=int, default=3, help="Transformer epochs (early stopping may end sooner)")
    p.add_argument("--lstm-epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lstm-batch-size", type=int, default=64)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    train, test = load_split(args.csv, args.limit)
    print(f"{len(train)} training / {len(test)} test tweets (80/20 stratified, seed 0)"
          f"{f', limit {args.limit}' if args.limit else ''}", flush=True)
    results = {}
    for model in [m for m in args.models.split(",") if m]:
        res = run_tfidf(train, test, args) if model == "tfidf" else run_neural(model, train, test, args)
        results[model] = res
        print(f"  {model:12s} accuracy {res['accuracy']:.4f}  macro-F1 {res['macro_f1']:.4f}  "
              f"{res['seconds']:.0f} s", flush=True)
    if "tfidf" in results:
        print(f"  (reference TF-IDF macro-F1 on the full corpus: {REFERENCE_TFIDF_MACRO_F1})")
    if "tfidf" in results and "transformer" in results:
        delta = results["transformer"]["macro_f1"] - results["tfidf"]["macro_f1"]
        print(f"  transformer - tfidf: {delta * 100:+.1f} macro-F1 points")
    if args.json:
        args.json.write_text(json.dumps({"limit": args.limit, "n_train": len(train), "n_test": len(test),
                                         "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
