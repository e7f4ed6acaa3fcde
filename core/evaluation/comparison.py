"""Comparing runs: against the TF-IDF baseline and the majority class, in leaderboards and at each K.

Works on stored metrics only (Run rows or db.runs.RunRecord views); the queries themselves live in db.runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from core.evaluation.predictions import EvaluationError, is_ranking, split_report
from core.evaluation.uncertainty import Interval, interval_from_dict
from core.metric_keys import (
    CLASSIFICATION_HEADLINE,
    CLASSIFICATION_METRICS,
    DISPLAY_K,
    RANKING_METRICS,
    at_k,
    compared_keys,
    ranking_keys,
)
from core.runs.registry import applicable_config, baseline_kind, find_kind
from core.tasks import get_task
from db import runs as run_queries
from db.enums import TaskKind
from db.models import Dataset, Run

# The metric keys a leaderboard shows, the only ones run_queries.run_records extracts from Run.metrics.
RECORD_METRICS = (*CLASSIFICATION_METRICS, "train_time_s", "device", "k", "by_k", "test_set", "intervals",
                  *ranking_keys())
# Config keys shown in a leaderboard even when every run agrees on them.
KEY_HYPERPARAMETERS = ("model_id", "epochs", "batch_size", "learning_rate", "max_length", "k", "factors", "seed")
METRIC_FRAME_COLUMNS = ["run_id", "name", "split", "step", "epoch", "value"]
ZERO_LABEL_COLUMN = "no labels (zero-label)"
INTERVAL_COLUMN = "95 % interval"


def baseline_run(s: Any, run: Any) -> Run | None:
    """The best completed run of the task's baseline kind (TF-IDF) on the same dataset by macro F1 (the bar a
    bigger model must clear); None for a baseline run itself, or a task without a baseline kind."""
    base = baseline_kind(run.task)
    if base is None or run.model_kind == base.name:  # the baseline is not measured against another baseline
        return None
    return run_queries.best_completed_run_of_kind(s, run.dataset_id, base.name, exclude_run_id=run.id,
                                                  metric_key=CLASSIFICATION_HEADLINE)


def baseline_caption(run: Any, baseline: Any) -> str:
    """One line on what a classification run is measured against: the baseline run, or why there is none."""
    base = baseline_kind(run.task)
    name = base.short_label if base is not None else "baseline"
    if base is not None and run.model_kind == base.name:  # the baseline has nothing of its kind to clear
        return f"This run is a {name} baseline: the bar the other models on this dataset must clear"
    if baseline is not None:
        return f"Baseline: {run_label(baseline)} (best {name} run on this dataset)"
    return f"No completed {name} run on this dataset to compare with"


def has_epochs(run: Any) -> bool:
    """Whether the run's kind trains in epochs (and so has learning curves); unregistered kinds may."""
    kind = find_kind(run.model_kind)
    return kind is None or kind.has_epochs


def baseline_report(baseline: Any, split: str) -> dict[str, Any] | None:
    """The baseline's figures on the same split as the run it is compared with (None if it has none)."""
    if baseline is None:
        return None
    try:
        return split_report(baseline, split)
    except EvaluationError:
        return None


def majority_scores(report: dict[str, Any]) -> dict[str, float]:
    """What always predicting the biggest class scores on each headline metric (zero_division=0).

    With p the majority rate and C classes: that class has precision p, recall 1, F1 2p/(1+p);
    every other class scores 0, so macro = those / C and weighted = p * those.
    """
    p, n_classes = float(report.get("majority_rate") or 0.0), len(report.get("labels") or []) or 1
    f1 = 2 * p / (1 + p) if p else 0.0
    return {"accuracy": p, "macro_precision": p / n_classes, "macro_recall": 1 / n_classes if p else 0.0,
            "macro_f1": f1 / n_classes, "weighted_precision": p * p, "weighted_recall": p, "weighted_f1": p * f1}


def baseline_column(task: str) -> str:
    """The headline table's column of the task's baseline kind, named by its registry entry ("TF-IDF baseline"
    for texts, "Linear probe baseline" for images)."""
    base = baseline_kind(task)
    return f"{base.short_label} baseline" if base is not None else "baseline"


def headline_table(report: dict[str, Any], baseline: dict[str, Any] | None,
                   zero_label: dict[str, Any] | None = None, intervals: dict[str, Interval] | None = None,
                   task: str = TaskKind.CLASSIFICATION) -> pd.DataFrame:
    """Each headline metric beside the task's baseline (baseline_column) and what the majority class would
    score; with `zero_label` (a data audit's figures for the split) also what label names alone score, and with
    `intervals` the run's 95 % bootstrap interval next to its figure."""
    column = baseline_column(task)
    majority = majority_scores(report)
    rows = []
    for key in CLASSIFICATION_METRICS:
        row: dict[str, Any] = {"metric": key.replace("_", " "), "this run": report.get(key)}
        if intervals:
            row[INTERVAL_COLUMN] = interval_text(intervals.get(key))
        row[column] = baseline.get(key) if baseline else None
        row["majority class"] = majority[key]
        if zero_label:
            row[ZERO_LABEL_COLUMN] = zero_label.get(key)
        rows.append(row)
    return pd.DataFrame(rows)


def settings_of(run: Any) -> dict[str, Any]:
    """The settings of a run that apply to its model kind (a TF-IDF run has no epochs or learning rate)."""
    return applicable_config(run.model_kind, run.config)


def config_differences(runs: Sequence[Any]) -> list[str]:
    """Settings whose values are not the same across the runs they apply to (what to highlight): TF-IDF
    runs never 'differ' in the epochs they did not use, nor from an LSTM run in its learning rate."""
    settings = [settings_of(r) for r in runs]
    keys = sorted({k for c in settings for k in c})
    return [k for k in keys if len({repr(c[k]) for c in settings if k in c}) > 1]


