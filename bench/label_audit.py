"""Label audit on the tweets corpus: does the data health audit find seeded label flips, and does cleaning help?

On the 80/20 stratified split of tweets_quality.py (seed 0), training labels are flipped at random (seeded)
at each noise level. The audit flags rows as the product does by default: cleanlab on 5-fold TF-IDF
probabilities averaged with a logistic regression on the MiniLM embeddings, temperature-calibrated; its
*likely* label errors (95 % sure) and its *possible* ones are scored separately, beside the quick pass
without embeddings and a baseline that flags every row the cross-validated TF-IDF gets wrong. Then TF-IDF and
a neural model are trained on the clean, the noisy and the auto-cleaned labels (likely errors relabelled to
the suggestion, as `protolab datasets version --relabel-suggested` does) and scored on the untouched clean
test split. Last, the audit is timed on the full corpus (cross-validated source alone, then
with the MiniLM near-duplicate search), and the zero-label baseline is printed beside TF-IDF.

Usage: .venv/bin/python bench/label_audit.py [--noise 0.05,0.15] [--neural lstm|transformer] [--neural-limit 10000]
       [--lstm-epochs 2] [--skip-embeddings] [--cache DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.tweets_quality import DEFAULT_CSV, load_split, run_neural, run_tfidf  # noqa: E402
from core.health.audit import AuditConfig, cv_probabilities, label_issues, run_audit  # noqa: E402

DESCRIPTIONS = {"negative": "an angry, sad or disappointed complaint",
                "neutral": "a plain factual statement or question",
                "positive": "a happy, grateful or enthusiastic message"}


def flip_labels(labels: pd.Series, fraction: float, seed: int) -> tuple[pd.Series, np.ndarray]:
    """Labels with `fraction` of the rows moved to another label chosen at random; (noisy, flipped rows)."""
    rng = np.random.default_rng(seed)
    names = sorted(set(labels))
    flips = np.sort(rng.choice(len(labels), int(round(fraction * len(labels))), replace=False))
    noisy = labels.copy()
    for row in flips:
        others = [n for n in names if n != labels.iloc[row]]
        noisy.iloc[row] = others[rng.integers(len(others))]
    return noisy, flips


def precision_recall(flagged: set[int], flips: set[int]) -> dict[str, float]:
    hit = len(flagged & flips)
    return {"flagged": len(flagged), "precision": hit / max(len(flagged), 1), "recall": hit / max(len(flips), 1)}


def stratified_subset(frame: pd.DataFrame, limit: int | None) -> pd.DataFrame:
    from sklearn.model_selection import train_test_split

    if not limit or limit >= len(frame):
        return frame
    # Stratified by the *clean* label so the subsets for clean, noisy and cleaned hold the same tweets.
    subset, _ = train_test_split(frame, train_size=limit, stratify=frame["truth"], random_state=0)
    return subset


def training_embeddings(train: pd.DataFrame, args: argparse.Namespace) -> tuple[np.ndarray, float]:
    """MiniLM embeddings of the training tweets (what the audit computes for near-duplicates), cached by --cache."""
    from core.health.embeddings import Encoder

    path = args.cache / "train_embeddings.npy" if args.cache else None
    if path is not None and path.exists():
        return np.load(path), 0.0
    cpu = time.process_time()
    embeddings = Encoder().encode(train["text"].tolist())
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, embeddings)
    return embeddings, time.process_time() - cpu


def audit_flags(frame: pd.DataFrame, embeddings: np.ndarray | None) -> tuple[pd.DataFrame, tuple, float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    proba, names, rows = cv_probabilities(frame["text"].tolist(), frame["label"].to_numpy(), AuditConfig(),
                                          embeddings=embeddings)
    issues = label_issues(proba, names, rows, frame["label"].to_numpy(), certainty=AuditConfig().certainty)
    return issues, (proba, names, rows), time.perf_counter() - start, time.process_time() - cpu


def noise_level(train: pd.DataFrame, test: pd.DataFrame, fraction: float, args: argparse.Namespace,
                embeddings: np.ndarray | None) -> dict:
    noisy, flips = flip_labels(train["label"], fraction, seed=args.seed)
    frame = pd.DataFrame({"text": train["text"], "label": noisy, "split": "train"})
    flipped = set(flips.tolist())
    quick, (proba, names, rows), quick_s, quick_cpu_s = audit_flags(frame, None)
    out = {"fraction": fraction, "flips": len(flips), "audit_s": quick_s, "audit_cpu_s": quick_cpu_s,
           "quick_likely": precision_recall(set(quick.loc[quick["likely"], "row"]), flipped),
           "quick_all": precision_recall(set(quick["row"]), flipped)}
    issues = quick
    if embeddings is not None:
        issues, _, out["ensemble_s"], out["ensemble_cpu_s"] = audit_flags(frame, embeddings)
    given = frame["label"].to_numpy()[rows]
    wrong = set(rows[np.asarray(names)[proba.argmax(axis=1)] != given].tolist())
    likely = issues[issues["likely"]]
    cleaned = noisy.copy()
    cleaned.iloc[likely["row"].to_numpy()] = likely["suggested"].to_numpy()
    keep = ~train.index.isin(likely["row"])
    out.update({"embeddings": embeddings is not None,
           "audit": precision_recall(set(likely["row"]), flipped),
           "audit_all": precision_recall(set(issues["row"]), flipped),
           "tfidf_wrong": precision_recall(wrong, flipped),
           "other_filters": other_filters(proba, given, rows, flipped),
           "labels_correct_after_cleaning": float((cleaned == train["label"]).mean()),
           "labels_correct_before": float((noisy == train["label"]).mean())})
    # "cleaned": --relabel-suggested; "cleaned_strict": --relabel-suggested --exclude-possible
    strict = ~train.index.isin(issues.loc[~issues["likely"], "row"])
    versions = {"clean": (train["label"], None), "noisy": (noisy, None), "cleaned": (cleaned, None),
                "cleaned_strict": (cleaned, strict)}
    out["tfidf_excluded"] = run_tfidf(train.assign(label=noisy)[keep], test, args)["macro_f1"]
    out["tfidf"] = {name: run_tfidf(_version(train, y, rows), test, args)["macro_f1"]
                    for name, (y, rows) in versions.items()}
    if args.neural:
        out[args.neural] = {}
        # the same clean tweets sampled for every version, then the version's own rows of them
        chosen = stratified_subset(train.assign(truth=train["label"]), args.neural_limit).index
        for name, (y, rows) in versions.items():
            version = _version(train, y, rows)
            subset = version[version.index.isin(chosen)]
            out[args.neural][name] = run_neural(args.neural, subset[["text", "label"]], test, args)["macro_f1"]
            print(f"    {args.neural} {name}: test macro-F1 {out[args.neural][name]:.4f}", flush=True)
    return out


def _version(train: pd.DataFrame, labels: pd.Series, keep: np.ndarray | None) -> pd.DataFrame:
    frame = train.assign(label=labels)
    return frame if keep is None else frame[keep]


def other_filters(proba: np.ndarray, given: np.ndarray, rows: np.ndarray, flips: set[int]) -> dict:
    """Precision and recall of cleanlab's other filters on the same probabilities (the audit uses the default)."""
    from cleanlab.filter import find_label_issues

    names = sorted(set(given.tolist()))
    y = np.searchsorted(names, given)
    return {method: precision_recall(set(rows[find_label_issues(y, proba, filter_by=method)].tolist()), flips)
            for method in ("both", "confident_learning")}


