"""`protolab report RUN_ID [RUN_ID ...] -o report.html`: a self-contained HTML report.

One id gives that run's report; several give a comparison. The file opens offline.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core.cli import CliError
from core.export.destination import check_output
from core.export.report import build_report


def _run(args: argparse.Namespace) -> int:
    out = Path(args.output)
    check_output(out)  # before the report is built: never over the database or a run's files
    page = build_report(args.run_ids, split=args.split)
    try:
        out.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {out}: {exc.strerror or exc}") from exc
    print(f"report written to {out} ({len(page) // 1024} KiB)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("report", help="self-contained HTML report of one run or a comparison")
    p.add_argument("run_ids", type=int, nargs="+", metavar="RUN_ID")
    p.add_argument("-o", "--output", default="report.html", help="file to write (default report.html)")
    p.add_argument("--split", choices=["test", "val", "validation"], default="test")
    p.set_defaults(handler=_run)
