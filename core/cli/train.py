"""`protolab train`: start a classification or recommender run, optionally wait for it."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from core import settings
from core.cli import CliError, print_json
from core.cli.runs import run_summary
from core.runs import queue, registry
from core.runs.device import describe_compute
from core.runs.jobs import reap_dead_runs
from core.runs.queue import LOST_POLICY_KEY
from core.training import plan_training, start_training
from db import datasets as dataset_queries
from db import read_scope, session_scope
from db import runs as run_queries
from db import workers as worker_queries
from db.enums import RunStatus

# The option whose flag also takes "auto" (kinds with auto_batch pick it from a GPU memory probe).
BATCH_SIZE = "batch_size"


def _run(args: argparse.Namespace) -> int:
    kind = registry.get_kind(args.model)
    # Every option flag the user gave goes to the kind's build_config, which refuses those that do not apply.
    options = {key: getattr(args, key) for key in registry.options_across_kinds(cli=True)
               if getattr(args, key, None) is not None}
    options.update(_auto_batch_options(kind.name, options, quiet=args.json))
    config = kind.make_config(options)
    if args.nodes is not None:
        config = with_nodes(config, args.nodes, kind.name)
    if args.if_worker_lost == "fail":
        config = {**config, LOST_POLICY_KEY: "fail"}
    with session_scope() as s:
        dataset = dataset_queries.find_dataset(s, args.dataset)
        if dataset is None:
            raise CliError(f"no dataset named {args.dataset!r} (see `protolab datasets list`)")
        plan = plan_training(s, dataset=dataset, model_kind=kind.name, config=config)
        if plan is not None:  # the estimate is over --minutes: train what fits, and say what was chosen
            config = plan.apply(config)
            if not args.json:
                print(f"protolab: {plan.message}", file=sys.stderr)
        run_id = start_training(s, dataset=dataset, model_kind=kind.name, config=config, name=args.name, plan=plan)
    _warn_if_no_worker_fits(config)
    summary = queued_or_finished(run_id, args, events=[plan.event()] if plan else [])
    if summary is None:
        return 0
    if args.json:
        print_json(summary)
    else:
        print(f"run {run_id} {summary['status']}")
        for event in summary["events"]:  # what the run decided on its own: a time budget reached, a batch size
            if event.get("message"):
                print(f"  note: {event['message']}")
        for key, value in summary["metrics"].items():
            if isinstance(value, (int, float)):
                print(f"  {key}: {value:.4f}")
        if summary["error"]:
            print(summary["error"], file=sys.stderr)
    return 0 if summary["status"] == RunStatus.COMPLETED else 1


def with_nodes(config: dict[str, Any], nodes: int, kind_name: str) -> dict[str, Any]:
    """The config of a run spread over `nodes` worker machines (DDP through torchrun --nnodes)."""
    if nodes < 1:
        raise CliError(f"--nodes must be at least 1 (got {nodes})")
    if nodes == 1:
        return config
    if not registry.get_kind(kind_name).multi_gpu:
        raise CliError(f"model {kind_name!r} does not train with DistributedDataParallel, so it cannot use --nodes")
    gpus = int(config.get("gpus") or 1)
    if gpus < nodes or gpus % nodes:
        raise CliError(f"--gpus {gpus} cannot be shared evenly by --nodes {nodes}: --gpus counts the whole run "
                       f"(e.g. --nodes {nodes} --gpus {2 * nodes} for 2 per machine)")
    return {**config, "nodes": nodes}


def _warn_if_no_worker_fits(config: dict[str, Any]) -> None:
    """With a fleet, say at once when no live worker can ever take this run, instead of waiting silently."""

    if queue.dispatch_mode() != "queue":
        return
    with read_scope() as s:
        reason = queue.unservable_reason(config, worker_queries.live_workers(s, settings.WORKER_STALE_AFTER_S.get()))
    if reason:
        print(f"protolab: warning: the run waits in the queue: {reason}", file=sys.stderr)


def _auto_batch_options(kind_name: str, options: dict[str, Any], *, quiet: bool) -> dict[str, Any]:
    """A kind with auto batch (Transformer, LSTM) without --batch-size N (or with `auto`): on a GPU the run picks it
    from a memory probe."""
    kind = registry.get_kind(kind_name)
    if options.get(BATCH_SIZE) == "auto":
        if not kind.auto_batch:
            raise CliError(f"--batch-size auto applies to {' and '.join(_auto_batch_kinds())} only; give a number")
        del options[BATCH_SIZE]
    elif BATCH_SIZE in options or not kind.auto_batch:
        return {}

    if not quiet and describe_compute().kind == "cuda" and options.get("device", "auto") != "cpu":
        print("batch size: chosen from a GPU memory probe when the run starts (--batch-size N fixes it)",
              file=sys.stderr)
    return {"auto_batch_size": True}


def _auto_batch_kinds() -> list[str]:
    return [k.name for k in registry.all_kinds() if k.auto_batch]


def _batch_size(value: str) -> int | str:
    if value.strip().lower() == "auto":
        return "auto"
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--batch-size must be a whole number or auto, got {value!r}") from None


def queued_or_finished(run_id: int, args: argparse.Namespace, events: list[dict[str, Any]] | None = None
                       ) -> dict[str, Any] | None:
    """Without --wait: print the queued run's id (or its JSON, with `events` decided before it started) and return
    None; with it, the finished summary (the run's events included)."""
    if not args.wait:
        if args.json:
            print_json({"run_id": run_id, "status": RunStatus.QUEUED.value, **({"events": events} if events else {})})
        else:
            print(run_id)
        return None
    return wait_for_run(run_id, quiet=args.json)


def wait_for_run(run_id: int, *, quiet: bool = False, poll_s: float = 0.5) -> dict[str, Any]:
    """Poll the run until it finishes, drawing a progress bar on stderr; returns its summary."""

    last_reap = 0.0
    while True:
        if time.monotonic() - last_reap > 5:
            reap_dead_runs()
            last_reap = time.monotonic()
        with read_scope() as s:
            run = run_queries.get_run(s, run_id)
            summary = run_summary(run)
        _draw_progress(summary, quiet)
        if not RunStatus(summary["status"]).is_active:
            if not quiet and sys.stderr.isatty():
                sys.stderr.write("\n")
            return summary
        time.sleep(poll_s)


def _draw_progress(summary: dict[str, Any], quiet: bool) -> None:
    width = 30
    filled = int(width * summary["progress"])
    line = f"[{'#' * filled}{'.' * (width - filled)}] {summary['progress'] * 100:5.1f}% {summary['status_text'] or ''}"
    if sys.stderr.isatty():
        sys.stderr.write("\r" + line[:120].ljust(120))
    elif not quiet or not RunStatus(summary["status"]).is_active:
        return
    sys.stderr.flush()


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a classifier or a recommender as a background run")
    p.add_argument("--dataset", required=True, help="dataset name or id")
    p.add_argument("--model", required=True, choices=registry.kind_names(),
                   help="; ".join(f"{k.name}: {k.help}" for k in registry.all_kinds()))
    _add_option_flags(p)
    p.add_argument("--nodes", type=int, help="spread the run over N worker machines (team mode; --gpus counts all "
                                             "of them, e.g. --nodes 2 --gpus 4 for 2 GPUs on each)")
    p.add_argument("--if-worker-lost", dest="if_worker_lost", choices=("requeue", "fail"), default="requeue",
                   help="team mode: when the worker running it is lost, requeue the run (default: it resumes from "
                        "its last checkpoint, or starts over without one) or fail it when it has no checkpoint")
    p.add_argument("--name", help="a name for the run")
    p.add_argument("--wait", action="store_true", help="wait for the run, with a progress bar on stderr")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(handler=_run)


def _add_option_flags(p: argparse.ArgumentParser) -> None:
    """One flag per option of the kinds a user can pick (their registry entries' schemas), each passed on only when
    given; its help names the kinds that take it."""
    for name, (option, kinds) in registry.options_across_kinds(cli=True).items():
        help_text = f"{option.help} ({', '.join(kinds)})" if option.help else ", ".join(kinds)
        if name == BATCH_SIZE:
            p.add_argument(option.cli_flag, dest=name, type=_batch_size,
                           help=f"{help_text}; or auto ({', '.join(_auto_batch_kinds())}: the default; on a GPU the "
                                "run picks the largest batch that fits from a memory probe and scales the learning "
                                "rate; else 32)")
        elif option.choices and not option.open_choices:
            p.add_argument(option.cli_flag, dest=name, choices=option.choices, help=help_text)
        elif option.choices:
            p.add_argument(option.cli_flag, dest=name, type=option.type,
                           help=f"{help_text}; {', '.join(option.choices)} or another value it accepts")
        else:
            p.add_argument(option.cli_flag, dest=name, type=option.type, help=help_text)
