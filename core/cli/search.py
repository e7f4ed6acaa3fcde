"""`protolab search`: a hyperparameter search over runs of one model kind (Optuna's TPE, pruned from each epoch's
validation score), optionally waiting for it; and --list / --show / --stop / --resume / --promote of searches."""

from __future__ import annotations

import argparse
import sys
import time

from core.cli import CliError, print_json
from core.search import searches
from db import datasets as dataset_queries
from db import read_scope, session_scope
from db import searches as search_queries
from db.enums import SearchStatus

POLL_S = 1.0


def _run(args: argparse.Namespace) -> int:
    for action in ("stop", "resume", "promote", "show"):
        if getattr(args, action) is not None:
            return _act(action, getattr(args, action), args)
    if args.list:
        return _list(args)
    missing = [flag for flag, value in (("--dataset", args.dataset), ("--model", args.model),
                                        ("--trials", args.trials)) if value is None]
    if missing:
        raise CliError(f"a search needs {', '.join(missing)} (e.g. protolab search --dataset reviews --model tfidf "
                       "--trials 20)")
    with session_scope() as s:
        dataset = dataset_queries.find_dataset(s, args.dataset)
        if dataset is None:
            raise CliError(f"no dataset named {args.dataset!r} (see `protolab datasets list`)")
        search_id = searches.start_search(s, dataset=dataset, model_kind=args.model, trials=args.trials,
                                          minutes=args.minutes, metric=args.metric, space=args.space,
                                          name=args.name, search_settings={"pruner": args.pruner})
    if not args.wait:
        if args.json:
            print_json({"search_id": search_id, "status": SearchStatus.QUEUED.value})
        else:
            print(search_id)
        return 0
    summary = wait_for_search(search_id, quiet=args.json)
    _print(summary, args.json)
    return 0 if summary["status"] == SearchStatus.COMPLETED and summary["best"] is not None else 1


def wait_for_search(search_id: int, *, quiet: bool = False) -> dict:
    """Poll the search until it ends, a status line on stderr; its summary."""
    last = ""
    while True:
        searches.reap_lost_searches()
        with read_scope() as s:
            summary = searches.summary(s, search_id)
        line = f"search {search_id}: {summary['status_text'] or summary['status']}"
        if not quiet and line != last and sys.stderr.isatty():
            sys.stderr.write("\r" + line[:120].ljust(120))
            last = line
        if not SearchStatus(summary["status"]).is_active:
            if last:
                sys.stderr.write("\n")
            return summary
        time.sleep(POLL_S)


def _act(action: str, search_id: int, args: argparse.Namespace) -> int:
    searches.reap_lost_searches()
    with session_scope() as s:
        if action == "stop":
            searches.stop_search(s, search_id)
        elif action == "resume":
            searches.resume_search(s, search_id)
        elif action == "promote":
            run_id = searches.promote_best(s, search_id)
    if action == "promote":
        print_json({"search_id": search_id, "pinned_run_id": run_id}) if args.json else print(
            f"run {run_id} (search {search_id}'s best trial) is now the one the demos and the API serve first")
        return 0
    if action == "resume" and args.wait:
        summary = wait_for_search(search_id, quiet=args.json)
    else:
        with read_scope() as s:
            summary = searches.summary(s, search_id)
    _print(summary, args.json)
    return 0


def _list(args: argparse.Namespace) -> int:
    searches.reap_lost_searches()
    with read_scope() as s:
        rows = [searches.summary(s, x.id) for x in search_queries.list_searches(s)]
    if args.json:
        print_json([{k: r[k] for k in ("search_id", "name", "model", "status", "n_trials")} | {
            "trials_done": len(r["trials"]), "best": r["best"]} for r in rows])
        return 0
    for r in rows:
        best = f" · best {r['best']['value']:.4f} (run {r['best']['run_id']})" if r["best"] else ""
        print(f"{r['search_id']}\t{r['model']}\t{r['status']}\t{len(r['trials'])}/{r['n_trials']} trials{best}")
    return 0


def _print(summary: dict, as_json: bool) -> None:
    if as_json:
        print_json(summary)
        return
    print(f"search {summary['search_id']} {summary['status']} ({summary['metric']}; {'; '.join(summary['space'])})")
    for t in summary["trials"]:
        value = f"{t['value']:.4f}" if t["value"] is not None else "-"
        mark = " ← best" if summary["best"] and t["number"] == summary["best"]["number"] else ""
        print(f"  trial {t['number']}\trun {t['run_id']}\t{t['state']}\t{value}\t{t['params']}{mark}")
    if summary["error"]:
        print(summary["error"], file=sys.stderr)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("search", help="search hyperparameters: trials are ordinary runs (Optuna TPE)",
                              description="A hyperparameter search: each trial is a run queued like `protolab "
                                          "train`, scored on the validation split, pruned from its epochs' scores.")
    p.add_argument("--dataset", help="dataset name or id")
    p.add_argument("--model", help="model kind (see `protolab train --help`)")
    p.add_argument("--trials", type=int, help="how many trials at most")
    p.add_argument("--minutes", type=float, help="no new trial after this many minutes")
    p.add_argument("--metric", help="the validation metric to maximise (default: the task's headline metric, "
                                    "e.g. macro_f1)")
    p.add_argument("--space", help="what to vary, overriding the kind's declared ranges: "
                                   "'learning_rate=log(1e-5,1e-3);epochs=int(1,5);tfidf_ngram_max=choice(1,2)'")
    p.add_argument("--pruner", choices=("median", "halving", "none"), default="median",
                   help="stop weak trials early from their epochs' validation scores (default: median)")
    p.add_argument("--name", help="a name for the search")
    p.add_argument("--wait", action="store_true", help="wait for the search to end and print its trials")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--list", action="store_true", help="list the searches")
    p.add_argument("--show", type=int, metavar="ID", help="print one search's trials and best")
    p.add_argument("--stop", type=int, metavar="ID", help="stop a search (its running trials are cancelled)")
    p.add_argument("--resume", type=int, metavar="ID", help="resume a stopped search, or one whose driver died")
    p.add_argument("--promote", type=int, metavar="ID", help="pin the search's best run for the demos and the API")
    p.set_defaults(handler=_run)
