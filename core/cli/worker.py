"""`protolab worker`: the daemon of team mode, for any machine that reaches the database and the data folder."""

from __future__ import annotations

import argparse
import logging

from core.runs.fleet import build_options, run_daemon


def _run(args: argparse.Namespace) -> int:
    return run_daemon(build_options(args.name, args.devices, args.max_parallel))


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "worker", help="run queued runs on this machine's devices until stopped (team mode: several machines)",
        description="Register this machine's devices with the database, claim queued runs that fit and train "
                    "them; SIGTERM or Ctrl-C hands unfinished runs back to the queue (resumed from a checkpoint). "
                    "Every worker must see the app's DATABASE_URL and the same PROTOLAB_HOME (a shared folder).")
    p.add_argument("--devices", help="comma-separated: cuda:0,cuda:1 or cpu (default: every GPU here, else the CPU)")
    p.add_argument("--name", help="this worker's name in the fleet (default: the host name); unique among live ones")
    p.add_argument("--max-parallel", dest="max_parallel", type=int,
                   help="most runs at once (default: one per device listed)")
    p.set_defaults(handler=_run, logging_level=logging.INFO)  # a daemon: what it does is its log
