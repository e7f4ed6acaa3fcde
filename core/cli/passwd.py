"""`protolab passwd`: make a password hash for PROTOLAB_PASSWORD_HASH."""

from __future__ import annotations

import argparse
import getpass
import sys

from core.auth import hash_password
from core.cli import CliError


def _run(args: argparse.Namespace) -> int:
    password = sys.stdin.readline().rstrip("\n") if args.stdin else getpass.getpass("New password: ")
    if len(password) < 8:
        raise CliError("the password must have at least 8 characters")
    print(hash_password(password))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("passwd", help="print a password hash for PROTOLAB_PASSWORD_HASH")
    p.add_argument("--stdin", action="store_true", help="read the password from standard input")
    p.set_defaults(handler=_run)
