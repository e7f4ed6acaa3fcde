"""Precision of the data health audit on real labels: draw flagged rows to judge by hand, then score the judgments.

`sample` draws N of an audit's likely label errors at random (seeded) from the JSON that
`protolab datasets audit NAME --json` prints, and writes two files outside the repository: a blind sheet (a
shuffled id and the text, nothing else: the judge labels each text without seeing the given label, the
suggestion or the score) and a key (the id, the dataset row, a digest of the text, the score, the given label and
the suggestion). `score` reads a judgments file (the key plus the judge's label, no text: the dataset is not
copied into the repository) and prints the precision per score band, overall and from each cut up; with --csv
it first checks each digest against the dataset file, so the judgments are known to be about those tweets.

A flag is *right* when the judged label differs from the given one; its *suggestion right* when the judged
label is the audit's suggestion (BENCHMARKS.md, "Data health: label audit on tweets", "Precision on real labels").

Usage:
  .venv/bin/python bench/audit_precision.py sample AUDIT.json --n 200 --seed 1 --out /tmp/judge  # judge sheet.txt
  .venv/bin/python bench/audit_precision.py score bench/judgments/tweets_audit_embeddings.csv \\
      [--csv ../shared/datasets/tweets-sentiment/tweets.csv --text-col text]
"""

from __future__ import annotations

import argparse
import hashlib
import html
import io
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.data.reading import decode_text  # noqa: E402
from core.health.confidence import PREFILL_PRECISION, Band, default_min_score  # noqa: E402

log = logging.getLogger("audit_precision")
BAND_LOWS = (0.98, 0.97, 0.96, 0.95)  # highest first; the likely tier starts at the audit's certainty, 0.95
KEY_COLUMNS = ["id", "row", "split", "digest", "score", "given", "suggested"]


def digest(text: str) -> str:
    """A short fingerprint of a text: enough to tell the judged tweet is the one in the file, not the text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def sample(audit: dict, n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(blind sheet: id, text; key: KEY_COLUMNS) for n likely flags drawn at random, in a random order."""
    likely = pd.DataFrame(audit["rows"])
    rng = np.random.default_rng(seed)
    drawn = likely.iloc[rng.choice(len(likely), min(n, len(likely)), replace=False)].reset_index(drop=True)
    drawn.insert(0, "id", np.arange(1, len(drawn) + 1))
    key = drawn.assign(digest=drawn["text"].map(digest), given=drawn["label"])[KEY_COLUMNS]
    return drawn[["id", "text"]], key


def bands(judgments: pd.DataFrame, lows: tuple[float, ...] = BAND_LOWS) -> list[Band]:
    """The judged flags grouped by score band (highest first), each with how many were right."""
    out = []
    upper = np.inf
    for low in lows:
        part = judgments[(judgments["score"] >= low) & (judgments["score"] < upper)]
        wrong = part["judged"] != part["given"]
        out.append(Band(low, len(part), int(wrong.sum()), int((wrong & (part["judged"] == part["suggested"])).sum())))
        upper = low
    return out


def check_digests(judgments: pd.DataFrame, csv: Path, text_col: str) -> int:
    """How many judged digests are not the digest of any text in the dataset file (0: all found)."""
    # decoded as an upload is (UTF-8, Windows-1252, byte by byte; HTML entities unescaped): the texts the audit read
    text, _, _ = decode_text(csv.read_bytes())
    texts = set(pd.read_csv(io.StringIO(text))[text_col].astype(str).map(html.unescape).str.strip().map(digest))
    return int((~judgments["digest"].isin(texts)).sum())


def report(found: list[Band]) -> str:
    lines = ["| score band | judged | really mislabelled | precision | suggestion right |", "|---|---|---|---|---|"]
    upper = None
    for band in found:
        name = f"≥ {band.low:.2f}" if upper is None else f"{band.low:.2f}-{upper:.2f}"
        lines.append(f"| {name} | {band.judged} | {band.mislabelled} | {band.precision:.2f} | "
                     f"{band.suggestion_right / max(band.judged, 1):.2f} |")
        upper = band.low
    n, right = sum(b.judged for b in found), sum(b.mislabelled for b in found)
    good = sum(b.suggestion_right for b in found)
    lines.append(f"| all likely | {n} | {right} | {right / max(n, 1):.2f} | {good / max(n, 1):.2f} |")
    cut = default_min_score(found)
    lines.append(f"pre-fill cut at {PREFILL_PRECISION:.0%} measured precision: {cut:.2f}")
    for band_low in (b.low for b in found):
        up = [b for b in found if b.low >= band_low]
        m, j = sum(b.mislabelled for b in up), sum(b.judged for b in up)
        lines.append(f"  from {band_low:.2f} up: {m}/{j} = {m / max(j, 1):.3f} mislabelled, "
                     f"suggestion right {sum(b.suggestion_right for b in up) / max(j, 1):.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sample")
    s.add_argument("audit", type=Path, help="the output of `protolab datasets audit NAME --json`")
    s.add_argument("--n", type=int, default=200)
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--out", type=Path, required=True, help="a folder outside the repository")
    c = sub.add_parser("score")
    c.add_argument("judgments", type=Path)
    c.add_argument("--csv", type=Path, help="the dataset file, to check the digests")
    c.add_argument("--text-col", default="text")
    args = p.parse_args(argv)
    if args.command == "sample":
        sheet, key = sample(json.loads(args.audit.read_text()), args.n, args.seed)
        args.out.mkdir(parents=True, exist_ok=True)
        # one text a line, whitespace collapsed: some tweets hold bare carriage returns that break a CSV reader
        (args.out / "sheet.txt").write_text("".join(f"{i} {' '.join(str(t).split())}\n"
                                                    for i, t in zip(sheet["id"], sheet["text"], strict=True)))
        key.to_csv(args.out / "key.csv", index=False)
        log.info("%d flags drawn: %s (blind), %s", len(key), args.out / "sheet.txt", args.out / "key.csv")
        return 0
    judgments = pd.read_csv(args.judgments)
    if args.csv is not None:
        missing = check_digests(judgments, args.csv, args.text_col)
        log.info("digests not found in %s: %d of %d", args.csv, missing, len(judgments))
        if missing:
            return 1
    log.info("%s", report(bands(judgments)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