def run_label(run: Any) -> str:
    return f"#{run.id} {run.name or run.model_kind}"


def leaderboard(runs: Sequence[Any], sort_by: str | None = None) -> pd.DataFrame:
    """One row per run: model, headline metrics, key and differing hyperparameters, duration, device."""
    ranking = any(is_ranking(r) for r in runs)
    # Other leaderboards lead with their task's headline (what they are sorted by), then its compared metrics: a
    # multi-label one shows micro-F1, macro-F1, samples-F1 and subset accuracy, not a single-label run's figures.
    task = get_task(runs[0].task if runs else TaskKind.CLASSIFICATION)
    metric_keys = compared_keys(ranking) if ranking else \
        [task.headline.key, *(k for k in task.metrics if k != task.headline.key)]
    differing = config_differences(runs) if len(runs) > 1 else []
    settings = {r.id: settings_of(r) for r in runs}
    params = [k for k in KEY_HYPERPARAMETERS if any(k in settings[r.id] for r in runs)]
    params += [k for k in differing if k not in params]
    rows = []
    for r in runs:
        m = r.metrics or {}
        row: dict[str, Any] = {"run": r.id, "name": r.name or "", "model": r.model_kind, "dataset": r.dataset_id}
        values = ranking_metrics_at(r) if is_ranking(r) else m
        row.update({k: values.get(k) for k in metric_keys})
        row[f"{metric_keys[0]} {INTERVAL_COLUMN}"] = interval_text(stored_interval(m, metric_keys[0]))
        row.update({k: _plain(settings[r.id].get(k)) for k in params})
        row["test set"] = test_set_label(m.get("test_set"))
        row["duration_s"] = m.get("train_time_s", r.duration_s)
        row["device"] = r.device or m.get("device")
        rows.append(row)
    frame = pd.DataFrame(rows)
    sort_by = sort_by or metric_keys[0]
    if not frame.empty and sort_by in frame.columns:
        frame = frame.sort_values(sort_by, ascending=False, na_position="last", kind="stable")
    return frame.reset_index(drop=True)


def interval_text(interval: Interval | None) -> str:
    return f"{interval.ci_low:.3f} – {interval.ci_high:.3f}" if interval is not None else "-"


def stored_interval(metrics: dict[str, Any], key: str, split: str = "test") -> Interval | None:
    """An interval stored on a run when it completed (runs from before intervals have none)."""
    return interval_from_dict((((metrics or {}).get("intervals") or {}).get(split) or {}).get(key))


def test_set_label(stored: Any) -> str:
    """A run's test set as a leaderboard shows it: "tweets test set (60 rows)", or "-" for older runs."""
    if not isinstance(stored, dict):
        return "-"
    return f"{stored.get('name') or 'test set'} ({int(stored.get('rows') or 0):,} rows)"


def _plain(value: Any) -> Any:
    # dataframes want scalars; lists/dicts are shown as text
    return value if value is None or isinstance(value, (int, float, str, bool)) else repr(value)


def metric_frame(s: Any, run_ids: Iterable[int]) -> pd.DataFrame:
    """The metric points of several runs in one long frame (run_id, name, split, step, epoch, value)."""
    return pd.DataFrame(run_queries.metric_point_rows(s, run_ids), columns=METRIC_FRAME_COLUMNS)


def ranking_by_k(run: Run) -> dict[int, dict[str, float]]:
    """{K: {metric: value}} from a recommender run's stored metrics, K ascending."""
    by_k = (run.metrics or {}).get("by_k") or {}
    return {int(k): {m: float(v) for m, v in vals.items() if isinstance(v, (int, float))}
            for k, vals in sorted(by_k.items(), key=lambda kv: int(kv[0]))}


def ranking_metrics_at(run: Any, k: int = DISPLAY_K) -> dict[str, float | None]:
    """'<metric>@K' (and coverage) at one K, from by_k when the run's own K is another one."""
    m = run.metrics or {}
    measured = (m.get("by_k") or {}).get(str(k)) or {}
    out: dict[str, float | None] = {at_k(name, k): measured.get(name, m.get(at_k(name, k)))
                                    for name in RANKING_METRICS if name != "coverage"}
    out["coverage"] = measured.get("coverage", m.get("coverage") if m.get("k", k) == k else None)
    return out


def ranking_baseline_table(run: Any) -> pd.DataFrame | None:
    """Each ranking metric at the run's K beside the popularity baseline measured on the same split
    (None for runs trained before the baseline was stored)."""
    m = run.metrics or {}
    k = int(m.get("k", DISPLAY_K))
    mine = (m.get("by_k") or {}).get(str(k)) or {}
    popular = (((m.get("baseline") or {}).get("by_k")) or {}).get(str(k))
    if not popular or not mine:
        return None
    return pd.DataFrame([{"metric": at_k(name, k), "this run": mine.get(name),
                          "popularity baseline": popular.get(name)} for name in RANKING_METRICS if name in mine])


def ranking_headline(run: Run) -> dict[str, Any]:
    m = run.metrics or {}
    return {key: m.get(key) for key in ranking_keys(int(m.get("k", DISPLAY_K))) if key in m}


def lineage_root(datasets: Sequence[Dataset], dataset_id: int) -> int:
    """The first ancestor of a dataset (versions made from errors compare with their parent's runs)."""
    parents = {d.id: d.parent_id for d in datasets}
    seen: set[int] = set()
    while parents.get(dataset_id) and dataset_id not in seen:
        seen.add(dataset_id)
        dataset_id = int(parents[dataset_id])  # type: ignore[arg-type]
    return dataset_id
