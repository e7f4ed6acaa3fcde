"""The data health audit of a classification dataset: likely label errors, near-duplicates, leakage, oddities.

Label errors come from cleanlab's confident learning on out-of-sample probabilities: k-fold cross-validated
TF-IDF baselines by default (averaged with a logistic regression on the MiniLM embeddings when the audit embeds
the texts anyway), or a completed run's held-out predictions. cleanlab flags every row whose label the
probabilities doubt; the rows the held-out models are at least `certainty` sure are wrong are the *likely* label
errors (counted, listed first, relabelled by `--relabel-suggested`), the rest are *possible* ones to look at.
The audit only reads the frame it is given; findings point at rows by their position in the stored dataset.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.errors import ProtolabError
from core.health.duplicates import MENTION_PATTERN, SIMILARITY, URL_PATTERN, find_duplicates, normalise_text
from core.health.embeddings import Encoder
from core.health.zero_label import zero_label_report
from core.runs.device import one_blas_thread
from core.text.tfidf import TfidfConfig

SPLIT_ORDER = {"train": 0, "validation": 1, "test": 2}
MIN_TRAIN_PER_CLASS = 5  # fewer training rows than this and a class is reported as too small for the split
# A flagged row is a *likely* label error when the held-out probability of its label is below 1 - CERTAINTY.
# cleanlab's own count on a corpus whose original labels already disagree (crowd-labelled tweets: 25 % of
# rows disagree with any model) flags ~18 % of rows, four ambiguous originals for every real flip
# (BENCHMARKS.md, "Data health"); 95 % sure keeps the list short enough to trust and act on.
CERTAINTY = 0.95


class AuditError(ProtolabError):
    """The audit cannot run as asked (not a classification dataset, bad source, one class only)."""


@dataclass(frozen=True)
class AuditConfig:
    source: str = "cv"  # "cv" (k-fold TF-IDF) | "run:ID" (a completed run's held-out predictions)
    folds: int = 5
    seed: int = 42
    embeddings: bool = True  # MiniLM near-duplicates and the zero-label baseline (the slow part on a CPU)
    similarity: float = SIMILARITY  # cosine above which two texts are near-duplicates
    block_rows: int = 1024  # rows compared against all others at once: memory is block_rows x N floats
    long_factor: float = 10.0  # a text longer than this many times the median length (and 1000 chars) is odd
    label_descriptions: Mapping[str, str] = field(default_factory=dict)  # zero-label: label -> one line
    certainty: float = CERTAINTY  # how sure the held-out models must be that a label is wrong (see CERTAINTY)
    image_size: int = 224  # images: the square side the frozen backbone embeds at (the linear probe's default)

    def __post_init__(self) -> None:
        parse_source(self.source)
        if self.folds < 2:
            raise AuditError(f"folds must be at least 2, got {self.folds}")
        if not 0.0 < self.similarity <= 1.0:
            raise AuditError(f"similarity must be in (0, 1], got {self.similarity}")
        if not 0.5 <= self.certainty < 1.0:
            raise AuditError(f"certainty must be in [0.5, 1), got {self.certainty}")
        if not 8 <= self.image_size <= 1024:
            raise AuditError(f"image_size must be between 8 and 1024 pixels, got {self.image_size}")


def parse_source(source: str) -> int | None:
    """None for "cv", the run id for "run:ID"; AuditError for anything else."""
    text = str(source).strip().lower()
    if text == "cv":
        return None
    head, _, tail = text.partition(":")
    if head == "run" and tail.isdigit():
        return int(tail)
    raise AuditError(f"unknown audit source {source!r}: use cv or run:ID (e.g. run:12)")


@dataclass
class AuditResult:
    """What the audit found; frames hold one row per flagged dataset row."""

    summary: dict[str, Any]
    label_issues: pd.DataFrame  # row, split, text, label, suggested, score (1 = surely wrong), likely; by score
    duplicates: pd.DataFrame  # row, split, text, label, duplicate_of (the row kept), duplicate_label, similarity, leak
    oddities: pd.DataFrame  # row, split, text, label, kind ("empty" | "long" | "other_script")
    small_classes: list[dict[str, Any]]
    zero_label: dict[str, Any] | None = None
    embeddings: np.ndarray | None = None  # (N, D) unit vectors
    audit_id: int | None = None  # the stored DataAudit, once stored

    def findings(self) -> dict[str, list[dict[str, Any]]]:
        """JSON-ready lists (what is stored with the dataset version)."""
        return {"label_issues": _records(self.label_issues), "duplicates": _records(self.duplicates),
                "oddities": _records(self.oddities), "small_classes": self.small_classes}


Progress = Callable[[float, str], None]


def run_audit(frame: pd.DataFrame, cfg: AuditConfig = AuditConfig(), *,
              run_probabilities: tuple[np.ndarray, list[str], np.ndarray] | None = None,
              on_progress: Progress = lambda fraction, text: None,
              should_stop: Callable[[], bool] = lambda: False, dataset_id: int | None = None) -> AuditResult:
    """Audit a classification frame (text, label, split). It is never modified.

    `run_probabilities` = (proba (M, C), label names, row positions) replaces the cross-validated source. The
    frame holds the texts, so `dataset_id` (which an image audit reads its files by) is not needed.
    """
    started = time.perf_counter()
    _check_frame(frame)
    texts = frame["text"].astype(str).tolist()
    labels = frame["label"].astype(str).to_numpy()
    splits = frame["split"].astype(str).to_numpy()
    embeddings, encoder = embed_texts(texts, cfg, on_progress, should_stop)  # first: the probabilities use them
    label_started = time.perf_counter()
    on_progress(0.55, "finding likely label errors")
    if run_probabilities is None:
        proba, names, rows = cv_probabilities(texts, labels, cfg, embeddings=embeddings, on_progress=on_progress,
                                              should_stop=should_stop)
    else:
        proba, names, rows = run_probabilities
    issues = label_issues(proba, names, rows, labels, certainty=cfg.certainty)
    issues = issues.assign(split=splits[issues["row"]], text=[texts[i] for i in issues["row"]])
    label_seconds = time.perf_counter() - label_started
    on_progress(0.82, "looking for near-duplicates and leakage")
    dups = find_duplicates(texts, splits, embeddings, threshold=cfg.similarity, block_rows=cfg.block_rows)
    dups = dups.assign(text=[texts[i] for i in dups["row"]], label=labels[dups["row"]],
                       duplicate_label=labels[dups["duplicate_of"]])
    odd = oddities(texts, cfg.long_factor)
    odd = odd.assign(split=splits[odd["row"]], text=[texts[i] for i in odd["row"]], label=labels[odd["row"]])
    small = small_classes(labels, splits)
    zero = None
    if embeddings is not None:
        on_progress(0.92, "scoring the zero-label baseline")
        zero = zero_label_report(embeddings, labels, splits, sorted(set(labels)), dict(cfg.label_descriptions),
                                 encoder)
    summary = _summary(cfg, frame, issues, dups, odd, small, rows, label_seconds, time.perf_counter() - started)
    return AuditResult(summary=summary, label_issues=issues[ISSUE_COLUMNS], duplicates=dups[DUP_COLUMNS],
                       oddities=odd[ODD_COLUMNS], small_classes=small, zero_label=zero, embeddings=embeddings)


def embed_texts(texts: Sequence[str], cfg: AuditConfig, on_progress: Progress,
                should_stop: Callable[[], bool]) -> tuple[np.ndarray | None, Encoder | None]:
    """The MiniLM embeddings of every text (progress 0.02-0.52) and the encoder, or (None, None) when the audit
    runs without them. Any task's text audit embeds here, so each gets the same bf16 and batching speed work."""
    if not cfg.embeddings:
        return None, None
    on_progress(0.02, "embedding texts with MiniLM")
    encoder = Encoder()
    embeddings = encoder.encode(texts, on_batch=lambda done, total: on_progress(
        0.02 + 0.5 * done / max(total, 1), f"embedding texts ({done:,}/{total:,})"))
    if should_stop():
        raise AuditCancelled()
    return embeddings, encoder


