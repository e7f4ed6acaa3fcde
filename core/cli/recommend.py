"""`protolab recommend`: top-K items for a known user (--user) or a new visitor (--like ITEM ...) from a run."""

from __future__ import annotations

import argparse
from typing import Any

from core.cli import CliError, print_json
from core.recs.serving import load_recommender
from core.runs.jobs import completed_run
from db import read_scope
from db.enums import TaskKind


def _run(args: argparse.Namespace) -> int:
    if bool(args.user) == bool(args.like):
        raise CliError("give either --user U or one or more --like ITEM")
    if args.k < 1:
        raise CliError(f"-k must be at least 1, got {args.k}")
    with read_scope() as s:
        completed_run(s, args.run, TaskKind.INTERACTIONS, "recommend")
    rec = load_recommender(args.run)
    items = rec.recommend(args.user, args.k) if args.user else rec.recommend_for_likes(args.like, args.k)
    rows: list[dict[str, Any]] = [
        {"rank": n, "item": item, "title": rec.title(item), "score": round(score, 6), "because_of": reason,
         "because_of_title": rec.title(reason) if reason else None}
        for n, (item, score, reason) in enumerate(items, start=1)]
    if args.json:
        print_json({"run_id": args.run, "model": rec.kind, "user": args.user, "likes": args.like or [],
                    "k": args.k, "recommendations": rows})
        return 0
    for row in rows:
        because = f"  (because of {row['because_of_title']})" if row["because_of"] else ""
        print(f"{row['rank']:>3}. {row['title']} [{row['item']}]  {row['score']:.4f}{because}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("recommend", help="recommend items from a completed recommender run")
    p.add_argument("--run", required=True, type=int, help="id of a completed recommender run")
    p.add_argument("--user", help="a user id from the run's dataset")
    p.add_argument("--like", action="append", metavar="ITEM", help="an item a new visitor likes (repeatable)")
    p.add_argument("-k", "--k", type=int, default=10, help="how many items (default 10)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(handler=_run)
