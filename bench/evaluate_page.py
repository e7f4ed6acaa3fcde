"""Benchmark: Evaluate page reruns with AppTest, against rendering an empty page in the same process.

Targets (issue 5): a run with 20,000 test predictions and 10 classes < 1 s per rerun; the
comparison view with 1,000 runs in the database < 2 s. Run: `.venv/bin/python bench/evaluate_page.py`.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
N_PREDICTIONS, N_CLASSES, N_RUNS, RERUNS = 20_000, 10, 1_000, 5


def synthetic_predictions(n: int, labels: list[str], rng: np.random.Generator) -> pd.DataFrame:
    """Predictions of a ~70%-accurate classifier: Dirichlet probabilities leaning to the true class."""
    truth = rng.integers(0, len(labels), n)
    alpha = np.ones((n, len(labels)))
    alpha[np.arange(n), truth] += 6.0
    proba = rng.dirichlet(alpha[0]) if n == 0 else np.vstack([rng.dirichlet(a) for a in alpha])
    pred = proba.argmax(axis=1)
    return pd.DataFrame({"text": [f"review {i} about product {i % 97}" for i in range(n)],
                         "label": [labels[i] for i in truth], "pred": [labels[i] for i in pred],
                         "confidence": proba.max(axis=1), "proba": [row.tolist() for row in proba]})


def seed(home: Path) -> tuple[int, int]:
    """One dataset, one big run with artifacts, and N_RUNS light completed runs; returns (big run, dataset)."""
    from core.data.storage import write_dataset
    from core.evaluation.metrics import classification_report, headline
    from core.settings import run_dir
    from db import runs as run_queries
    from db import session_scope
    from db.enums import RunStatus, TaskKind
    from db.models import utcnow

    rng = np.random.default_rng(0)
    labels = [f"class_{i}" for i in range(N_CLASSES)]
    preds = {"test": synthetic_predictions(N_PREDICTIONS, labels, rng),
             "validation": synthetic_predictions(2_000, labels, rng)}
    frame = pd.concat([preds["test"].assign(split="test"), preds["validation"].assign(split="validation"),
                       preds["validation"].assign(split="train")])[["text", "label", "split"]]
    reports = {s: classification_report(f["label"], f["pred"], labels, np.asarray(f["proba"].tolist()))
               for s, f in preds.items()}
    metrics = {**headline(reports["test"]), "split": "test", "labels": labels, "reports": reports,
               "best_epoch": 3, "train_samples_per_s": 900.0, "train_time_s": 120.0, "device": "cpu"}
    with session_scope() as s:
        ds = write_dataset(s, name="bench-10-classes", task=TaskKind.CLASSIFICATION, frame=frame, mapping={}).id
        ids = []
        for i in range(N_RUNS):
            kind = ("tfidf", "lstm", "transformer")[i % 3]
            jitter = {k: v * (0.9 + 0.1 * ((i * 37) % 11) / 10) for k, v in headline(reports["test"]).items()}
            run = run_queries.create_run(s, dataset_id=ds, task=TaskKind.CLASSIFICATION, model_kind=kind,
                                         config={"epochs": 1 + i % 4, "learning_rate": 10 ** -(3 + i % 3),
                                                 "batch_size": 32, "seed": i}, name=f"run {i}", device="cpu")
            run.status, run.progress = RunStatus.COMPLETED, 1.0
            run.started_at = run.finished_at = utcnow()
            run.metrics = {**metrics, **jitter}
            ids.append(run.id)
        for run_id in ids:  # 8 points per run: 8,000 in the table for the comparison queries to skip
            points = [{"name": "train_loss", "value": 2.0 / (k + 1), "step": k, "split": "train"} for k in range(5)]
            points += [{"name": "macro_f1", "value": 0.2 * e, "step": e, "epoch": float(e), "split": "validation"}
                       for e in (1, 2, 3)]
            run_queries.add_metric_points(s, run_id, points)
        big = ids[-1]
        run_queries.add_metric_points(s, big, [{"name": "train_loss", "value": 2.0 / (k + 1), "step": k,
                                                "split": "train"} for k in range(5, 500)])
    folder = run_dir(big)
    (folder / "predictions").mkdir(parents=True, exist_ok=True)
    (folder / "meta.json").write_text(json.dumps({"family": "lstm", "labels": labels, "max_length": 128,
                                                  "model_id": None, "dataset_id": ds}))
    for split, f in preds.items():
        f.to_parquet(folder / "predictions" / f"{split}.parquet", index=False)
    return big, ds


def timed_reruns(at, n: int = RERUNS, before=None) -> list[float]:  # noqa: ANN001
    times = []
    for i in range(n):
        if before:
            before(at, i)
        start = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - start)
        assert not at.exception, at.exception
    return times


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="protolab-bench-eval-"))
    os.environ["PROTOLAB_HOME"] = str(home)
    os.environ["DATABASE_URL"] = f"sqlite:///{home / 'protolab.db'}"
    from streamlit.testing.v1 import AppTest

    from db import init_db

    init_db()
    start = time.perf_counter()
    big, _ = seed(home)
    print(f"seeded {N_RUNS} runs and {N_PREDICTIONS:,} x {N_CLASSES}-class predictions in "
          f"{time.perf_counter() - start:.1f} s")

    empty_script = home / "empty_page.py"
    empty_script.write_text("import streamlit as st\nst.title('Empty')\n")
    empty = AppTest.from_file(str(empty_script), default_timeout=120)
    empty.run()
    empty_s = statistics.median(timed_reruns(empty))

    page = AppTest.from_file(str(ROOT / "pages" / "evaluate.py"), default_timeout=120)
    page.query_params["run"] = str(big)
    start = time.perf_counter()
    page.run()
    first_s = time.perf_counter() - start
    assert not page.exception, page.exception
    assert len(page.get("plotly_chart")) >= 6  # no threshold chart: 10 classes
    rerun_s = statistics.median(timed_reruns(page))
    labels = [f"class_{i}" for i in range(N_CLASSES)]
    filter_s = statistics.median(timed_reruns(
        page, before=lambda at, i: at.selectbox(key="err_true").set_value(labels[i % N_CLASSES])))

    page.segmented_control(key="mode").set_value("Compare runs")
    start = time.perf_counter()
    page.run()
    compare_first_s = time.perf_counter() - start
    assert not page.exception and len(page.dataframe[0].value) == N_RUNS
    compare_s = statistics.median(timed_reruns(page))

    print(f"empty page rerun (AppTest baseline):             {empty_s * 1000:7.1f} ms")
    print(f"one run, {N_PREDICTIONS:,} preds x {N_CLASSES} classes: first render {first_s * 1000:7.1f} ms "
          "(fills the curve cache)")
    print(f"one run rerun (median of {RERUNS}):                 {rerun_s * 1000:7.1f} ms  "
          f"= {rerun_s / empty_s:5.1f}x empty  target < 1000 ms: {'PASS' if rerun_s < 1 else 'FAIL'}")
    print(f"one run, error-table filter change (median):     {filter_s * 1000:7.1f} ms  "
          f"= {filter_s / empty_s:5.1f}x empty  target < 1000 ms: {'PASS' if filter_s < 1 else 'FAIL'}")
    print(f"comparison, {N_RUNS} runs in DB: first             {compare_first_s * 1000:7.1f} ms")
    print(f"comparison rerun (median of {RERUNS}):              {compare_s * 1000:7.1f} ms  "
          f"= {compare_s / empty_s:5.1f}x empty  target < 2000 ms: {'PASS' if compare_s < 2 else 'FAIL'}")


if __name__ == "__main__":
    main()