class AuditCancelled(Exception):
    """The caller asked the audit to stop (the worker turns it into a cancelled run)."""


ISSUE_COLUMNS = ["row", "split", "text", "label", "suggested", "score", "likely"]
DUP_COLUMNS = ["row", "split", "text", "label", "duplicate_of", "duplicate_label", "similarity", "leak"]
ODD_COLUMNS = ["row", "split", "text", "label", "kind"]


def cv_probabilities(texts: Sequence[str], labels: np.ndarray, cfg: AuditConfig, *,
                     embeddings: np.ndarray | None = None, on_progress: Progress = lambda f, t: None,
                     should_stop: Callable[[], bool] = lambda: False) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Out-of-fold probabilities of the TF-IDF baseline: (proba (M, C), label names, positions of the M rows).

    The baseline's own settings (core.text.tfidf.TfidfConfig, its SAGA solver included: lbfgs took 25 times
    longer), so the audit sees what the baseline sees. The vectorizer uses no labels, so it is fitted once on
    every text instead of once per fold (a fifth of the work); only the logistic regression is refitted per fold.
    With `embeddings` (N, D), a logistic regression on them is fitted in the same folds and the two
    probabilities are averaged: the two models err on different tweets, so where both doubt a label it is far
    more often really wrong (on tweets with 5 % flipped labels, 70 % of the rows the average is 95 % sure of are
    flips against 61 % for TF-IDF alone; BENCHMARKS.md). Rows of classes with fewer than two examples cannot be held
    out and predicted, so they are left out.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold


    counts = Counter(labels.tolist())
    names = sorted(c for c, n in counts.items() if n >= 2)
    if len(names) < 2:
        raise AuditError("the audit needs at least two labels with two or more rows each")
    rows = np.flatnonzero(np.isin(labels, names))
    y = np.searchsorted(names, labels[rows])
    tf = TfidfConfig()
    vectorizer = TfidfVectorizer(ngram_range=tuple(tf.ngram_range), sublinear_tf=tf.sublinear_tf, min_df=tf.min_df,
                                 max_features=tf.max_features)
    try:
        features = vectorizer.fit_transform([texts[i] for i in rows])
    except ValueError as exc:  # "empty vocabulary": every text blank
        raise AuditError(f"could not build the TF-IDF features: {exc}") from exc
    dense = None if embeddings is None else np.asarray(embeddings)[rows]
    folds = max(2, min(cfg.folds, min(counts[c] for c in names)))
    proba = np.zeros((len(rows), len(names)), dtype=np.float64)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=cfg.seed)
    for k, (fit, held) in enumerate(splitter.split(features, y)):
        if should_stop():
            raise AuditCancelled()
        clf = LogisticRegression(C=tf.C, max_iter=tf.max_iter, class_weight=tf.class_weight, solver=tf.solver,
                                 tol=tf.tol, random_state=tf.seed)
        clf.fit(features[fit], y[fit])
        proba[np.ix_(held, clf.classes_)] = clf.predict_proba(features[held])
        if dense is not None:
            dense_clf = LogisticRegression(C=tf.C, max_iter=tf.max_iter, class_weight=tf.class_weight)
            with one_blas_thread():
                dense_clf.fit(dense[fit], y[fit])
            fold = np.zeros((len(held), len(names)))
            fold[:, dense_clf.classes_] = dense_clf.predict_proba(dense[held])
            proba[held] = (proba[held] + fold) / 2
        on_progress(0.55 + 0.25 * (k + 1) / folds, f"cross-validated baseline: fold {k + 1} of {folds}")
    return proba, names, rows


