"""Running a data health audit: as a background run (the worker calls `execute_audit`), or in-process for the
CLI; either way the result is stored with the dataset version (db.models.DataAudit).

Also turns an audit's findings and a user's marks into dataset-version changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, fields
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from core.data.storage import load_frame
from core.evaluation.analysis import proba_matrix
from core.evaluation.predictions import SPLITS, load_meta, load_predictions
from core.health.audit import AuditCancelled, AuditConfig, AuditError, AuditResult, parse_source
from core.health.confidence import calibration_of, prefilled
from core.runs.context import RunContext
from core.runs.jobs import completed_run, start_run
from core.runs.worker import RunCancelled
from core.tasks import all_tasks, get_task
from db import audits as audit_queries
from db import datasets as dataset_queries
from db import read_scope, session_scope
from db.enums import AUDIT_KIND
from db.models import DataAudit, Dataset


def build_config(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """The stored config of an audit run (the registry's build_config for the data_audit kind)."""
    known = {f.name for f in fields(AuditConfig)}
    unknown = sorted(set(options) - known - {"device"})
    if unknown:
        raise AuditError(f"option(s) {', '.join(unknown)} do not apply to a data audit")
    cfg = AuditConfig(**{k: v for k, v in options.items() if k in known})
    return {**asdict(cfg), "label_descriptions": dict(cfg.label_descriptions), "device": "cpu"}


def config_from_dict(config: dict[str, Any]) -> AuditConfig:
    known = {f.name for f in fields(AuditConfig)}
    return AuditConfig(**{k: v for k, v in config.items() if k in known})


def start_audit(s: Session, dataset_id: int, options: dict[str, Any] | None = None, *,
                estimate_s: float | None = None) -> int:
    """Queue an audit of a dataset in the caller's transaction (its worker starts after commit); the run id.
    `estimate_s`: its pre-flight estimate (core.health.estimate), so a short audit never waits behind a long run."""

    dataset = _auditable_dataset(s, dataset_id)
    config = build_config(AUDIT_KIND, dict(options or {}))
    if parse_source(config["source"]) is not None:
        run_probabilities(s, dataset, parse_source(config["source"]), None)  # a bad source fails now, not later
    return start_run(s, dataset_id=dataset.id, model_kind=AUDIT_KIND, config=config,
                     name=f"data audit of {dataset.name}"[:200], estimate_s=estimate_s)


def execute_audit(ctx: RunContext) -> dict[str, Any]:
    """The worker's entry point for a data_audit run: audit, store, return the counts as the run's metrics."""

    try:
        result = audit_dataset(ctx.dataset_id, config_from_dict(ctx.config), run_id=ctx.run_id,
                               on_progress=ctx.progress, should_stop=ctx.should_stop)
    except AuditCancelled as exc:
        raise RunCancelled() from exc
    return result.summary


def audit_dataset(dataset_id: int, cfg: AuditConfig, *, run_id: int | None = None,
                  on_progress: Callable[[float, str], None] = lambda f, t: None,
                  should_stop: Callable[[], bool] = lambda: False) -> AuditResult:
    """Audit a stored dataset and store the result with it; the dataset itself is only read."""
    with read_scope() as s:  # only while reading: the audit itself may take a minute
        dataset = _auditable_dataset(s, dataset_id)
        audit = get_task(dataset.task).part("audit")
        frame = load_frame(dataset)
        source_run = parse_source(cfg.source)
        probabilities = run_probabilities(s, dataset, source_run, frame) if source_run is not None else None
    result = audit(frame, cfg, run_probabilities=probabilities, on_progress=on_progress, should_stop=should_stop,
                   dataset_id=dataset_id)
    config = {**asdict(cfg), "label_descriptions": dict(cfg.label_descriptions)}
    with session_scope() as w:
        result.audit_id = audit_queries.add_audit(
            w, dataset_id=dataset_id, run_id=run_id, source=cfg.source, config=config, summary=result.summary,
            findings=result.findings(), zero_label=result.zero_label).id
    return result


def run_probabilities(s: Session, dataset: Dataset, run_id: int,
                      frame: pd.DataFrame | None) -> tuple[np.ndarray, list[str], np.ndarray] | None:
    """A completed run's held-out probabilities (validation and test) matched to the dataset's rows."""

    if not get_task(dataset.task).audit_from_runs:
        raise AuditError(f"'{dataset.name}' holds {get_task(dataset.task).holds}: audit it with source cv, not a "
                         "run's predictions")
    run = completed_run(s, run_id, dataset.task, "be an audit source")
    if run.dataset_id != dataset.id:
        raise AuditError(f"run {run_id} was trained on another dataset (id {run.dataset_id}), not "
                         f"'{dataset.name}': its predictions cannot audit these rows")
    if frame is None:
        return None
    names = [str(x) for x in load_meta(run_id).get("labels") or []]
    slots = _row_slots(frame)
    probas, rows, used = [], [], set()
    for split in SPLITS:
        preds = load_predictions(run_id, split)
        proba = proba_matrix(preds, names)
        if proba is None:
            raise AuditError(f"run {run_id}'s {split} predictions carry no class probabilities to audit with")
        for i, (text, label) in enumerate(zip(preds["text"].astype(str), preds["label"], strict=True)):
            found = slots.get((split, text, label)) or slots.get(("*", text, label))
            row = next((r for r in found or [] if r not in used), None)
            if row is not None:  # each stored row takes one prediction, duplicates in turn
                used.add(row)
                probas.append(proba[i])
                rows.append(row)
    if not rows:
        raise AuditError(f"none of run {run_id}'s predictions match a row of '{dataset.name}'")
    return np.asarray(probas), names, np.asarray(rows, dtype=int)


def _row_slots(frame: pd.DataFrame) -> dict[tuple[str, str, str], list[int]]:
    # A run may have cut its validation split out of train, so a prediction is looked up in its split first
    # and then anywhere ("*") by text and label.
    slots: dict[tuple[str, str, str], list[int]] = {}
    for row, (text, label, split) in enumerate(zip(frame["text"].astype(str), frame["label"].astype(str),
                                                   frame["split"].astype(str), strict=True)):
        slots.setdefault((split, text, label), []).append(row)
        slots.setdefault(("*", text, label), []).append(row)
    return slots


def _auditable_dataset(s: Session, dataset_id: int) -> Dataset:
    dataset = dataset_queries.require_dataset(s, dataset_id, AuditError)
    if get_task(dataset.task).audit is None:
        names = ", ".join(t.holds for t in all_tasks() if t.audit is not None)
        raise AuditError(f"dataset '{dataset.name}' holds {get_task(dataset.task).holds}: only datasets of "
                         f"{names} can be audited")
    return dataset


# --- from findings and marks to a dataset version -------------------------------------------------------------

def automatic_changes(audit: DataAudit, *, relabel_suggested: bool, exclude_duplicates: bool,
                      exclude_possible: bool = False, min_score: float | None = None) -> list[dict[str, Any]]:
    """Changes that relabel the likely label errors scored at least `min_score` (default: the cut measured at
    PREFILL_PRECISION on real labels for the audit's mode, core.health.confidence; the same rows the tab
    pre-fills) to their suggestion and/or drop every duplicate (not the row kept). Possible label errors
    (flagged, but below the audit's certainty) are left for a person to judge, or dropped with
    `exclude_possible`: worth it when many labels are wrong (15 % flipped on tweets: 42 % of the macro-F1 the
    noise cost TF-IDF came back), harmful when few are (5 %: it undid what relabelling gained for the fine-tuned
    Transformer). BENCHMARKS.md, "Data health"."""
    findings = audit.findings or {}
    changes: list[dict[str, Any]] = []
    excluded = set()
    if exclude_duplicates:
        for d in findings.get("duplicates", []):
            excluded.add(int(d["row"]))
            changes.append({"action": "exclude", "row": int(d["row"]), "split": d["split"], "text": d["text"],
                            "label": d["label"]})
    if exclude_possible:
        for issue in findings.get("label_issues", []):
            if int(issue["row"]) not in excluded and not issue.get("likely", True):
                excluded.add(int(issue["row"]))
                changes.append({"action": "exclude", "row": int(issue["row"]), "split": issue["split"],
                                "text": issue["text"], "label": issue["label"]})
    if relabel_suggested:
        cut = calibration_of(audit.summary).cut if min_score is None else min_score
        for issue in prefilled(findings.get("label_issues", []), cut):  # audits before tiers: all likely
            if int(issue["row"]) not in excluded:
                changes.append({"action": "relabel", "row": int(issue["row"]), "split": issue["split"],
                                "text": issue["text"], "label": issue["label"], "to": issue["suggested"]})
    return changes


def marks_to_changes(marks: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of the Data health editor marked `exclude` or given a `relabel_to` label, as row-level changes."""
    changes = []
    for row in marks.itertuples(index=False):
        target = row.relabel_to if isinstance(row.relabel_to, str) and row.relabel_to else None
        base = {"row": int(row.row), "split": row.split, "text": row.text, "label": row.label}
        if bool(row.exclude):
            changes.append({"action": "exclude", **base})
        elif target is not None and target != row.label:
            changes.append({"action": "relabel", **base, "to": target})
    return changes