def recovered(scores: dict[str, float], version: str = "cleaned") -> float | None:
    lost = scores["clean"] - scores["noisy"]
    return (scores[version] - scores["noisy"]) / lost if lost > 0 else None


def full_corpus(train: pd.DataFrame, test: pd.DataFrame, args: argparse.Namespace) -> dict:
    """Audit timings on every tweet (train + test as splits) and the zero-label baseline on the test split."""
    from core.health.zero_label import label_prompts, score_splits, zero_label_proba

    frame = pd.concat([train.assign(split="train"), test.assign(split="test")], ignore_index=True)
    out: dict = {"rows": len(frame)}
    start, cpu = time.perf_counter(), time.process_time()
    fast = run_audit(frame, AuditConfig(embeddings=False))
    out["cv_only_s"], out["cv_only_cpu_s"] = time.perf_counter() - start, time.process_time() - cpu
    out["cv_only"] = fast.summary
    out["tfidf_test_macro_f1"] = run_tfidf(train, test, args)["macro_f1"]
    if args.skip_embeddings:
        return out
    start, cpu = time.perf_counter(), time.process_time()
    full = run_audit(frame, AuditConfig(embeddings=True))
    out["with_embeddings_s"], out["with_embeddings_cpu_s"] = time.perf_counter() - start, time.process_time() - cpu
    out["with_embeddings"] = full.summary
    out["zero_label_names"] = full.zero_label["reports"]["test"]["macro_f1"]
    from core.health.embeddings import Encoder

    names = sorted(set(frame["label"]))
    labels, splits = frame["label"].to_numpy(), frame["split"].to_numpy()
    prompts = label_prompts(names, DESCRIPTIONS)
    proba = zero_label_proba(full.embeddings, Encoder().encode(prompts))
    out["zero_label_descriptions"] = score_splits(proba, labels, splits, names, prompts)["reports"]["test"]["macro_f1"]
    return out


