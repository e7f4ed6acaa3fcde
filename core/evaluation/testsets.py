"""Which test set a run was scored on, and comparing runs only on the test rows they share.

A classification run stores its test set (name, row count, digest of row ids and labels) when it completes;
older runs get theirs from the test prediction file. Two runs with different digests were not scored on the
same data: Compare says so and recomputes their figures on the rows both test sets hold.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.data.storage import ROW_ID
from core.evaluation.metrics import classification_report, headline
from core.evaluation.predictions import ArtifactsMissing, is_ranking, load_predictions
from core.evaluation.uncertainty import bootstrap_class_scores, paired_difference

log = logging.getLogger(__name__)

SHARED_KEYS = ("macro_f1", "accuracy")  # what a comparison on shared rows shows


@dataclass(frozen=True)
class TestSet:
    name: str
    rows: int
    digest: str  # sha256 of row ids (when the file has them), texts and labels, in row-id order


@dataclass(frozen=True)
class TestSetCheck:
    same: bool
    message: str  # empty when every run was scored on the same test set
    shared_rows: int
    by_run: dict[int, TestSet]


def test_set_digest(frame: pd.DataFrame) -> str:
    """A fingerprint of test rows: same ids, texts and labels give the same digest, whatever the row order."""
    keys = _row_keys(frame)
    digest = hashlib.sha256()
    digest.update("\x1f".join(sorted(keys)).encode("utf-8", errors="surrogatepass"))
    return digest.hexdigest()


def describe_test_set(frame: pd.DataFrame, name: str) -> dict[str, Any]:
    """The JSON a run stores about its test set (Run.metrics["test_set"])."""
    return {"name": name, "rows": int(len(frame)), "digest": test_set_digest(frame)}


def run_test_set(run: Any) -> TestSet | None:
    """The test set a run was scored on: stored, else read from its test predictions (None when unreadable)."""
    stored = (run.metrics or {}).get("test_set")
    if isinstance(stored, dict) and stored.get("digest"):
        return TestSet(str(stored.get("name") or "test set"), int(stored.get("rows") or 0), str(stored["digest"]))
    if is_ranking(run):  # a recommender's test split follows from its dataset and split protocol
        m = run.metrics or {}
        key = f"{run.dataset_id}:{m.get('protocol')}:{m.get('n_test')}"
        return TestSet(f"dataset #{run.dataset_id} test split", int(m.get("n_test") or 0),
                       hashlib.sha256(key.encode()).hexdigest())
    try:
        frame = load_predictions(run.id, "test")
    except ArtifactsMissing as exc:
        log.info("run %s: no test set to compare (%s)", run.id, exc)
        return None
    return TestSet("test set", len(frame), test_set_digest(frame))


def check_test_sets(runs: Sequence[Any]) -> TestSetCheck:
    """Whether runs were scored on the same test set, and if not how many test rows they share."""
    by_run = {r.id: ts for r in runs if (ts := run_test_set(r)) is not None}
    digests = {ts.digest for ts in by_run.values()}
    if len(digests) <= 1 and len(by_run) == len(runs):
        return TestSetCheck(True, "", next(iter(by_run.values())).rows if by_run else 0, by_run)
    shared = len(shared_row_keys([r.id for r in runs])) if not any(is_ranking(r) for r in runs) else 0
    sets = "; ".join(f"#{i}: {ts.name} ({ts.rows:,} rows)" for i, ts in by_run.items())
    unknown = [f"#{r.id}" for r in runs if r.id not in by_run]
    if unknown:
        sets += f"; {', '.join(unknown)}: unknown (no test predictions)"
    if shared:
        tail = f"the figures below side by side are not comparable; compared on the {shared:,} test rows they share"
    else:
        tail = "they share no test rows, so their scores cannot be compared as if measured on the same data"
    return TestSetCheck(False, f"These runs were scored on different test sets ({sets}): {tail}.", shared, by_run)


def shared_row_keys(run_ids: Sequence[int]) -> set[str]:
    """The test rows (id, text and label) that every run's test predictions hold."""
    shared: set[str] | None = None
    for run_id in run_ids:
        try:
            keys = set(_row_keys(load_predictions(run_id, "test")))
        except ArtifactsMissing:
            return set()
        shared = keys if shared is None else shared & keys
    return shared or set()


def scores_on_shared_rows(run_ids: Sequence[int]) -> pd.DataFrame:
    """Each run's macro-F1 and accuracy recomputed on the test rows all of them share (empty when none)."""
    keys = shared_row_keys(run_ids)
    if not keys:
        return pd.DataFrame(columns=["run", "rows", *SHARED_KEYS])
    rows = []
    for run_id in run_ids:
        frame = load_predictions(run_id, "test")
        mine = frame[np.isin(_row_keys(frame), list(keys))]
        labels = sorted(set(mine["label"]) | set(mine["pred"]))
        report = headline(classification_report(mine["label"].tolist(), mine["pred"].tolist(), labels))
        rows.append({"run": run_id, "rows": len(mine), **{k: report[k] for k in SHARED_KEYS}})
    return pd.DataFrame(rows)


def paired_difference_on_shared_rows(a_id: int, b_id: int, key: str = "macro_f1") -> tuple[float, float] | None:
    """The 95 % interval of run A's score minus run B's, resampling the test rows both hold, pair by pair
    (None when they share none). An interval containing 0 says this test set cannot tell them apart."""
    keys = shared_row_keys([a_id, b_id])
    if not keys:
        return None
    order = sorted(keys)
    scores = []
    for run_id in (a_id, b_id):
        frame = load_predictions(run_id, "test")
        frame = frame.assign(_key=_row_keys(frame)).drop_duplicates("_key").set_index("_key").loc[order]
        labels = sorted(set(frame["label"]) | set(frame["pred"]))
        scores.append(bootstrap_class_scores(frame["label"].tolist(), frame["pred"].tolist(), labels))
    return paired_difference(scores[0], scores[1], key)


def _row_keys(frame: pd.DataFrame) -> list[str]:
    # Copies of one text in a test set without row ids are told apart by their occurrence number.
    ids = (frame[ROW_ID].astype("int64").astype(str) if ROW_ID in frame.columns
           else frame.groupby(["text", "label"]).cumcount().astype(str).radd("#"))
    return (ids + "\x1e" + frame["text"].astype(str) + "\x1e" + frame["label"].astype(str)).tolist()
