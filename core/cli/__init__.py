"""The `protolab` command line (also `python -m core.cli`).

Each command group lives in its own module in this package and exposes
`register(subparsers)`; modules are discovered, so a new group is a new file.
User mistakes print one line on stderr and exit non-zero, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import pkgutil
import sys
from collections.abc import Callable, Sequence
from typing import Any

from core import __version__, settings
from core.errors import ProtolabError
from core.logs import configure_logging
from core.settings import load_settings, redact_url
from db import init_db

EXIT_USER_ERROR = 1
EXIT_USAGE = 2


class CliError(ProtolabError):
    """A mistake in what the user asked the CLI to do."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, like every other user error
        print(f"protolab: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def print_json(payload: Any) -> None:
    print(json.dumps(payload, indent=2, default=str, ensure_ascii=False))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="protolab", description="Protolab: from a dataset to a demo a stakeholder can click.")
    parser.add_argument("--version", action="version", version=f"protolab {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module.name.startswith("_"):
            continue
        importlib.import_module(f"{__name__}.{module.name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Warnings only, beside the output that is the command's contract; the daemons (worker, serve) set INFO.
    configure_logging(getattr(args, "logging_level", logging.WARNING))
    handler: Callable[[argparse.Namespace], int | None] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        init_db()  # migrations are applied at start-up, so an old database just works
        return int(handler(args) or 0)
    except ProtolabError as exc:
        print(f"protolab: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("protolab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `protolab ... | head` closed the pipe: not an error worth a message
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug, not a user mistake: still one line, with where to look
        from sqlalchemy.exc import OperationalError

        if isinstance(exc, OperationalError):
            url = redact_url(load_settings().database_url)
            reason = (str(exc.orig).strip().splitlines() or ["unknown error"])[0]
            print(f"protolab: error: cannot use the database at {url}: {reason}", file=sys.stderr)
        else:
            print(f"protolab: error: unexpected {type(exc).__name__}: {exc} (set PROTOLAB_DEBUG=1 for a traceback)",
                  file=sys.stderr)
        if settings.DEBUG.get():
            raise
        return EXIT_USER_ERROR
