"""Image data health on scikit-learn's bundled handwritten digits: does the audit find seeded label flips and planted
near-duplicates, and how many other pairs does each similarity threshold list?

The 1,797 8x8 digits (sklearn.datasets.load_digits, shipped with scikit-learn: nothing downloaded) are written as
PNGs upscaled to 32 px in train/val/test folders (70/15/15, seeded), a share of the train and val labels moved to
another digit at random, and `planted` train images copied into test brightened by 10 levels (a near-duplicate
that leaks). The ZIP goes through `protolab datasets add`, then core.health.jobs.audit_dataset audits it as the
tab does. Printed: precision and recall of the likely flags against the flips, the planted copies found, and the
pairs above each threshold in the same embeddings.

Usage: .venv/bin/python bench/image_audit.py [--noise 0.05] [--planted 20] [--image-size 64] [--json out.json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def digits_zip(path: Path, noise: float, planted: int, seed: int) -> tuple[set[str], set[str]]:
    """The ZIP; (paths of the flipped images, paths of the planted copies)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    n = len(digits.target)
    order = rng.permutation(n)
    split = np.where(order < 0.7 * n, "train", np.where(order < 0.85 * n, "val", "test"))
    labels = digits.target.copy()
    can_flip = np.flatnonzero(split != "test")
    flipped = rng.choice(can_flip, int(noise * len(can_flip)), replace=False)
    labels[flipped] = (labels[flipped] + rng.integers(1, 10, len(flipped))) % 10

    def png(pixels: np.ndarray, brighter: int = 0) -> bytes:
        grey = np.clip(pixels * 16 + brighter, 0, 255).astype(np.uint8)
        out = io.BytesIO()
        Image.fromarray(grey).resize((32, 32), Image.Resampling.BILINEAR).save(out, "PNG")
        return out.getvalue()

    flips, copies, flipped_set = set(), set(), set(flipped.tolist())
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(n):
            name = f"{split[i]}/{labels[i]}/{i}.png"
            archive.writestr(name, png(digits.images[i]))
            if i in flipped_set:
                flips.add(name)
        for i in rng.choice(np.flatnonzero(split == "train"), planted, replace=False):
            name = f"test/{labels[i]}/copy_{i}.png"
            archive.writestr(name, png(digits.images[i], brighter=10))
            copies.add(name)
    return flips, copies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--noise", type=float, default=0.05)
    parser.add_argument("--planted", type=int, default=20)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="image_audit_"))
    os.environ.update(PROTOLAB_HOME=str(home), DATABASE_URL=f"sqlite:///{home / 'protolab.db'}")

    from core.cli import main as cli
    from core.data.storage import load_frame
    from core.health.audit import AuditConfig
    from core.health.duplicates import similar_pairs
    from core.health.jobs import audit_dataset
    from db import session_scope
    from db.datasets import get_dataset_by_name

    flips, copies = digits_zip(home / "digits.zip", args.noise, args.planted, args.seed)
    assert cli(["datasets", "add", str(home / "digits.zip"), "--task", "images", "--name", "digits"]) == 0
    with session_scope() as s:
        dataset_id = get_dataset_by_name(s, "digits").id
    start = time.perf_counter()
    result = audit_dataset(dataset_id, AuditConfig(image_size=args.image_size))
    seconds = time.perf_counter() - start
    issues = result.label_issues
    likely = set(issues[issues["likely"]]["text"])
    flagged = set(issues["text"])
    with session_scope() as s:
        names = load_frame(get_dataset_by_name(s, "digits"))["path"].astype(str).to_numpy()
    pairs, copies_found = {}, {}
    for t in (0.9, 0.95, 0.97, 0.98, 0.99):
        found = similar_pairs(result.embeddings, t)
        pairs[t] = len(found)
        copies_found[t] = len({str(names[j]) for i, j in found} & copies | {str(names[i]) for i, j in found} & copies)
    out = {"images": result.summary["rows"], "flipped": len(flips), "image_size": args.image_size,
           "likely": len(likely), "likely_precision": round(len(likely & flips) / max(len(likely), 1), 3),
           "likely_recall": round(len(likely & flips) / max(len(flips), 1), 3),
           "flagged": len(flagged), "flagged_recall": round(len(flagged & flips) / max(len(flips), 1), 3),
           "planted_copies": len(copies), "copies_found_at": copies_found, "pairs_at": pairs,
           "near_duplicate_rows": result.summary["near_duplicates"], "similarity": result.summary["similarity"],
           "audit_seconds": round(seconds, 1), "label_issue_seconds": result.summary["label_issue_seconds"]}
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
