"""`protolab runs list|show|cancel|resume|rm`: look after background runs."""

from __future__ import annotations

import argparse
from typing import Any

from core.cli import CliError, print_json
from core.evaluation.weakness import run_weakness
from core.runs.files import RunFiles
from core.runs.jobs import cancel_run, reap_dead_runs, resume_run, set_demo_pin
from core.runs.registry import headline_of
from core.tracking import mlflow_runs
from core.tracking.setting import NOT_CONFIGURED
from db import after_commit, read_scope, session_scope
from db import runs as run_queries
from db.enums import RunStatus
from db.models import Run


def run_summary(run: Run) -> dict[str, Any]:
    """The JSON shape of a run, shared by `runs show --json` and `train --json`."""
    return {
        "run_id": run.id, "name": run.name, "dataset": run.dataset.name if run.dataset else None,
        "dataset_id": run.dataset_id, "task": str(run.task), "model": run.model_kind,
        "status": run.status.value, "progress": round(run.progress or 0.0, 4), "status_text": run.status_text,
        "device": run.device, "config": run.config, "metrics": run.metrics or {}, "error": run.error,
        "events": run.events or [], "created_at": run.created_at, "started_at": run.started_at,
        "finished_at": run.finished_at, "duration_s": run.duration_s, "artifact_path": run.artifact_path,
        "parent_run_id": run.parent_run_id, "headline": _headline(run),
        # Not above its baselines by more than its interval (issue 24): never a default anywhere
        **run_weakness(run).as_dict(), "pinned": bool(run.pinned),
    }


def _headline(run: Run) -> dict[str, Any]:
    """The run's one figure: {"metric": "macro-F1" | "NDCG@K", "key": ..., "value": float or None}."""
    headline, value = headline_of(run.model_kind, run.task, run.metrics)
    return {"metric": headline.label, "key": headline.key, "value": value}


def _list(args: argparse.Namespace) -> int:
    reap_dead_runs()
    with read_scope() as s:
        runs = [run_summary(r) for r in run_queries.list_runs(s, limit=args.limit)]
    if args.json:
        print_json(runs)
        return 0
    if not runs:
        print("no runs yet: start one with `protolab train --dataset NAME --model tfidf`")
        return 0
    print(f"{'id':>4}  {'status':<10} {'model':<12} {'dataset':<24} {'score':>14}  progress")
    for r in runs:
        headline = r["headline"]
        f1_text = f"{headline['metric']} {headline['value']:.3f}" if headline["value"] is not None else "-"
        print(f"{r['run_id']:>4}  {r['status']:<10} {r['model']:<12} {str(r['dataset'])[:24]:<24} "
              f"{f1_text:>14}  {r['progress'] * 100:5.1f}%  {r['status_text'] or ''}"
              + ("  [weak: not above its baselines]" if r["weak"] else ""))
    return 0


def _show(args: argparse.Namespace) -> int:
    reap_dead_runs()
    with read_scope() as s:
        run = run_queries.get_run(s, args.run_id)
        if run is None:
            raise CliError(f"no run with id {args.run_id}")
        summary = run_summary(run)
    if args.json:
        print_json(summary)
        return 0
    for key, value in summary.items():
        print(f"{key:>14}: {value}")
    return 0


def _cancel(args: argparse.Namespace) -> int:
    with session_scope() as s:
        status = cancel_run(s, args.run_id)
    print(f"run {args.run_id}: {'cancelled' if status is RunStatus.CANCELLED else 'cancel requested'}")
    return 0


def _resume(args: argparse.Namespace) -> int:
    with session_scope() as s:
        resume_run(s, args.run_id)
    print(f"run {args.run_id}: queued to resume from its last checkpoint")
    return 0


def _pin(args: argparse.Namespace, pinned: bool) -> int:
    with session_scope() as s:
        set_demo_pin(s, args.run_id, pinned)
    print(f"run {args.run_id}: {'pinned for demos' if pinned else 'no longer pinned for demos'}")
    return 0


def _finished_run(s: Any, run_id: int, until: str) -> Run:
    """The run, or a CliError when there is none or it has not finished (`until`: what the user should do)."""
    run = run_queries.get_run(s, run_id)
    if run is None:
        raise CliError(f"no run with id {run_id}")
    if run.status.is_active:
        raise CliError(f"run {run_id} is {run.status.value}; {until}")
    return run


def _rm(args: argparse.Namespace) -> int:
    with session_scope() as s:
        run = _finished_run(s, args.run_id, "cancel it first")
        run_queries.delete_run(s, run)
        after_commit(s, RunFiles.of(args.run_id).remove)
    print(f"run {args.run_id} deleted")
    return 0


def _export_mlflow(args: argparse.Namespace) -> int:
    if not mlflow_runs.enabled():
        raise CliError(NOT_CONFIGURED)
    if args.run is not None:
        with read_scope() as s:
            _finished_run(s, args.run, "it is logged when it finishes")
    try:
        results = mlflow_runs.export_runs([args.run] if args.run is not None else None)
    except mlflow_runs.TrackingError as exc:
        raise CliError(str(exc)) from exc
    if args.json:
        print_json([{"run_id": r.run_id, "mlflow_run_id": r.mlflow_run_id, "outcome": r.outcome} for r in results])
    else:
        for r in results:
            print(f"run {r.run_id}: {r.outcome}" + (f" (MLflow run {r.mlflow_run_id})" if r.mlflow_run_id else ""))
        if not results:
            print("every finished run is already in MLflow")
    return 1 if any(r.outcome.startswith("failed") for r in results) else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("runs", help="list, inspect, cancel, resume and delete runs")
    sub = p.add_subparsers(dest="runs_command", metavar="ACTION", required=True, parser_class=type(p))
    ls = sub.add_parser("list", help="recent runs, newest first")
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=_list)
    for name, handler, help_text in [("show", _show, "one run in full"), ("cancel", _cancel, "stop a run"),
                                     ("resume", _resume, "resume a failed/cancelled run from its checkpoint"),
                                     ("rm", _rm, "delete a finished run and its artifacts"),
                                     ("pin", lambda a: _pin(a, True), "show this run first in demos and presentation "
                                                                      "mode (one per task; even a weak run)"),
                                     ("unpin", lambda a: _pin(a, False), "stop pinning this run for demos")]:
        sp = sub.add_parser(name, help=help_text)
        sp.add_argument("run_id", type=int, metavar="ID")
        if name == "show":
            sp.add_argument("--json", action="store_true")
        sp.set_defaults(handler=handler)
    mlflow = sub.add_parser("export-mlflow", help="send finished runs to MLflow (MLFLOW_TRACKING_URI, or the URI "
                                                  "saved on Home) that are not there yet: made before it was set, "
                                                  "or while it was down")
    which = mlflow.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", type=int, metavar="ID", help="this run (left alone when it is already there)")
    which.add_argument("--all", action="store_true", help="every finished run not yet in MLflow, oldest first")
    mlflow.add_argument("--json", action="store_true")
    mlflow.set_defaults(handler=_export_mlflow)