def label_issues(proba: np.ndarray, names: Sequence[str], rows: np.ndarray, labels: np.ndarray, *,
                 certainty: float = CERTAINTY) -> pd.DataFrame:
    """Rows cleanlab flags as mislabelled, with a suggested label, a score (1 - label quality) and `likely`:
    the probability of the given label is below 1 - certainty. Sorted by score, so the likely ones come first."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    names = list(names)
    given = labels[rows]
    known = np.isin(given, names)  # a run may not know a label its dataset has since gained
    rows, given, proba = rows[known], given[known], proba[known]
    empty = pd.DataFrame({"row": pd.Series(dtype=int), "label": pd.Series(dtype=str),
                          "suggested": pd.Series(dtype=str), "score": pd.Series(dtype=float),
                          "likely": pd.Series(dtype=bool)})
    if len(rows) == 0 or len(names) < 2:
        return empty
    y = np.asarray([names.index(v) for v in given])
    proba = temperature_calibrated(_normalised(proba), y)
    flagged = find_label_issues(y, proba, filter_by="prune_by_noise_rate")
    quality = get_label_quality_scores(y, proba, method="self_confidence")
    # The suggestion is the most likely *other* label: a row flagged while its own label still wins gets one.
    other = proba.copy()
    other[np.arange(len(y)), y] = -1.0
    suggested = other.argmax(axis=1)
    out = pd.DataFrame({"row": rows[flagged].astype(int), "label": given[flagged],
                        "suggested": [names[i] for i in suggested[flagged]],
                        "score": np.round(1.0 - quality[flagged], 4),
                        "likely": quality[flagged] < 1.0 - certainty})
    return out.sort_values(["score", "row"], ascending=[False, True], kind="stable").reset_index(drop=True)


def temperature_calibrated(proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Held-out probabilities sharpened by the one temperature that best predicts the given labels, if it is < 1.

    "95 % sure the label is wrong" must mean the same on 300 rows as on 30,000: a logistic regression fitted on
    a few hundred rows is timid (a flipped row's own label still gets 0.05-0.12 on the tests' topics). One scalar
    fitted by likelihood (temperature scaling, Guo et al. 2017) keeps every row's order and suggestion and only
    moves the probabilities to the scale the labels show. It never softens them: the fit is to the given labels,
    errors included, and the more errors there are the softer it gets (with 15 % of labels flipped uniformly no
    calibrated probability of a given label can fall below 7.5 %), which would hide the very rows looked for.
    """
    from scipy.optimize import minimize_scalar

    logp = np.log(np.clip(proba, 1e-12, 1.0))

    def scaled(log_temperature: float) -> np.ndarray:
        z = logp / np.exp(log_temperature)
        z -= z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    def nll(log_temperature: float) -> float:
        return float(-scaled(log_temperature)[np.arange(len(y)), y].mean())

    best = minimize_scalar(nll, bounds=(np.log(0.05), 0.0), method="bounded")
    return np.exp(scaled(float(best.x)))


