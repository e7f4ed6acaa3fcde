"""`protolab datasets add|list|show|rm|demo|audit|version|label-curve`: import, inspect, audit and delete datasets.

Bad input prints one line on stderr, exits non-zero and stores nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from core.cli import CliError, print_json
from core.cli.train import queued_or_finished
from core.data import datasets as ds
from core.data.classification import prepare_classification
from core.data.datasets import delete_dataset, runs_to_delete, summarize
from core.data.demo import load_demo_dataset
from core.data.interactions import prepare_interactions
from core.data.mapping import guess_catalogue, guess_classification, guess_interactions
from core.data.splits import parse_fractions
from core.data.storage import remove_orphans
from core.data.types import (
    CatalogueMapping,
    ClassificationMapping,
    CleanOptions,
    DuplicateContent,
    InteractionsMapping,
    SplitConfig,
)
from core.data.unlabelled import prepare_unlabelled
from core.data.versions import create_dataset_version, pending_test_marks, test_set_name
from core.health.audit import CERTAINTY, AuditConfig
from core.health.confidence import MODES, PREFILL_PRECISION
from core.health.duplicates import SIMILARITY
from core.health.jobs import audit_dataset, automatic_changes
from core.labelling.curve_job import start_label_curve
from core.labelling.label_curve import aggregate, read_curve
from core.tasks import all_tasks, get_task
from db import audits as audit_queries
from db import datasets as dataset_queries
from db import read_scope, session_scope
from db.enums import RunStatus


def _add(args: argparse.Namespace) -> int:
    with read_scope() as s:  # the CLI has no start-up of its own: an import is when leftovers matter
        remove_orphans(s)
    task = get_task(args.task)
    if task.cli_prepare is None:
        raise CliError(f"{task.label} datasets are added on the Datasets page, not with `protolab datasets add`")
    table = task.part("reader")(args.path) if task.reader else ds.read_table(args.path)
    split_kw: dict[str, Any] = {"seed": args.seed}
    if args.split:
        split_kw["fractions"] = parse_fractions(args.split)
    prepared = task.part("cli_prepare")(args, table, split_kw)
    try:
        with session_scope() as s:
            name = args.name or name_from_path(args.path)
            summary = ds.summarize(ds.import_dataset(s, prepared, name=name, allow_duplicate=args.allow_duplicate))
    except DuplicateContent as exc:
        raise CliError(f"{exc}; use it, or add --allow-duplicate to store a copy") from exc
    if args.json:
        print_json(summary)
    elif args.unlabelled:
        unlabelled = task.holds.replace("labelled", "unlabelled")  # "unlabelled texts", "unlabelled images"
        print(f"dataset '{summary['name']}' (id {summary['id']}): {summary['rows']} {unlabelled}; "
              "define its labels and label them on the Label page")
    else:
        print(f"dataset '{summary['name']}' (id {summary['id']}): {summary['rows']} rows; "
              + ", ".join(f"{count:,} {split}" for split, count in summary["splits"].items()))
    for line in summary["warnings"] if not args.json else []:
        print(f"  note: {line}")
    return 0


def prepare_classification_args(args: argparse.Namespace, table: Any, split_kw: dict[str, Any]) -> Any:
    """`datasets add --task classification`: --text-col/--label-col (or the guessed ones), or --unlabelled."""
    if args.unlabelled:
        return _prepare_unlabelled(args, table)
    guess = guess_classification(table.frame)
    mapping = ClassificationMapping(text=args.text_col or guess.text, label=args.label_col or guess.label)
    options = CleanOptions(drop_duplicates=args.drop_duplicates, drop_rare_classes=args.drop_rare_classes)
    return prepare_classification(table, mapping, SplitConfig(**split_kw), options)


def prepare_interactions_args(args: argparse.Namespace, table: Any, split_kw: dict[str, Any]) -> Any:
    """`datasets add --task interactions`: user/item/rating/timestamp columns, an optional --items catalogue."""
    if args.unlabelled:
        raise CliError("--unlabelled applies to --task classification only")
    guess = guess_interactions(table.frame)
    mapping = InteractionsMapping(
        user=args.user_col or guess.user, item=args.item_col or guess.item,
        rating=_optional(args.rating_col, guess.rating), timestamp=_optional(args.timestamp_col, guess.timestamp))
    items = ds.read_table(args.items) if args.items else None
    items_mapping = None
    if items is not None:
        g = guess_catalogue(items.frame, id_hint=mapping.item)
        items_mapping = CatalogueMapping(item=args.item_id_col or g.item, title=args.title_col or g.title,
                                         text=g.text, genres=g.genres)
    method = "time" if args.split_method == "time" else "random"
    return prepare_interactions(table, mapping, SplitConfig(method=method, **split_kw), items, items_mapping)


def _prepare_unlabelled(args: argparse.Namespace, table: Any) -> Any:
    """Texts only, to be labelled on the Label page: --text-col (or the guessed text column), no label column."""
    if args.label_col:
        raise CliError("--unlabelled takes no --label-col: the labels are given on the Label page")
    return prepare_unlabelled(table, args.text_col or guess_classification(table.frame).text)


def _optional(given: str | None, guessed: str | None) -> str | None:
    # "-" or "none" switches a guessed optional column off.
    if given is not None:
        return None if given.lower() in ("-", "none", "") else given
    return guessed


def _list(args: argparse.Namespace) -> int:
    with read_scope() as s:
        rows = [summarize(d) for d in dataset_queries.list_datasets(s)]
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no datasets yet: add one with `protolab datasets add PATH --name NAME --task classification` "
              "or `protolab datasets demo product-reviews`")
        return 0
    print(f"{'id':>4}  {'name':<28} {'task':<15} {'rows':>9}  splits")
    for r in rows:
        splits = " ".join(f"{k}={v}" for k, v in sorted(r["splits"].items()))
        print(f"{r['id']:>4}  {r['name'][:28]:<28} {r['task']:<15} {r['rows']:>9}  {splits}")
    return 0


def _find(s: Any, name: str) -> Any:
    dataset = dataset_queries.find_dataset(s, name)
    if dataset is None:
        raise CliError(f"no dataset named {name!r} (see `protolab datasets list`)")
    return dataset


def _show(args: argparse.Namespace) -> int:
    with read_scope() as s:
        summary = summarize(_find(s, args.name))
    if args.json:
        print_json(summary)
        return 0
    for key, value in summary.items():
        if key not in ("stats", "warnings"):
            print(f"{key:>16}: {value}")
    for line in summary["warnings"]:
        print(f"{'warning':>16}: {line}")
    return 0


def _rm(args: argparse.Namespace) -> int:
    with session_scope() as s:  # one transaction: the runs we warn about are the runs we delete
        dataset = _find(s, args.name)
        name, runs = dataset.name, runs_to_delete(s, dataset.id)
        if runs and not args.yes:
            raise CliError(f"dataset '{name}' is used by runs {', '.join(map(str, runs))}, which would be deleted "
                           "too; add --yes to delete them all")
        delete_dataset(s, dataset.id)
    print(f"dataset '{name}' deleted" + (f" with runs {', '.join(map(str, runs))}" if runs else ""))
    return 0


def _demo(args: argparse.Namespace) -> int:
    summary = summarize(load_demo_dataset(args.demo))
    if args.json:
        print_json(summary)
    else:
        print(f"dataset '{summary['name']}' (id {summary['id']}): {summary['rows']} rows; "
              + ", ".join(f"{count:,} {split}" for split, count in summary["splits"].items()))
    return 0


def _issue_row(rec: dict[str, Any]) -> dict[str, Any]:
    # A tag-set audit also says, per row, the tags likely missing and likely wrong (core.multilabel.audit).
    return {k: rec[k] for k in ("row", "split", "text", "label", "suggested", "missing", "wrong", "score")
            if k in rec}


def _audit(args: argparse.Namespace) -> int:
    with read_scope() as s:
        dataset = _find(s, args.name)
        name, dataset_id = dataset.name, dataset.id
    cfg = AuditConfig(source=args.source, embeddings=not args.no_embeddings, similarity=args.similarity,
                      certainty=args.certainty)
    result = audit_dataset(dataset_id, cfg)
    findings = result.findings()
    likely = [rec for rec in findings["label_issues"] if rec["likely"]]
    possible = [rec for rec in findings["label_issues"] if not rec["likely"]]
    limit = args.limit or None
    out = {"dataset": name, "dataset_id": dataset_id, "audit_id": result.audit_id, **result.summary,
           "rows": [_issue_row(rec) for rec in likely[:limit]],
           "possible_rows": [_issue_row(rec) for rec in possible[:limit]] if args.all else [],
           "duplicates": findings["duplicates"][:limit],
           "small_classes_detail": result.small_classes, "zero_label": result.zero_label}
    if args.json:
        print_json(out)
        return 0
    s = result.summary
    print(f"dataset '{name}': {s['label_issues']} likely label errors ({s['possible_label_issues']} more possible; "
          f"{s['rows_checked_for_label_issues']} rows checked, source {s['source']}), {s['near_duplicates']} "
          f"near-duplicates, {s['leakage']} leaking across splits, {s['empty']} empty-ish, {s['long']} very long, "
          f"{s['other_script']} in another script, "
          f"{s['small_classes']} classes too small ({s['seconds']:.1f} s)")
    for rec in out["rows"][:20]:
        tags = "".join(f" {sign}{t}" for sign, key in (("+", "missing"), ("-", "wrong")) for t in rec.get(key, []))
        suggested = rec["suggested"] if isinstance(rec["suggested"], str) else json.dumps(rec["suggested"])
        print(f"  row {rec['row']:>6} [{rec['split']}] {rec['label']} -> {suggested}{tags} "
              f"(score {rec['score']:.3f}): {rec['text'][:80]}")
    if result.zero_label:
        test = (result.zero_label.get("reports") or {}).get("test")
        if test:
            print(f"zero-label baseline (label names only): test macro-F1 {test['macro_f1']:.3f}")
    return 0


def _version(args: argparse.Namespace) -> int:
    if not (args.relabel_suggested or args.exclude_duplicates or args.exclude_possible):
        raise CliError("say what the new version changes: --relabel-suggested, --exclude-duplicates and/or "
                       "--exclude-possible")
    with session_scope() as s:
        dataset = _find(s, args.name)
        audit = audit_queries.latest_audit(s, dataset.id)
        if audit is None:
            raise CliError(f"dataset '{dataset.name}' has not been audited yet: run "
                           f"`protolab datasets audit {dataset.name}` first")
        changes = automatic_changes(audit, relabel_suggested=args.relabel_suggested,
                                    exclude_duplicates=args.exclude_duplicates,
                                    exclude_possible=args.exclude_possible, min_score=args.min_score)
        if not changes:
            raise CliError(f"the latest audit of '{dataset.name}' found nothing to change")
        if args.output and _exists(s, args.output):
            raise CliError(f"a dataset named {args.output!r} already exists; pick another -o NAME")
        version = create_dataset_version(s, dataset.id, changes, name=args.output, new_test_set=args.new_test_set)
        summary = {"id": version.id, "name": version.name, "parent": dataset.name, "rows": version.row_count,
                   "relabelled": version.changes["relabelled"], "excluded": version.changes["excluded"],
                   "audit_id": audit.id, "test_set": test_set_name(version),
                   "test_marks": len(pending_test_marks(version))}
    if args.json:
        print_json(summary)
    else:
        print(f"dataset '{summary['name']}' (id {summary['id']}) made from '{summary['parent']}': "
              f"{summary['relabelled']} rows relabelled, {summary['excluded']} excluded, {summary['rows']} rows")
        if summary["test_marks"]:
            print(f"{summary['test_marks']} changes to test rows are only marked: the test set "
                  f"({summary['test_set']}) stays as uploaded; --new-test-set applies them")
    return 0


def _label_curve(args: argparse.Namespace) -> int:
    """Queue the label curve of a dataset (a background run); with --wait, print the curve and its reading."""

    options: dict[str, Any] = {"seeds": args.seeds, "device": args.device}
    if args.models:
        options["models"] = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.sizes:
        try:
            options["sizes"] = [int(k) for k in args.sizes.split(",") if k.strip()]
        except ValueError:
            raise CliError(f"--sizes takes whole numbers separated by commas, got {args.sizes!r}") from None
    with session_scope() as s:
        run_id = start_label_curve(s, _find(s, args.name).id, options)
    summary = queued_or_finished(run_id, args)
    if summary is None:
        return 0
    curve = summary["metrics"] if summary["status"] == RunStatus.COMPLETED else {}
    out = {"run_id": run_id, "status": summary["status"], "error": summary["error"], **curve,
           "curve": aggregate(curve.get("points") or []), "reading": read_curve(curve) if curve else None}
    if args.json:
        print_json(out)
    else:
        print(f"label curve run {run_id} {summary['status']}")
        for row in out["curve"]:
            print(f"  {row['label']:<12} {row['size']:>3} a class: macro-F1 {row['mean']:.3f} ± {row['std']:.3f}")
        if out["reading"]:
            print(out["reading"])
        if summary["error"]:
            print(summary["error"], file=sys.stderr)
    return 0 if summary["status"] == RunStatus.COMPLETED else 1


def _exists(s: Any, name: str) -> bool:
    return dataset_queries.get_dataset_by_name(s, name) is not None


def name_from_path(path: str) -> str:
    """'exports/reviews.csv.gz' -> 'reviews': the name a dataset gets when the command gives none."""
    name = Path(path).name
    for suffix in (".gz", ".zip"):
        name = name.removesuffix(suffix)
    return Path(name).stem or name


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("datasets", help="import, list, inspect and delete datasets")
    sub = p.add_subparsers(dest="datasets_command", metavar="ACTION", required=True, parser_class=type(p))
    add = sub.add_parser("add", help="import a CSV/TSV/JSON/JSONL/Parquet/XLSX file (optionally .gz/.zip), or a ZIP "
                         "of images (--task images)")
    add.add_argument("path", metavar="PATH")
    add.add_argument("--name", help="the dataset's name (default: the file's name without its extensions)")
    add.add_argument("--task", required=True, choices=[str(t.name) for t in all_tasks()])
    add.add_argument("--text-col")
    add.add_argument("--label-col")
    add.add_argument("--image-col", help="images: the column of paths inside the ZIP (a table of image paths)")
    add.add_argument("--images", metavar="PATH", help="images: the ZIP of the images a CSV/Parquet PATH names")
    add.add_argument("--skip-bad-images", action="store_true",
                     help="images: leave out files that are not readable images (listed) instead of refusing")
    add.add_argument("--user-col")
    add.add_argument("--item-col")
    add.add_argument("--rating-col", help="'-' for none (otherwise guessed)")
    add.add_argument("--timestamp-col", help="'-' for none (otherwise guessed)")
    add.add_argument("--items", metavar="PATH", help="item catalogue file (interactions)")
    add.add_argument("--item-id-col")
    add.add_argument("--title-col")
    add.add_argument("--split", help="train,validation,test fractions (default 0.8,0.1,0.1)")
    add.add_argument("--split-method", choices=("random", "time"), default="random",
                     help="interactions: per-user random or leave-last-out by time")
    add.add_argument("--seed", type=int, default=42)
    add.add_argument("--drop-duplicates", action="store_true", help="drop exact duplicate texts (or images)")
    add.add_argument("--drop-rare-classes", action="store_true", help="drop classes too small for every split")
    add.add_argument("--labels-col", help="multilabel: the column of tag sets (tags separated by ; | or , or a JSON "
                                          "list), or COL1,COL2,... of 0/1 columns, one per tag (default: guessed)")
    add.add_argument("--tag-format", choices=("delimited", "json", "one-hot"),
                     help="multilabel: how the tags are written (default: guessed)")
    add.add_argument("--delimiter", help="multilabel: what separates the tags of a row (default: guessed)")
    add.add_argument("--merge-similar-tags", action="store_true",
                     help="multilabel: merge tags that differ only by case or spaces")
    add.add_argument("--drop-rare-tags", action="store_true", help="multilabel: remove tags too rare for every split")
    add.add_argument("--drop-constant-tags", action="store_true", help="multilabel: remove a tag that is on every row")
    add.add_argument("--unlabelled", action="store_true",
                     help="texts without a label column (or a ZIP of images), to label on the Label page")
    add.add_argument("--allow-duplicate", action="store_true", help="store even if the same content exists")
    add.add_argument("--json", action="store_true")
    add.set_defaults(handler=_add)
    ls = sub.add_parser("list", help="stored datasets, newest first")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=_list)
    show = sub.add_parser("show", help="one dataset: rows, splits, classes or users/items, warnings")
    show.add_argument("name", metavar="NAME")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=_show)
    rm = sub.add_parser("rm", help="delete a dataset (and the runs that use it, with --yes)")
    rm.add_argument("name", metavar="NAME")
    rm.add_argument("--yes", action="store_true", help="also delete the runs that use it")
    rm.set_defaults(handler=_rm)
    demo = sub.add_parser("demo", help="load a built-in demo dataset: product-reviews or movie-ratings")
    demo.add_argument("demo", metavar="NAME", choices=("product-reviews", "movie-ratings"))
    demo.add_argument("--json", action="store_true")
    demo.set_defaults(handler=_demo)
    audit = sub.add_parser("audit", help="data health: likely label errors, near-duplicates, leakage, oddities")
    audit.add_argument("name", metavar="NAME")
    audit.add_argument("--source", default="cv", metavar="cv|run:ID",
                       help="cv: cross-validated TF-IDF probabilities (default); run:ID: a completed run's "
                            "held-out predictions (validation and test rows only)")
    audit.add_argument("--no-embeddings", action="store_true",
                       help="skip the MiniLM near-duplicate search and zero-label baseline (faster)")
    audit.add_argument("--similarity", type=float, default=SIMILARITY,
                       help=f"cosine for near-duplicates (default {SIMILARITY})")
    audit.add_argument("--certainty", type=float, default=CERTAINTY,
                       help="how sure the held-out models must be that a label is wrong for it to count as a "
                            f"likely label error (default {CERTAINTY}; lower lists more rows, more of them correct)")
    audit.add_argument("--all", action="store_true",
                       help="also list the possible label errors (flagged by cleanlab, below --certainty)")
    audit.add_argument("--limit", type=int, default=0, help="list only the N most suspicious rows (0: all)")
    audit.add_argument("--json", action="store_true")
    audit.set_defaults(handler=_audit)
    curve = sub.add_parser("label-curve", help="how many labels do I need: macro-F1 of SetFit, TF-IDF and the "
                           "Transformer at 8-64 labels a class (a background run; minutes on a CPU)")
    curve.add_argument("name", metavar="NAME")
    curve.add_argument("--sizes", help="labels a class, comma-separated (default 8,16,32,64)")
    curve.add_argument("--models", help="comma-separated: setfit,tfidf,transformer (the default: all three)")
    curve.add_argument("--seeds", type=int, default=1, help="samples per size (3 gives a ± std)")
    curve.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (SetFit and the Transformer)")
    curve.add_argument("--wait", action="store_true", help="wait for the curve, with a progress bar on stderr")
    curve.add_argument("--json", action="store_true")
    curve.set_defaults(handler=_label_curve)
    version = sub.add_parser("version", help="a new dataset version from the latest audit's findings")
    version.add_argument("name", metavar="NAME")
    version.add_argument("--relabel-suggested", action="store_true",
                         help="relabel the likely label errors scored at least --min-score to the suggestion "
                              "(the rows the Data health tab pre-fills)")
    version.add_argument("--min-score", type=float, default=None,
                         help="the lowest score relabelled (default: the audit mode's cut, "
                              + ", ".join(f"{m.cut:.2f} for {m.label}" for m in MODES)
                              + f": from there up, {PREFILL_PRECISION * 100:.0f} %% or more of the flags were real "
                              "errors on real tweets, where measured)")
    version.add_argument("--exclude-possible", action="store_true",
                         help="drop the possible label errors (flagged, below the audit's certainty)")
    version.add_argument("--exclude-duplicates", action="store_true",
                         help="drop near-duplicates (the copy in the earliest split is kept)")
    version.add_argument("-o", "--output", metavar="NEW_NAME", help="name of the new version (default: NAME vN)")
    version.add_argument("--new-test-set", action="store_true",
                         help="also apply the changes to test rows, making a new, differently named test set "
                              "(without it the test set stays as uploaded and test-row changes are only marked)")
    version.add_argument("--json", action="store_true")
    version.set_defaults(handler=_version)
