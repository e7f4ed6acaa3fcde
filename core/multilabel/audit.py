"""The data health audit of a multi-label dataset (the multi-label task's `audit` entry): likely tag errors per tag,
near-duplicates, leakage and oddities, with the classification audit's embeddings, duplicate and oddity code.

Tag errors come from cleanlab's multi-label confident learning (cleanlab.multilabel_classification) on out-of-fold
probabilities of one-vs-rest logistic regressions: on TF-IDF, averaged with ones on the MiniLM embeddings when the
audit embeds the texts anyway (core.health.audit.cv_probabilities does the same for one label per text). For each
flagged row the audit says which tags are likely missing (not in its set, the held-out models say yes) and which
are likely wrong (in its set, the models say no), and the set the models would give it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from core.data.storage import ROW_ID
from core.health.audit import (
    DUP_COLUMNS,
    ODD_COLUMNS,
    AuditCancelled,
    AuditConfig,
    AuditError,
    AuditResult,
    Progress,
    embed_texts,
    oddities,
    small_classes,
    temperature_calibrated,
)
from core.health.duplicates import find_duplicates
from core.multilabel.dataset import LABELS
from core.multilabel.labels import decode, encode, to_matrix
from core.runs.device import one_blas_thread
from core.text.tfidf import TfidfConfig

# A tag the held-out models give at least this probability is one they would set (and below it one they would
# not): the suggested set is the tags at or above it after calibration.
SET_AT = 0.5
TAG_ISSUE_COLUMNS = ["row", "row_id", "split", "text", "label", "suggested", "missing", "wrong", "score", "likely"]


def audit_tag_sets(frame: pd.DataFrame, cfg: AuditConfig = AuditConfig(), *,
                   run_probabilities: Any = None, on_progress: Progress = lambda fraction, text: None,
                   should_stop: Callable[[], bool] = lambda: False, dataset_id: int | None = None) -> AuditResult:
    """Audit a multi-label frame (text, labels as encoded tag sets, split). It is never modified (nor is
    `dataset_id` read: the frame holds the texts)."""
    if run_probabilities is not None or cfg.source != "cv":
        raise AuditError("a multi-label dataset is audited with cross-validated probabilities only (source cv)")
    started = time.perf_counter()
    missing = [c for c in ("text", LABELS, "split") if c not in frame.columns]
    if missing:
        raise AuditError(f"the dataset lacks the column(s) {', '.join(missing)}: it is not a multi-label dataset")
    if frame.empty:
        raise AuditError("the dataset has no rows to audit")
    texts = frame["text"].astype(str).tolist()
    stored = frame[LABELS].fillna("[]").astype(str).tolist()
    sets = [sorted(decode(v)) for v in stored]
    splits = frame["split"].astype(str).to_numpy()
    tags = sorted(set().union(*map(set, sets)))
    embeddings, _ = embed_texts(texts, cfg, on_progress, should_stop)
    label_started = time.perf_counter()
    on_progress(0.55, "finding likely tag errors")
    proba = cv_tag_probabilities(texts, to_matrix(sets, tags), cfg, embeddings=embeddings, on_progress=on_progress,
                                 should_stop=should_stop)
    issues = tag_issues(proba, tags, sets, certainty=cfg.certainty)
    row_ids = frame[ROW_ID].astype(int).to_numpy() if ROW_ID in frame.columns else np.arange(len(frame))
    issues = issues.assign(row_id=row_ids[issues["row"]], split=splits[issues["row"]],
                           text=[texts[i] for i in issues["row"]], label=[stored[i] for i in issues["row"]])
    label_seconds = time.perf_counter() - label_started
    on_progress(0.82, "looking for near-duplicates and leakage")
    encoded = np.asarray([encode(s) for s in sets], dtype=object)
    dups = find_duplicates(texts, splits, embeddings, threshold=cfg.similarity, block_rows=cfg.block_rows)
    dups = dups.assign(text=[texts[i] for i in dups["row"]], label=encoded[dups["row"]],
                       duplicate_label=encoded[dups["duplicate_of"]])
    odd = oddities(texts, cfg.long_factor)
    odd = odd.assign(split=splits[odd["row"]], text=[texts[i] for i in odd["row"]], label=encoded[odd["row"]])
    # One (tag, split) pair per tag a row has: small_classes then counts the rows of each tag in each split.
    pairs = [(t, splits[i]) for i, s in enumerate(sets) for t in s]
    small = small_classes(np.asarray([t for t, _ in pairs]), np.asarray([s for _, s in pairs])) if pairs else []
    summary = {"source": cfg.source, "rows": len(frame), "rows_checked_for_label_issues": len(frame),
               "label_issues": int(issues["likely"].sum()), "possible_label_issues": int((~issues["likely"]).sum()),
               "certainty": cfg.certainty, "near_duplicates": len(dups), "leakage": int(dups["leak"].sum()),
               "conflicting_duplicates": int((dups["label"] != dups["duplicate_label"]).sum()),
               **{k: int((odd["kind"] == k).sum()) for k in ("empty", "long", "other_script")},
               "small_classes": len(small), "embeddings": cfg.embeddings, "tags": tags,
               "issues_per_tag": issues_per_tag(issues, tags), "label_issue_seconds": round(label_seconds, 2),
               "seconds": round(time.perf_counter() - started, 2)}
    return AuditResult(summary=summary, label_issues=issues[TAG_ISSUE_COLUMNS], duplicates=dups[DUP_COLUMNS],
                       oddities=odd[ODD_COLUMNS], small_classes=small, zero_label=None, embeddings=embeddings)


def cv_tag_probabilities(texts: Sequence[str], y: np.ndarray, cfg: AuditConfig, *,
                         embeddings: np.ndarray | None = None, on_progress: Progress = lambda f, t: None,
                         should_stop: Callable[[], bool] = lambda: False) -> np.ndarray:
    """Out-of-fold probability of each tag on each row (N, K) from one-vs-rest logistic regressions.

    As for one label per text, the vectorizer uses no labels, so it is fitted once on every text, and the
    regressions on the MiniLM embeddings (when given) are averaged in: two models that err on different texts.
    A tag constant in a fold's training rows is predicted as that constant (sklearn's one-vs-rest does it).
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold
    from sklearn.multiclass import OneVsRestClassifier

    if y.shape[1] == 0:
        raise AuditError("the audit needs at least one tag set on some row")
    if len(texts) < 2 * cfg.folds and len(texts) < 4:
        raise AuditError(f"the audit needs at least 4 rows, the dataset has {len(texts)}")
    tf = TfidfConfig()
    vectorizer = TfidfVectorizer(ngram_range=tuple(tf.ngram_range), sublinear_tf=tf.sublinear_tf, min_df=tf.min_df,
                                 max_features=tf.max_features)
    try:
        features = vectorizer.fit_transform(list(texts))
    except ValueError as exc:  # "empty vocabulary": every text blank
        raise AuditError(f"could not build the TF-IDF features: {exc}") from exc
    folds = max(2, min(cfg.folds, len(texts) // 2))
    proba = np.zeros(y.shape, dtype=np.float64)
    splitter = KFold(n_splits=folds, shuffle=True, random_state=cfg.seed)
    for k, (fit, held) in enumerate(splitter.split(features)):
        if should_stop():
            raise AuditCancelled()
        # liblinear, as the multi-label TF-IDF baseline: K small binary problems, each fast on sparse rows. Balanced
        # weights, as a tag is a rare yes among many noes: unweighted, a ticket saying "charge refund" got 0.39 for
        # billing; balanced, fewer clean rows were flagged (0-1 against 1-2 of 180) and more suggested sets were
        # the true ones (52 of 54 corrupted rows found against 49, write_tickets seeds 0-2).
        clf = OneVsRestClassifier(LogisticRegression(C=tf.C, max_iter=tf.max_iter, solver="liblinear",
                                                     class_weight="balanced"))
        proba[held] = _fold_proba(clf, features[fit], y[fit], features[held])
        if embeddings is not None:
            dense = np.asarray(embeddings)
            with one_blas_thread():
                dense_clf = OneVsRestClassifier(LogisticRegression(C=tf.C, max_iter=tf.max_iter,
                                                                   class_weight="balanced"))
                dense_proba = _fold_proba(dense_clf, dense[fit], y[fit], dense[held])
            proba[held] = (proba[held] + dense_proba) / 2
        on_progress(0.55 + 0.25 * (k + 1) / folds, f"cross-validated tag models: fold {k + 1} of {folds}")
    return proba


def probe(frame: pd.DataFrame, cfg: AuditConfig, embeddings: np.ndarray | None) -> None:
    """What the audit estimate times on a sample: the cross-validated tag probabilities, the costly step (cleanlab's
    filter on them takes a fraction of it, and importing it in the page's process is left to the audit's worker)."""
    sets = [decode(v) for v in frame[LABELS].fillna("[]").astype(str)]
    tags = sorted(set().union(*map(set, sets)))
    cv_tag_probabilities(frame["text"].astype(str).tolist(), to_matrix(sets, tags), cfg, embeddings=embeddings)


def _fold_proba(clf: Any, x_fit: Any, y_fit: np.ndarray, x_held: Any) -> np.ndarray:
    import warnings

    with warnings.catch_warnings():  # "label not present in all training examples": a tag absent from a fold
        warnings.simplefilter("ignore", UserWarning)
        clf.fit(x_fit, y_fit)
        return np.asarray(clf.predict_proba(x_held), dtype=np.float64).reshape(x_held.shape[0], y_fit.shape[1])


def tag_issues(proba: np.ndarray, tags: Sequence[str], sets: Sequence[Sequence[str]], *,
               certainty: float) -> pd.DataFrame:
    """Rows cleanlab's multi-label filter flags: the tags likely missing and likely wrong, the suggested set, a
    score (1 - cleanlab's label quality) and `likely` (a tag's given state has a calibrated held-out probability
    below 1 - certainty). Sorted by score, most suspicious first."""
    from cleanlab.multilabel_classification.filter import find_label_issues
    from cleanlab.multilabel_classification.rank import get_label_quality_scores

    tags = list(tags)
    y = to_matrix(sets, tags).astype(int)
    proba = np.column_stack([_calibrated(proba[:, j], y[:, j]) for j in range(len(tags))])
    labels = [list(np.flatnonzero(row)) for row in y]
    flagged = np.flatnonzero(find_label_issues(labels=labels, pred_probs=proba)) if len(tags) > 1 \
        else np.flatnonzero(_one_tag_issues(y[:, 0], proba[:, 0]))
    quality = get_label_quality_scores(labels=labels, pred_probs=proba) if len(tags) > 1 else \
        np.where(y[:, 0] == 1, proba[:, 0], 1.0 - proba[:, 0])
    given = np.where(y == 1, proba, 1.0 - proba)  # the probability of each tag's state as given
    records = []
    for i in flagged:
        said = proba[i] >= SET_AT
        records.append({"row": int(i), "suggested": [t for t, on in zip(tags, said, strict=True) if on],
                        "missing": [tags[j] for j in np.flatnonzero(said & (y[i] == 0))],
                        "wrong": [tags[j] for j in np.flatnonzero(~said & (y[i] == 1))],
                        "score": round(float(1.0 - quality[i]), 4),
                        "likely": bool(given[i].min() < 1.0 - certainty)})
    out = pd.DataFrame(records, columns=["row", "suggested", "missing", "wrong", "score", "likely"])
    out = out.astype({"row": int, "score": float, "likely": bool})
    return out.sort_values(["score", "row"], ascending=[False, True], kind="stable").reset_index(drop=True)


def _calibrated(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    # One tag's probabilities sharpened by the temperature that best predicts its given states (never softened):
    # the classification audit's reason, a regression fitted on a few hundred rows is timid.
    if y.min() == y.max():
        return p
    pair = np.column_stack([1.0 - p, p]).clip(1e-6, 1.0 - 1e-6)
    return temperature_calibrated(pair, y)[:, 1]


def _one_tag_issues(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    from cleanlab.filter import find_label_issues

    if y.min() == y.max():
        return np.zeros(len(y), dtype=bool)
    return find_label_issues(y, np.column_stack([1.0 - p, p]), filter_by="prune_by_noise_rate")


def issues_per_tag(issues: pd.DataFrame, tags: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per tag, how many flagged rows likely miss it and how many likely have it wrongly (the tab's chart)."""
    out = {t: {"missing": 0, "wrong": 0} for t in tags}
    for kind in ("missing", "wrong"):
        for found in issues[kind]:
            for tag in found:
                out[tag][kind] += 1
    return out


def suggested_changes(issues: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Relabel changes (core.data.versions) that give each issue's row its suggested tag set."""
    changes = []
    for issue in issues:
        wanted = sorted(issue["suggested"])
        if wanted != sorted(decode(issue["label"])):
            changes.append({"action": "relabel", "row": int(issue["row"]), "split": issue["split"],
                            "text": issue["text"], "label": issue["label"], "row_id": int(issue["row_id"]),
                            "to": wanted})
    return changes
