"""`protolab serve [--run ID ...] [--host 127.0.0.1] [--port 8000] [--no-auth] [--runtime torch|onnx]`.

Serves completed runs over HTTP (FastAPI + uvicorn): models load once before the server listens, then stay
warm. `--runtime onnx` serves Transformer and LSTM runs with onnxruntime, from the ONNX export kept in each
run's folder (made on first use, as `protolab export --format onnx` would).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging

from core.api.app import create_app
from core.api.keys import list_keys
from core.api.limits import Limits, ServerLimits
from core.api.served import ServedModels
from core.api.server import serve
from core.cli import CliError
from db import read_scope

log = logging.getLogger(__name__)

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    """Whether `host` only listens on this machine (127.0.0.0/8, ::1 or localhost); 0.0.0.0 is not."""
    host = host.strip().strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _serve(args: argparse.Namespace) -> int:
    if args.no_auth and not is_loopback(args.host):
        raise CliError(f"--no-auth is only allowed on a loopback address (127.0.0.1, ::1, localhost), not "
                       f"{args.host!r}: anyone who can reach it could call the API. Create a key with "
                       "`protolab keys create --name NAME` instead")
    if not 0 < args.port < 65536:
        raise CliError(f"--port {args.port} is not a TCP port (1-65535)")
    models = ServedModels(args.run, runtime=args.runtime)
    log.info("loading %s (%s runtime)…", "runs " + ", ".join(map(str, args.run)) if args.run else "every completed run",
             args.runtime)
    runs = models.load()
    for run in runs:
        state = f"ready ({run.runtime})" if run.ready else f"UNAVAILABLE: {run.error}"
        (log.info if run.ready else log.warning)("run %4d  %-14s %-12s %s", run.run_id, str(run.task),
                                                 run.model_kind, state)
    if not runs:
        log.info("no completed runs yet; runs that complete while the server is up are served on first request")
    if not args.no_auth:
        with read_scope() as s:
            if not list_keys(s, include_revoked=False):
                log.warning("no API key exists yet: create one with `protolab keys create --name NAME` (every /v1 "
                            "call needs 'Authorization: Bearer KEY')")
    for flag in ("header_timeout", "body_timeout", "max_connections"):
        if getattr(args, flag) <= 0:
            raise CliError(f"--{flag.replace('_', '-')} must be above 0 (got {getattr(args, flag)})")
    app = create_app(models, require_key=not args.no_auth, limits=Limits(body_timeout_s=args.body_timeout))
    shown = f"[{args.host}]" if ":" in args.host else args.host
    log.info("serving on http://%s:%d (docs: /docs)%s", shown, args.port, " WITHOUT auth" if args.no_auth else "")
    limits = ServerLimits(header_timeout_s=args.header_timeout, max_connections=args.max_connections,
                          max_concurrency=max(args.max_connections, ServerLimits.max_concurrency))
    serve(app, host=args.host, port=args.port, limits=limits, log_level=args.log_level,
          access_log=args.log_level == "debug")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="serve completed runs over HTTP: predict, recommend (FastAPI)")
    p.add_argument("--run", type=int, action="extend", nargs="+", metavar="ID",
                   help="completed runs to serve (--run 3 5, or --run 3 --run 5; default: every completed run)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000)")
    p.add_argument("--no-auth", action="store_true", help="no API key needed (only on a loopback --host)")
    p.add_argument("--runtime", choices=("torch", "onnx"), default="torch",
                   help="what runs Transformer and LSTM models: PyTorch, or onnxruntime on an ONNX export kept in "
                        "the run's folder (exported on first use)")
    p.add_argument("--header-timeout", type=float, default=ServerLimits.header_timeout_s, metavar="S",
                   help="close a connection whose request headers take longer (default: %(default)g s)")
    p.add_argument("--body-timeout", type=float, default=Limits.body_timeout_s, metavar="S",
                   help="answer 408 to a request whose body takes longer (default: %(default)g s)")
    p.add_argument("--max-connections", type=int, default=ServerLimits.max_connections, metavar="N",
                   help="open connections at once; more are answered 503 (default: %(default)d)")
    p.add_argument("--log-level", default="warning", choices=("debug", "info", "warning", "error"),
                   help=argparse.SUPPRESS)
    p.set_defaults(handler=_serve, logging_level=logging.INFO)  # a daemon: what it does is its log
