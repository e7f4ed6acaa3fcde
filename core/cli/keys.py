"""`protolab keys create --name NAME`, `protolab keys list`, `protolab keys revoke NAME`: keys for the API.

The full key is printed once, at creation; only a salted hash of it is stored.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from core.api.keys import KeyInfo, create_key, list_keys, parse_run_ids, revoke_key
from core.cli import CliError, print_json
from db import read_scope, session_scope


def _create(args: argparse.Namespace) -> int:
    runs = parse_run_ids(args.runs) if args.runs is not None else None
    with session_scope() as s:
        info, key = create_key(s, args.name, run_ids=runs, read_only=args.read_only)
    if args.json:
        print_json({"name": info.name, "prefix": info.prefix, "key": key, "created_at": info.created_at,
                    **_scope_fields(info)})
        return 0
    print(key)  # alone on stdout, so a script can capture it; the advice goes to stderr
    print(f"API key {info.name!r} created ({info.scope}). Copy it now: it is not shown again. Call the API "
          f"with 'Authorization: Bearer {key[:16]}...'", file=sys.stderr)
    return 0


def _list(args: argparse.Namespace) -> int:
    with read_scope() as s:
        keys = list_keys(s, include_revoked=args.all)
    if args.json:
        print_json([{"name": k.name, "prefix": k.prefix, "created_at": k.created_at, "revoked_at": k.revoked_at,
                     "active": k.active, **_scope_fields(k)} for k in keys])
        return 0
    if not keys:
        print("no API keys yet: create one with `protolab keys create --name NAME`", file=sys.stderr)
        return 0
    print(f"{'NAME':<24} {'KEY STARTS':<20} {'CREATED':<17} {'STATUS':<24} SCOPE")
    for k in keys:
        status = "active" if k.active else f"revoked {k.revoked_at:%Y-%m-%d %H:%M}"
        print(f"{k.name:<24} {'pl_' + k.prefix + '_…':<20} {k.created_at:%Y-%m-%d %H:%M} {status:<24} {k.scope}")
    return 0


def _scope_fields(info: KeyInfo) -> dict[str, Any]:
    return {"runs": list(info.run_ids) if info.run_ids is not None else None, "read_only": info.read_only}


def _revoke(args: argparse.Namespace) -> int:
    with session_scope() as s:
        info = revoke_key(s, args.name)
    print(f"revoked API key {info.name!r} (pl_{info.prefix}_…); a running server refuses it within seconds")
    return 0


def _keys(args: argparse.Namespace) -> int:
    raise CliError("say what to do: protolab keys create --name NAME | keys list | keys revoke NAME")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("keys", help="API keys for `protolab serve`: create, list, revoke")
    p.set_defaults(handler=_keys)
    sub = p.add_subparsers(dest="keys_command", metavar="ACTION", parser_class=type(p))
    c = sub.add_parser("create", help="create a key and print it (once)")
    c.add_argument("--name", required=True, help="who or what uses the key, e.g. crm-app")
    c.add_argument("--runs", metavar="IDS", help="only these runs, e.g. --runs 3,5 (default: every run); "
                                                "others are refused with 403")
    c.add_argument("--read-only", action="store_true", help="may list runs (GET /v1/runs) but not predict "
                                                            "or recommend")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(handler=_create)
    ls = sub.add_parser("list", help="list keys (never their secrets)")
    ls.add_argument("--all", action="store_true", help="include revoked keys")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(handler=_list)
    r = sub.add_parser("revoke", help="revoke a key by name")
    r.add_argument("name", metavar="NAME")
    r.set_defaults(handler=_revoke)
