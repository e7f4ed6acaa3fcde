"""The data health audit of an image dataset (the images task's `audit` entry): near-duplicate images and likely
label errors, both read from the frozen EfficientNet-Lite0 embeddings the linear probe uses.

Every image is embedded once (core.images.training.embed, batched). Near-duplicates are pairs whose embeddings'
cosine is at least `similarity` (exact copies share a content key and are reported at import; an audit lists them
too, marked `exact`). Label errors are cleanlab's confident learning (core.health.audit.label_issues, the text
audit's filter, calibration and tiers) on out-of-fold probabilities of a logistic regression on the embeddings,
the linear probe's model fitted k times. Findings point at rows by their position in the stored frame and carry
the row id and image key, so a suggestion becomes a relabel of that row in a new dataset version.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from core.data.storage import ROW_ID, load_frame
from core.health import audit as text_audit
from core.health.audit import AuditCancelled, AuditConfig, AuditError, AuditResult, Progress
from core.health.duplicates import find_duplicates
from core.health.jobs import config_from_dict
from core.images import IMAGE, PATH
from core.images.nets import build_lite0
from core.images.pixels import image_batches
from core.images.training import embed, split_loader
from core.runs.device import one_blas_thread
from core.runs.timing import startup_seconds
from core.text.estimate import Estimate, estimate_from_parts

log = logging.getLogger(__name__)

EMBED_BATCH = 64
PROBE_IMAGES = 32  # images the pre-flight estimate embeds: the backbone costs the same per image at any count
IMAGE_ISSUE_COLUMNS = [*text_audit.ISSUE_COLUMNS, ROW_ID, IMAGE]
IMAGE_DUP_COLUMNS = [*text_audit.DUP_COLUMNS, ROW_ID, IMAGE, "duplicate_image", "duplicate_text", "exact"]


def audit_images(frame: pd.DataFrame, cfg: AuditConfig = AuditConfig(), *, run_probabilities: Any = None,
                 on_progress: Progress = lambda fraction, text: None,
                 should_stop: Callable[[], bool] = lambda: False, dataset_id: int | None = None) -> AuditResult:
    """Audit a stored image frame (image, label, split, path, row_id) of dataset `dataset_id`; nothing is changed."""
    if run_probabilities is not None or cfg.source != "cv":
        raise AuditError("an image dataset is audited with cross-validated probabilities only (source cv)")
    if dataset_id is None:
        raise AuditError("an image audit needs the dataset id: its images are read from the dataset's folder")
    started = time.perf_counter()
    frame = _labelled(frame)
    labels = frame["label"].astype(str).to_numpy()
    splits = frame["split"].astype(str).to_numpy()
    paths = frame[PATH].astype(str).to_numpy()
    keys = frame[IMAGE].astype(str).to_numpy()
    embeddings = embed_images(dataset_id, frame, cfg.image_size, on_progress, should_stop)
    label_started = time.perf_counter()
    on_progress(0.7, "finding likely label errors")
    proba, names, rows = cv_probabilities(embeddings, labels, cfg)
    if should_stop():
        raise AuditCancelled()
    issues = text_audit.label_issues(proba, names, rows, labels, certainty=cfg.certainty)
    at = issues["row"].to_numpy()
    issues = issues.assign(split=splits[at], text=paths[at], row_id=frame[ROW_ID].to_numpy()[at], image=keys[at])
    label_seconds = time.perf_counter() - label_started
    on_progress(0.9, "looking for near-duplicate images")
    dups = near_duplicates(embeddings, frame, cfg)
    small = text_audit.small_classes(labels, splits)
    summary = {"source": cfg.source, "rows": len(frame), "rows_checked_for_label_issues": len(rows),
               "label_issues": int(issues["likely"].sum()), "possible_label_issues": int((~issues["likely"]).sum()),
               "certainty": cfg.certainty, "near_duplicates": len(dups), "leakage": int(dups["leak"].sum()),
               "exact_duplicates": int(dups["exact"].sum()),
               "conflicting_duplicates": int((dups["label"] != dups["duplicate_label"]).sum()),
               "similarity": cfg.similarity, "image_size": cfg.image_size, "empty": 0, "long": 0,
               "other_script": 0, "small_classes": len(small), "embeddings": True,
               "label_issue_seconds": round(label_seconds, 2), "seconds": round(time.perf_counter() - started, 2)}
    oddities = pd.DataFrame(columns=text_audit.ODD_COLUMNS)  # texts' oddities; the import checked the files
    return AuditResult(summary=summary, label_issues=issues[IMAGE_ISSUE_COLUMNS], duplicates=dups[IMAGE_DUP_COLUMNS],
                       oddities=oddities, small_classes=small, zero_label=None, embeddings=embeddings)


def _labelled(frame: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in (IMAGE, "label", "split", PATH) if c not in frame.columns]
    if missing:
        raise AuditError(f"the dataset lacks the column(s) {', '.join(missing)}: it is not an image dataset")
    if frame["label"].isna().any():
        raise AuditError("the dataset has unlabelled images: label them on the Label page before an audit")
    if frame.empty:
        raise AuditError("the dataset has no images to audit")
    if ROW_ID not in frame.columns:
        frame = frame.assign(**{ROW_ID: np.arange(len(frame), dtype=np.int64)})
    return frame.reset_index(drop=True)  # positions are the stored rows: findings and changes name them so


def embed_images(dataset_id: int, frame: pd.DataFrame, size: int, on_progress: Progress = lambda f, t: None,
                 should_stop: Callable[[], bool] = lambda: False) -> np.ndarray:
    """(N, 1280) unit vectors: each stored image through the linear probe's frozen backbone (progress 0.02-0.68)."""
    model, spec = build_lite0(["-", "-"], size)  # the head is never used: the pooled features are read
    on_progress(0.02, f"decoding {len(frame):,} images")
    batches = image_batches(split_loader(dataset_id, frame), len(frame), None, size=size, batch_size=EMBED_BATCH,
                            mean=spec.mean, std=spec.std,
                            on_progress=lambda f: on_progress(0.02 + 0.16 * f, f"decoding images ({f:.0%})"))

    def batch_done(done: int, total: int) -> None:
        if should_stop():
            raise AuditCancelled()
        on_progress(0.18 + 0.5 * done / max(total, 1), f"embedding images ({done:,}/{total:,})")

    features = embed(model, batches, "cpu", on_batch=batch_done)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def cv_probabilities(embeddings: np.ndarray, labels: np.ndarray,
                     cfg: AuditConfig) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Out-of-fold probabilities (M, C) of a logistic regression on the embeddings, the label names and the M rows'
    positions. Rows of classes with fewer than two images cannot be held out and are left out, as for texts."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    counts = pd.Series(labels).value_counts()
    names = sorted(str(c) for c, n in counts.items() if n >= 2)
    if len(names) < 2:
        raise AuditError("the audit needs at least two labels with two or more images each")
    rows = np.flatnonzero(np.isin(labels, names))
    y = np.searchsorted(names, labels[rows])
    folds = max(2, min(cfg.folds, int(counts[names].min())))
    # On the unit vectors as they are, not standardised as the linear probe's features are: with a few dozen
    # images a fold's regression on 1,280 standardised features memorised the planted mislabel and flagged a
    # correct disc beside it (held-out probability of its label 0.009); on the unit vectors only the planted one
    # fell below 0.8 (tests/test_images_health.py's shapes). Temperature calibration sharpens the timid result.
    clf = LogisticRegression(max_iter=1000, random_state=cfg.seed)
    with one_blas_thread():
        proba = cross_val_predict(clf, embeddings[rows], y, method="predict_proba",
                                  cv=StratifiedKFold(n_splits=folds, shuffle=True, random_state=cfg.seed))
    return np.asarray(proba, dtype=np.float64), names, rows


