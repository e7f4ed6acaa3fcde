"""`protolab eval RUN_ID [--split test|val] [--json]`: the stored metrics of a finished run.

Classification runs print headline, per-class metrics and the confusion matrix; recommender runs
their ranking metrics. Nothing is recomputed: the worker stored these when the run completed.
"""

from __future__ import annotations

import argparse
from typing import Any

from core.cli import print_json
from core.evaluation import comparison, predictions
from core.evaluation.uncertainty import intervals_json, run_intervals
from core.metric_keys import CLASSIFICATION_METRICS
from db import read_scope
from db import runs as run_queries


def evaluation_summary(run_id: int, split: str = "test") -> dict[str, Any]:
    """The JSON shape printed by `protolab eval`."""

    with read_scope() as s:
        run = predictions.require_completed(run_queries.get_run(s, run_id), run_id)
        out: dict[str, Any] = {"run_id": run.id, "name": run.name, "model": run.model_kind,
                               "task": str(run.task), "dataset": run.dataset.name}
        if predictions.is_ranking(run):
            m = run.metrics or {}
            by_k = {str(k): v for k, v in comparison.ranking_by_k(run).items()}
            out.update({"metrics": comparison.ranking_headline(run), "k": m.get("k"), "by_k": by_k,
                        "protocol": m.get("protocol"), "intervals": intervals_json(run_intervals(run))})
            return out
        split = predictions.normalise_split(split)
        report = predictions.split_report(run, split)
        intervals = run_intervals(run, split)
    out.update({"split": split, "n": report.get("n"), "labels": report.get("labels", []),
                **{k: report.get(k) for k in CLASSIFICATION_METRICS},
                "majority_rate": report.get("majority_rate"), "per_class": report.get("per_class", {}),
                "confusion_matrix": report.get("confusion_matrix", [])})
    for key in ("macro_roc_auc", "roc_auc", "average_precision"):
        if key in report:
            out[key] = report[key]
    # 95 % bootstrap intervals over the split's rows (issue 24): how far each figure could move
    out["intervals"] = intervals_json(intervals)
    return out


def _print_text(summary: dict[str, Any]) -> None:
    print(f"run {summary['run_id']} ({summary['model']}) on {summary['dataset']}")
    if "metrics" in summary:
        for key, value in summary["metrics"].items():
            print(f"  {key:>14}: {value:.4f}" if isinstance(value, float) else f"  {key:>14}: {value}")
        return
    print(f"  split: {summary['split']} (n={summary['n']})")
    for key in (*CLASSIFICATION_METRICS, "majority_rate"):
        if summary.get(key) is not None:
            print(f"  {key:>18}: {summary[key]:.4f}")
    for key, iv in summary.get("intervals", {}).items():
        print(f"  {'95 % interval':>18}: {key} {iv['ci_low']:.4f} – {iv['ci_high']:.4f} "
              f"(bootstrap over {iv['n']} rows)")
    print(f"  {'class':<20} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>8}")
    for label, m in summary["per_class"].items():
        print(f"  {label[:20]:<20} {m['precision']:>9.4f} {m['recall']:>9.4f} {m['f1']:>9.4f} {m['support']:>8}")
    print("  confusion matrix (rows = true, columns = predicted):")
    for label, row in zip(summary["labels"], summary["confusion_matrix"], strict=False):
        print(f"  {label[:20]:<20} " + " ".join(f"{v:>6}" for v in row))


def _run(args: argparse.Namespace) -> int:
    summary = evaluation_summary(args.run_id, args.split)
    if args.json:
        print_json(summary)
    else:
        _print_text(summary)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="metrics of a finished run (classification or ranking)")
    p.add_argument("run_id", type=int, metavar="RUN_ID")
    p.add_argument("--split", choices=["test", "val", "validation"], default="test")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_run)
