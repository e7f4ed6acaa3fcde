"""MovieLens 100K benchmark: Protolab recommenders under the Microsoft Recommenders protocol, beside published figures.

Usage: .venv/bin/python bench/movielens.py [--data ../shared/datasets/movielens-100k] [--models ...] [--tune]
Protocol: random 75/25 split stratified per item (seed 42), every test rating relevant, training items excluded,
users in train and test scored. Hyperparameters are tuned (--tune) on a validation split drawn from train only.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.recs.config import PROTOCOLS, build_config, parse_config  # noqa: E402
from core.recs.encoding import Interactions, index_train  # noqa: E402
from core.recs.serving import load_recommender  # noqa: E402
from core.recs.splits import split_interactions, stratified_item_split  # noqa: E402
from core.recs.training import evaluate_model, save_model, train_model  # noqa: E402

PUBLISHED = [  # Microsoft Recommenders benchmark notebook rerun (2025), GPU machine; see ../shared/datasets/README.md
    ("SVD (Surprise)", 0.0121, 0.0944, 0.0891, 0.0301, 0.9), ("SAR", 0.1140, 0.3938, 0.3406, 0.1854, 0.2),
    ("NCF (NeuMF)", 0.0952, 0.3686, 0.3269, 0.1632, 113.0), ("LightGCN", 0.1209, 0.4164, 0.3592, 0.1960, 23.0),
    ("BPR (Cornac)", 0.1340, 0.4450, 0.3887, 0.2166, 5.0), ("BiVAE", 0.1436, 0.4687, 0.4082, 0.2209, 22.7),
]
DEFAULT_MODELS = "popularity,itemknn,bpr,ease,sequential,content"
GRIDS = {  # searched on the validation split only
    "ease": [{"l2": v} for v in (100.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0)],
    "itemknn": [{"neighbours": n, "shrink": s} for n in (50, 100, 200) for s in (0.0, 10.0)],
    "content": [{"collaborative_weight": w} for w in (0.5, 0.8, 0.95)],
}


def load(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    ratings = pd.read_csv(folder / "ratings.csv").rename(columns={"user_id": "user", "item_id": "item"})
    ratings = ratings.assign(user=ratings["user"].astype(str), item=ratings["item"].astype(str),
                             rating=ratings["rating"].astype(float))
    movies = pd.read_csv(folder / "movies.csv").rename(columns={"item_id": "item"})
    return ratings, movies.assign(item=movies["item"].astype(str))


def fit_eval(kind: str, options: dict, train: pd.DataFrame, test: pd.DataFrame, movies: pd.DataFrame,
             k: int = 10) -> tuple[dict, float, object, Interactions]:
    cfg = parse_config(kind, build_config(kind, {**options, "device": "cpu"}))
    data = index_train(train, movies, with_catalogue=kind == "content")
    start = time.perf_counter()
    model = train_model(kind, cfg, data, catalogue=movies, device="cpu")
    seconds = time.perf_counter() - start
    by_k, _ = evaluate_model(model, data, test, ks=[k])
    return by_k[k], seconds, model, data


def tune(kind: str, train: pd.DataFrame, movies: pd.DataFrame) -> dict:
    """Pick the grid point with the best validation NDCG@10 (validation = a stratified split of train)."""
    fit_part, valid = stratified_item_split(train, 0.75, "item", seed=7)
    best, best_score = {}, -1.0
    for options in GRIDS.get(kind, [{}]):
        metrics, _, _, _ = fit_eval(kind, options, fit_part, valid, movies)
        print(f"  tune {kind} {options}: validation NDCG@10 {metrics['ndcg']:.4f}", flush=True)
        if metrics["ndcg"] > best_score:
            best, best_score = options, metrics["ndcg"]
    return best


def latency(kind: str, options: dict, model: object, data: Interactions, ratings: pd.DataFrame,
            movies: pd.DataFrame, n_users: int = 500) -> tuple[float, float]:
    """p50/p95 milliseconds for top-10 of one user, after saving and reloading the model as the app does."""
    cfg = parse_config(kind, build_config(kind, options))
    with tempfile.TemporaryDirectory() as tmp:
        save_model(Path(tmp), kind, cfg, model, data, ratings, movies)
        served = load_recommender(tmp)
        users = served.users[:n_users]
        served.recommend(users[0], 10)  # warm-up
        timings = []
        for user in users:
            start = time.perf_counter()
            served.recommend(user, 10)
            timings.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(timings, 50)), float(np.percentile(timings, 95))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "datasets"
                        / "movielens-100k")
    parser.add_argument("--models", default=DEFAULT_MODELS)
    parser.add_argument("--tune", action="store_true", help="grid-search ease/itemknn/content on validation")
    parser.add_argument("--protocol", default="stratified_item", choices=PROTOCOLS[:2],
                        help="leave_last_out: each user's latest rating is the test set (sequential models)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    ratings, movies = load(args.data)
    cfg = parse_config("popularity", build_config("popularity", {"split_protocol": args.protocol}))
    train, test = split_interactions(ratings, cfg)
    print(f"MovieLens 100K: {len(train):,} train / {len(test):,} test ratings ({args.protocol})")
    rows = []
    for kind in args.models.split(","):
        options = tune(kind, train, movies) if args.tune and kind in GRIDS else {}
        metrics, seconds, model, data = fit_eval(kind, options, train, test, movies)
        p50, p95 = latency(kind, options, model, data, ratings, movies)
        rows.append((f"Protolab {kind}" + (f" {options}" if options else ""), metrics, seconds, p50, p95))
        print(f"{kind}: NDCG@10 {metrics['ndcg']:.4f} in {seconds:.1f} s, top-10 p95 {p95:.1f} ms", flush=True)
    print("\n| algorithm | MAP@10 | nDCG@10 | Precision@10 | Recall@10 | coverage@10 | train time | top-10 p50 / p95 |")
    print("|---|---|---|---|---|---|---|---|")
    for name, m, seconds, p50, p95 in rows:
        print(f"| {name} | {m['map']:.4f} | {m['ndcg']:.4f} | {m['precision']:.4f} | {m['recall']:.4f} | "
              f"{m['coverage']:.3f} | {seconds:.1f} s | {p50:.1f} / {p95:.1f} ms |")
    for name, map_, ndcg, prec, recall, seconds in PUBLISHED if args.protocol == "stratified_item" else []:
        print(f"| {name} (published) | {map_:.4f} | {ndcg:.4f} | {prec:.4f} | {recall:.4f} | - | {seconds} s | - |")


if __name__ == "__main__":
    main()
