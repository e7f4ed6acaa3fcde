"""`protolab export --run ID --format {onnx,onnx-int8,hf,skops} -o DIR`: a run as files another program loads.

Transformer and LSTM runs export to ONNX (fp32 or int8), a Transformer also to a Hugging Face folder; the
TF-IDF baseline exports as its skops file. Multi-label Transformer and LSTM runs export to ONNX with their per-tag
thresholds. Every folder holds a model card (README.md) and labels.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cli import print_json
from core.export.exporting import FORMATS, export_run


def _export(args: argparse.Namespace) -> int:
    if not args.json and sys.stderr.isatty():
        print(f"exporting run {args.run} as {args.format}…", file=sys.stderr, flush=True)
    result = export_run(args.run, args.format, Path(args.output), overwrite=args.force)
    if args.json:
        print_json({"run": result.run_id, "format": result.fmt, "folder": str(result.folder), "files": result.files,
                    "onnx_max_probability_difference": result.max_abs_diff})
        return 0
    check = (f" (checked against PyTorch: largest probability difference {result.max_abs_diff:.1e})"
             if result.max_abs_diff is not None else "")
    print(f"exported run {result.run_id} as {result.fmt} to {result.folder}{check}")
    print(f"  files: {', '.join(result.files)}; how to load it: see {result.folder / 'README.md'}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="export a classifier: ONNX, int8 ONNX, Hugging Face, skops")
    p.add_argument("--run", type=int, required=True, metavar="ID", help="a completed classification or multi-label run")
    p.add_argument("--format", required=True, choices=FORMATS,
                   help="onnx / onnx-int8: Transformer, LSTM (also multi-label) or an image model; hf: "
                        "Transformer; skops: TF-IDF")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="a new (or empty) folder to write")
    p.add_argument("--force", action="store_true", help="replace DIR if it already holds files")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_export)