def zero_label_only(train: pd.DataFrame, test: pd.DataFrame, args: argparse.Namespace) -> dict:
    """The zero-label baseline on the test split alone (embeds 7.6k tweets, not 38k), beside TF-IDF."""
    from core.health.embeddings import Encoder
    from core.health.zero_label import label_prompts, score_splits, zero_label_proba

    names = sorted(set(test["label"]))
    labels, splits = test["label"].to_numpy(), np.full(len(test), "test")
    start, cpu = time.perf_counter(), time.process_time()
    encoder = Encoder()
    embeddings = encoder.encode(test["text"].tolist())
    out = {"embed_s": time.perf_counter() - start, "embed_cpu_s": time.process_time() - cpu}
    for key, descriptions in (("names", None), ("descriptions", DESCRIPTIONS)):
        prompts = label_prompts(names, descriptions)
        proba = zero_label_proba(embeddings, encoder.encode(prompts))
        out[key] = score_splits(proba, labels, splits, names, prompts)["reports"]["test"]["macro_f1"]
    out["tfidf"] = run_tfidf(train, test, args)["macro_f1"]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    p.add_argument("--noise", default="0.05,0.15")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--neural", default="lstm", help="lstm | transformer | '' (none)")
    p.add_argument("--neural-limit", type=int, default=10000, help="training tweets for the neural model")
    p.add_argument("--lstm-epochs", type=int, default=2)
    p.add_argument("--epochs", type=int, default=1, help="transformer epochs")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lstm-batch-size", type=int, default=64)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--device", default="cpu")
    p.add_argument("--skip-embeddings", action="store_true",
                   help="TF-IDF probabilities only (the quick pass) and no MiniLM timing")
    p.add_argument("--cache", type=Path, help="keep the training tweets' MiniLM embeddings here between runs")
    p.add_argument("--skip-noise", action="store_true", help="only the full-corpus timing and zero-label")
    p.add_argument("--skip-full", action="store_true", help="only the seeded-noise part")
    p.add_argument("--zero-label-only", action="store_true", help="only the zero-label baseline on the test split")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    train, test = load_split(args.csv, None)
    print(f"{len(train)} training / {len(test)} clean test tweets (80/20 stratified, seed 0)", flush=True)
    results: dict = {"levels": []}
    if args.zero_label_only:
        zero = results["zero_label"] = zero_label_only(train, test, args)
        print(f"test macro-F1: TF-IDF {zero['tfidf']:.4f} | zero-label, label names {zero['names']:.4f} | "
              f"zero-label, one-line descriptions {zero['descriptions']:.4f} (embedding {len(test)} tweets: "
              f"{zero['embed_s']:.0f} s wall, {zero['embed_cpu_s']:.0f} s CPU)", flush=True)
        _write(args.json, results)
        return 0
    embeddings = None
    if not args.skip_noise and not args.skip_embeddings:
        embeddings, embed_cpu = training_embeddings(train, args)
        results["embed_train_cpu_s"] = embed_cpu
        print(f"MiniLM embeddings of {len(train)} training tweets: {embed_cpu:.0f} s CPU (0: from --cache)", flush=True)
    for fraction in [] if args.skip_noise else [float(f) for f in args.noise.split(",") if f]:
        res = noise_level(train, test, fraction, args, embeddings)
        results["levels"].append(res)
        a, b, q = res["audit"], res["tfidf_wrong"], res["quick_likely"]
        every, quick_every = res["audit_all"], res["quick_all"]
        print(f"noise {fraction:.0%} ({res['flips']} flips; TF-IDF audit {res['audit_s']:.1f} s wall, "
              f"{res['audit_cpu_s']:.1f} s CPU"
              + (f"; with embeddings {res['ensemble_s']:.1f} s wall" if "ensemble_s" in res else "") + "):\n"
              f"  likely errors ({'TF-IDF + MiniLM' if res['embeddings'] else 'TF-IDF'}) {a['flagged']:>5}: "
              f"precision {a['precision']:.3f} recall {a['recall']:.3f}\n"
              f"  likely + possible {every['flagged']:>5}: precision {every['precision']:.3f} "
              f"recall {every['recall']:.3f}\n"
              f"  quick pass (TF-IDF only): likely {q['flagged']:>5}: precision {q['precision']:.3f} recall "
              f"{q['recall']:.3f}; likely + possible {quick_every['flagged']:>5}: precision "
              f"{quick_every['precision']:.3f} recall {quick_every['recall']:.3f}\n"
              f"  TF-IDF wrong {b['flagged']:>5}: precision {b['precision']:.3f} recall {b['recall']:.3f}\n"
              f"  training labels correct: {res['labels_correct_before']:.3f} noisy -> "
              f"{res['labels_correct_after_cleaning']:.3f} cleaned", flush=True)
        for method, pr in res["other_filters"].items():
            print(f"  (TF-IDF, cleanlab filter_by={method}: {pr['flagged']} flagged, precision {pr['precision']:.3f} "
                  f"recall {pr['recall']:.3f})", flush=True)
        print(f"  tfidf trained without the likely errors: test macro-F1 {res['tfidf_excluded']:.4f}", flush=True)
        for model in ("tfidf", args.neural):
            if model and model in res:
                s = res[model]
                share, strict_share = recovered(s), recovered(s, "cleaned_strict")
                print(f"  {model:12s} test macro-F1 clean {s['clean']:.4f} noisy {s['noisy']:.4f} "
                      f"cleaned {s['cleaned']:.4f}"
                      + (f" (recovers {share:.0%} of the loss)" if share is not None else "")
                      + f", cleaned + possible errors dropped {s['cleaned_strict']:.4f}"
                      + (f" (recovers {strict_share:.0%})" if strict_share is not None else ""), flush=True)
    if args.skip_full:
        _write(args.json, results)
        return 0
    full = full_corpus(train, test, args)
    results["full_corpus"] = full
    print(f"full corpus ({full['rows']} tweets): cross-validated audit {full['cv_only_s']:.1f} s wall, "
          f"{full['cv_only_cpu_s']:.1f} s CPU "
          f"({full['cv_only']['label_issues']} label issues, {full['cv_only']['near_duplicates']} exact/normalised "
          f"duplicates, {full['cv_only']['leakage']} leaking)", flush=True)
    if "with_embeddings_s" in full:
        w = full["with_embeddings"]
        print(f"  with MiniLM near-duplicates: {full['with_embeddings_s']:.1f} s wall, "
              f"{full['with_embeddings_cpu_s']:.1f} s CPU ({w['near_duplicates']} "
              f"near-duplicates, {w['leakage']} leaking)\n"
              f"  test macro-F1: TF-IDF {full['tfidf_test_macro_f1']:.4f} | zero-label, label names "
              f"{full['zero_label_names']:.4f} | zero-label, one-line descriptions "
              f"{full['zero_label_descriptions']:.4f}", flush=True)
    _write(args.json, results)
    return 0


def _write(path: Path | None, results: dict) -> None:
    if path:
        path.write_text(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    sys.exit(main())