def near_duplicates(embeddings: np.ndarray, frame: pd.DataFrame, cfg: AuditConfig) -> pd.DataFrame:
    """One row per duplicate image (not the one kept, which is in the earliest split): both files and labels,
    the cosine, `leak` (they are in different splits) and `exact` (the same file content)."""
    blank = [""] * len(frame)  # no text to compare: only the embeddings make duplicates
    dups = find_duplicates(blank, frame["split"].astype(str).tolist(), embeddings, threshold=cfg.similarity,
                           block_rows=cfg.block_rows)
    row, kept = dups["row"].to_numpy(), dups["duplicate_of"].to_numpy()

    def column(name: str, at: np.ndarray) -> np.ndarray:
        return frame[name].astype(str).to_numpy()[at]

    return dups.assign(text=column(PATH, row), label=column("label", row), duplicate_label=column("label", kept),
                       row_id=frame[ROW_ID].to_numpy()[row], image=column(IMAGE, row),
                       duplicate_image=column(IMAGE, kept), duplicate_text=column(PATH, kept),
                       exact=column(IMAGE, row) == column(IMAGE, kept))


def estimate_image_audit(dataset: Any, model_kind: str, config: dict[str, Any]) -> Estimate:
    """The images task's audit estimate: the backbone timed on a few images and scaled to all of them (the
    regression and the pair search take a fraction of that)."""
    if dataset is None:
        raise AuditError("that dataset no longer exists")
    cfg = config_from_dict(config)
    parts = {"start-up": startup_seconds(model_kind)}
    start = time.perf_counter()
    frame = _labelled(load_frame(dataset))
    parts["loading data"] = time.perf_counter() - start
    sample = frame.sample(min(len(frame), PROBE_IMAGES), random_state=cfg.seed)
    start = time.perf_counter()
    embeddings = embed_images(dataset.id, sample, cfg.image_size)
    parts["embedding images"] = (time.perf_counter() - start) * len(frame) / len(sample)
    start = time.perf_counter()
    try:
        cv_probabilities(embeddings, sample["label"].astype(str).to_numpy(), cfg)
    except AuditError:  # a sample too small for every class: the whole dataset may still do
        log.info("the estimate's sample of %d images has too few of some class to time the label step", len(sample))
    parts["label errors"] = (time.perf_counter() - start) * len(frame) / len(sample)
    seconds = sum(parts.values())
    return estimate_from_parts(parts, peak_memory_bytes=None, warning=None,
                               samples_per_s=len(frame) / seconds if seconds > 0 else None)