def _normalised(proba: np.ndarray) -> np.ndarray:
    proba = np.clip(np.asarray(proba, dtype=np.float64), 0.0, None)
    totals = proba.sum(axis=1, keepdims=True)
    return np.divide(proba, totals, out=np.full_like(proba, 1.0 / proba.shape[1]), where=totals > 0)


def oddities(texts: Sequence[str], long_factor: float = 10.0) -> pd.DataFrame:
    """Empty-ish texts (no words once links and mentions go), extremely long ones, and texts written in
    another script than most (Cyrillic among Latin, say): the cheap language check."""
    lengths = np.asarray([len(t) for t in texts])
    long_limit = max(1000.0, long_factor * float(np.median(lengths))) if len(lengths) else 0.0
    scripts = [_script(t) for t in texts]
    counted = Counter(s for s in scripts if s)
    main = counted.most_common(1)[0][0] if counted else None
    rows, kinds = [], []
    for i, text in enumerate(texts):
        words = re.sub(r"[\W_]+", "", MENTION_PATTERN.sub(" ", URL_PATTERN.sub(" ", text)))
        kind = ("empty" if len(words) < 2 else "long" if lengths[i] > long_limit
                else "other_script" if scripts[i] and main and scripts[i] != main else None)
        if kind:
            rows.append(i)
            kinds.append(kind)
    return pd.DataFrame({"row": pd.Series(rows, dtype=int), "kind": pd.Series(kinds, dtype=str)})


def _script(text: str) -> str | None:
    """The Unicode script most letters of `text` belong to (first word of their names: LATIN, CYRILLIC...)."""
    scripts = Counter()
    for ch in text:
        if ch.isalpha():
            name = unicodedata.name(ch, "")
            scripts[name.split(" ")[0] if name else "?"] += 1
    if sum(scripts.values()) < 3:
        return None
    return scripts.most_common(1)[0][0]


def small_classes(labels: np.ndarray, splits: np.ndarray) -> list[dict[str, Any]]:
    """Classes with too few training rows, or missing from a split the dataset has."""
    present = [s for s in SPLIT_ORDER if (splits == s).any()]
    out = []
    for label in sorted(set(labels.tolist())):
        counts = {s: int(((labels == label) & (splits == s)).sum()) for s in present}
        reasons = []
        if counts.get("train", 0) < MIN_TRAIN_PER_CLASS:
            reasons.append(f"only {counts.get('train', 0)} training rows")
        reasons += [f"no {s} rows" for s in present if s != "train" and counts[s] == 0]
        if reasons:
            out.append({"label": label, "counts": counts, "reason": "; ".join(reasons)})
    return out


def _summary(cfg: AuditConfig, frame: pd.DataFrame, issues: pd.DataFrame, dups: pd.DataFrame, odd: pd.DataFrame,
             small: list[dict[str, Any]], covered: np.ndarray, label_seconds: float, seconds: float) -> dict[str, Any]:
    kinds = odd["kind"].value_counts().to_dict()
    return {"source": cfg.source, "rows": len(frame), "rows_checked_for_label_issues": int(len(covered)),
            "label_issues": int(issues["likely"].sum()), "possible_label_issues": int((~issues["likely"]).sum()),
            "certainty": cfg.certainty, "near_duplicates": len(dups), "leakage": int(dups["leak"].sum()),
            "conflicting_duplicates": int((dups["label"] != dups["duplicate_label"]).sum()),
            "empty": int(kinds.get("empty", 0)), "long": int(kinds.get("long", 0)),
            "other_script": int(kinds.get("other_script", 0)), "small_classes": len(small),
            "embeddings": cfg.embeddings, "label_issue_seconds": round(label_seconds, 2),
            "seconds": round(seconds, 2)}


def _check_frame(frame: pd.DataFrame) -> None:
    missing = [c for c in ("text", "label", "split") if c not in frame.columns]
    if missing:
        raise AuditError(f"the dataset lacks the column(s) {', '.join(missing)}: only classification datasets "
                         "can be audited")
    if frame.empty:
        raise AuditError("the dataset has no rows to audit")


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for rec in frame.to_dict(orient="records"):
        out.append({k: (v.item() if isinstance(v, np.generic) else v) for k, v in rec.items()})
    return out


__all__ = ["AuditConfig", "AuditError", "AuditResult", "normalise_text", "parse_source", "run_audit"]
