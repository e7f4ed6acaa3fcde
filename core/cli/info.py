"""`protolab info`: version, compute device, database (password redacted) and counts."""

from __future__ import annotations

import argparse
from typing import Any

from core import __version__
from core.cli import print_json
from core.runs.device import describe_compute
from core.settings import load_settings, redact_url
from db import datasets as dataset_queries
from db import read_scope
from db import runs as run_queries


def collect_info() -> dict[str, Any]:
    settings = load_settings()
    compute = describe_compute()
    with read_scope() as s:
        datasets = dataset_queries.count_datasets(s)
        runs_by_status = run_queries.count_runs(s)
    return {
        "version": __version__,
        "device": {"kind": compute.kind, "summary": compute.summary, "cpu_cores": compute.cpu_cores,
                   "gpus": [{"name": g.name, "memory_gib": round(g.memory_gib, 1)} for g in compute.gpus]},
        "database": {"url": redact_url(settings.database_url),
                     "backend": settings.database_url.split(":", 1)[0].split("+", 1)[0]},
        "home": str(settings.home),
        "counts": {"datasets": datasets, "runs": sum(runs_by_status.values()), "runs_by_status": runs_by_status},
    }


def _run(args: argparse.Namespace) -> int:
    info = collect_info()
    if args.json:
        print_json(info)
        return 0
    print(f"Protolab {info['version']}")
    print(f"  device:   {info['device']['summary']}")
    print(f"  database: {info['database']['url']}")
    print(f"  data:     {info['home']}")
    counts = info["counts"]
    print(f"  datasets: {counts['datasets']}   runs: {counts['runs']}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("info", help="version, device, database and counts")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_run)
