"""`protolab predict --run ID "text" ...` and `protolab predict --run ID --file F --text-col C -o OUT`.

Serves a completed classification run from the command line: labels for a few texts, or a scored file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cli import CliError, print_json
from core.export.destination import check_output
from core.images.store import ImageError, open_image
from core.tasks import Task, get_task
from core.text.batch_scoring import read_upload, results_csv, score_frame
from core.text.serving import InputError, clean_text, load_classifier, servable_run
from db import read_scope
from db import runs as run_queries

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")


def _are_image_files(names: list[str]) -> bool:
    """Arguments that are all image files on disk are images to label (a text never names an existing file)."""
    return bool(names) and all(n.lower().endswith(IMAGE_SUFFIXES) and Path(n).is_file() for n in names)


def _images(args: argparse.Namespace) -> int:
    from core.images.serving import load_run_classifier  # imports torch: kept off every other command's start-up

    with read_scope() as s:
        classifier = load_run_classifier(s, args.run)
    images = []
    for name in args.texts:
        try:
            images.append(open_image(Path(name), name=name))
        except ImageError as exc:
            raise CliError(str(exc)) from exc
    preds = classifier.predict(images)
    if args.json:
        print_json([{"image": n, "label": p.label, "confidence": round(p.confidence, 6),
                     "probabilities": {k: round(v, 6) for k, v in p.probabilities.items()},
                     "low_confidence": p.low_confidence} for n, p in zip(args.texts, preds, strict=True)])
        return 0
    for name, pred in zip(args.texts, preds, strict=True):
        print(f"{pred.label}\t{pred.confidence:.3f}\t{name}" + ("\t(low confidence)" if pred.low_confidence else ""))
    return 0


def _texts(args: argparse.Namespace) -> int:
    with read_scope() as s:
        run = run_queries.get_run(s, args.run)
        task = get_task(run.task) if run is not None else None
        if task is None or task.predict is None:
            servable_run(s, args.run)
    if task is not None and task.predict is not None:  # a task whose answer is not one label per text
        return _task_texts(args, task)
    try:
        texts = [clean_text(t) for t in args.texts]
    except InputError as exc:
        raise CliError(f"every text needs at least one word: {exc}") from exc
    preds = load_classifier(args.run).predict(texts)
    if args.json:
        print_json([{"text": t, "label": p.label, "confidence": round(p.confidence, 6),
                     "probabilities": {k: round(v, 6) for k, v in p.probabilities.items()},
                     "low_confidence": p.low_confidence, "truncated": p.truncated}
                    for t, p in zip(texts, preds, strict=True)])
        return 0
    for text, pred in zip(texts, preds, strict=True):
        notes = [n for n, on in (("low confidence", pred.low_confidence), ("truncated", pred.truncated)) if on]
        shown = text if len(text) <= 60 else text[:57] + "..."
        print(f"{pred.label}\t{pred.confidence:.3f}\t{shown}" + (f"\t({', '.join(notes)})" if notes else ""))
    return 0


def _task_texts(args: argparse.Namespace, task: Task) -> int:
    try:
        answers = task.part("predict")(args.run, args.texts)
    except InputError as exc:
        raise CliError(f"every text needs at least one word: {exc}") from exc
    if args.json:
        print_json(answers)
        return 0
    for answer in answers:
        shown = answer["text"] if len(answer["text"]) <= 60 else answer["text"][:57] + "..."
        print(f"{', '.join(answer.get('labels') or []) or '(none)'}\t{shown}")
    return 0


def _file(args: argparse.Namespace) -> int:
    if args.output not in (None, "-"):
        check_output(args.output)  # before any work: never over the database or a run's files
    path = Path(args.file)
    frame = read_upload(path, path.name)  # read errors ("no such file", ...) come back as one-line user errors
    with read_scope() as s:
        servable_run(s, args.run)
    classifier = load_classifier(args.run)

    def progress(fraction: float, text: str) -> None:
        if not args.json and sys.stderr.isatty():
            print(f"\r{text} ({fraction:.0%})", end="", file=sys.stderr, flush=True)

    result = score_frame(classifier, frame, args.text_col, on_progress=progress)
    if not args.json and sys.stderr.isatty():
        print(file=sys.stderr)
    payload = results_csv(result)
    if args.output in (None, "-"):
        sys.stdout.buffer.write(payload)
        sys.stdout.flush()
    else:
        try:
            Path(args.output).write_bytes(payload)
        except OSError as exc:
            raise CliError(f"{args.output}: cannot write it ({exc.strerror or exc})") from exc
    summary = {"rows": len(result.frame), "scored": result.scored, "empty": result.empty,
               "truncated": result.truncated, "text_column": result.text_column, "label_counts": result.label_counts,
               "output": args.output or "-"}
    if args.json:
        print_json(summary)
    elif args.output not in (None, "-"):
        counts = ", ".join(f"{k} {v}" for k, v in result.label_counts.items())
        print(f"scored {result.scored} of {len(result.frame)} rows ({counts}) -> {args.output}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    if args.file and args.texts:
        raise CliError("give either texts or --file, not both")
    if args.file:
        if args.json and args.output in (None, "-"):
            raise CliError("--json with --file needs -o FILE (the scored CSV cannot share stdout with the summary)")
        return _file(args)
    if args.text_col or args.output:
        raise CliError("--text-col and -o only apply with --file")
    if not args.texts:
        raise CliError('nothing to predict: give one or more texts, e.g. protolab predict --run 3 "great service"')
    return _images(args) if _are_image_files(args.texts) else _texts(args)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("predict", help="label texts (or a CSV/Excel file), or image files, with a completed "
                              "classification run")
    p.add_argument("--run", type=int, required=True, metavar="ID", help="a completed classification run")
    p.add_argument("texts", nargs="*", metavar="TEXT",
                   help="texts to label, or image files (photo.jpg) for an image run")
    p.add_argument("--file", metavar="PATH", help="CSV/TSV/Excel file to score, one text per row")
    p.add_argument("--text-col", metavar="COLUMN", help="the column holding the text (default: guessed)")
    p.add_argument("-o", "--output", metavar="PATH", help="where to write the scored CSV (default: stdout)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_predict)
