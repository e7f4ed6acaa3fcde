"""The few-shot model behind the Label page: a SetFit run on the dataset being labelled, started in the background
every N new labels, that trains on the labels given so far and scores every text for suggestions and uncertainty.
What it trains is its label set's task's `labelling.retrain`: one label a text here, tag sets in core.multilabel.

Each such run also records the cross-validated accuracy of a logistic head on the (frozen) MiniLM embeddings of
the labels it saw: one point of the page's learning curve, cheap enough to compute at every retrain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from core import settings
from core.data.storage import load_frame
from core.labelling.pool import LabelState, label_state, labelled_frame, pool_task
from core.labelling.strategy import embed_pool, margins
from core.runs import jobs, registry
from core.runs.context import RunContext
from core.runs.files import RunFiles
from core.settings import dataset_dir
from core.tasks import resolve as resolve_reference
from core.text.config import TrainingError
from core.text.fewshot import config_from_dict, cross_validated_scores, resolve, save_fewshot, train_on
from core.text.serving import ArtifactError, read_meta
from db import labelling as label_queries
from db import read_scope
from db.enums import LABEL_RETRAIN_KIND, RunStatus
from db.models import Dataset

POOL_SPLIT = "pool"  # predictions/pool.parquet: the model's probabilities for every text of the dataset
DEFAULT_RETRAIN_EVERY = 24
RETRAIN_KIND = LABEL_RETRAIN_KIND  # Run.model_kind of a retrain (a job kind in core.runs.registry)
# Background retrains only feed suggestions and uncertainty, so they trade a little accuracy for speed: 4 pair
# iterations (setfit's default is 20) and at most 480 pairs, 12 steps at 24 labels and never more than 30.
# A SetFit run started from the Train page uses the full defaults.
RETRAIN_OPTIONS = {"num_iterations": 4, "max_pairs": 480}
TAG_THRESHOLD = 0.5  # a tag is suggested at this probability: too few labels to tune a threshold per tag on



@dataclass(frozen=True)
class PoolScores:
    run_id: int
    labels: list[str]
    rows: np.ndarray  # (n,) row indices into the dataset
    proba: np.ndarray  # (n, len(labels)): one distribution a row, or (tag sets) each tag's own probability
    thresholds: tuple[float, ...] = ()  # tag sets: the probability at which each tag is suggested

    def _row(self, row: int) -> np.ndarray | None:
        hit = np.flatnonzero(self.rows == row)
        return self.proba[hit[0]] if len(hit) else None

    def suggestion(self, row: int) -> tuple[str, float] | None:
        p = self._row(row)
        if p is None:
            return None
        return self.labels[int(p.argmax())], float(p.max())

    def suggested_tags(self, row: int) -> dict[str, float] | None:
        """Tag sets: the tags whose probability reaches their threshold, with it (None: the row was not scored)."""
        p = self._row(row)
        if p is None:
            return None
        cuts = self.thresholds or (TAG_THRESHOLD,) * len(self.labels)
        return {t: float(v) for t, v, cut in zip(self.labels, p, cuts, strict=True) if v >= cut}

    @property
    def margins(self) -> np.ndarray:
        """Per row, small = the model hesitates: top-1 minus top-2 of a distribution; for tag sets, twice the
        distance to its threshold of the tag nearest it."""
        if not self.thresholds:
            return margins(self.proba)
        return 2 * np.abs(self.proba - np.asarray(self.thresholds)).min(axis=1)


@dataclass(frozen=True)
class RetrainStatus:
    active_run_id: int | None  # a retrain queued or running
    latest_completed_id: int | None
    new_labels: int  # labels given since the latest retrain started


def execute_retrain(ctx: RunContext) -> dict[str, Any]:
    """The retrain job's executor (core.runs.worker calls it): SetFit on the labels given so far."""

    cfg = config_from_dict(ctx.config)
    ctx.progress(0.0, "loading data", force=True)
    return execute_pool_run(ctx, cfg, ctx.dataset())


def execute_pool_run(ctx: RunContext, cfg: Any, dataset: Dataset) -> dict[str, Any]:
    """Train on the labels given so far, score every text, save the model and the pool's probabilities, as the
    label set's task trains (`labelling.retrain`)."""

    with read_scope() as s:
        state = label_state(s, dataset.id)
    texts = load_frame(dataset)["text"].astype(str)
    return resolve_reference(state.labelling.retrain)(ctx, cfg, dataset, state, texts)


def train_on_classes(ctx: RunContext, cfg: Any, dataset: Dataset, state: LabelState, texts: pd.Series
                     ) -> dict[str, Any]:
    """One-label labelling's `retrain`: single-label SetFit on the classes given so far, plus a learning-curve
    point (the cross-validated accuracy of a logistic head on the frozen embeddings)."""
    labelled = labelled_frame(texts, state)
    names = [c for c in state.class_names if c in set(labelled["label"])]
    if len(names) < 2:
        raise TrainingError(f"dataset '{dataset.name}' needs labels of at least two classes before a model can "
                            f"learn (has {len(labelled)} labels of {len(names)} class)")
    y = np.array([names.index(v) for v in labelled["label"]])
    ctx.progress(0.01, "embedding the texts for the learning curve", force=True)
    embeddings = embed_pool(texts.tolist(), dataset_dir(dataset.id))
    cv = cross_validated_scores(embeddings[labelled["row_index"].to_numpy()], y, seed=cfg.seed)
    device = resolve(cfg.device)
    ctx.set_device(device)
    model, train_time = train_on(ctx, cfg, labelled["text"].tolist(), labelled["label"].tolist(), names, device)
    ctx.progress(0.92, f"scoring all {len(texts)} texts", force=True)
    proba = model.predict_proba(texts.tolist())
    files = ctx.files
    files.predictions_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"row_index": np.arange(len(texts)), "pred": [names[i] for i in proba.argmax(axis=1)],
                  "confidence": proba.max(axis=1), "proba": [row.tolist() for row in proba]}
                 ).to_parquet(files.predictions(POOL_SPLIT), index=False)
    save_fewshot(model, files.model)
    # meta.json names the model it saved (SetFit), not the job, so serving loads it like any SetFit run.
    files.write_meta({"kind": registry.model_of_job(ctx.model_kind).name, "task": str(ctx.task), "labels": names,
                      "max_length": cfg.max_length, "model_id": cfg.model_id, "dataset_id": ctx.dataset_id,
                      "pool": True, "n_labels": len(labelled)})
    metrics: dict[str, Any] = {"n_labels": len(labelled), "labels": names, "label_counts": state.counts,
                               "train_time_s": float(train_time), "device": device, "split": "cv"}
    if cv is not None:
        metrics.update(cv_accuracy=cv["accuracy"], cv_macro_f1=cv["macro_f1"])
        ctx.log_metric("cv_accuracy", cv["accuracy"], step=len(labelled), split="validation")
    return metrics


def retrain_status(s: Session, dataset_id: int) -> RetrainStatus:
    runs = label_queries.runs_of_kind(s, dataset_id, RETRAIN_KIND)
    active = next((r.id for r in runs if r.status.is_active), None)
    completed = next((r.id for r in runs if r.status is RunStatus.COMPLETED), None)
    since = runs[0].created_at if runs else None
    return RetrainStatus(active, completed, label_queries.count_labels_since(s, dataset_id, since))


def should_retrain(status: RetrainStatus, every: int, class_counts: dict[str, int]) -> bool:
    """Every `every` new labels, one retrain at a time, once two classes have labels."""
    two_classes = sum(1 for n in class_counts.values() if n > 0) >= 2
    return status.active_run_id is None and two_classes and status.new_labels >= max(1, every)


def start_retrain(s: Session, dataset_id: int, dataset_name: str, options: dict[str, Any] | None = None) -> int:
    """Queue a SetFit run on the dataset being labelled (its worker starts when `s` commits), of the task its labels
    make (a tag-set pool's retrain is a multi-label run, served as one)."""

    # The encoder is fixed in the run's config when it is queued, so the run records what it started from.
    chosen = {"model_id": model} if (model := settings.LABEL_MODEL.get()) else {}
    config = registry.get_kind(RETRAIN_KIND).make_config({**RETRAIN_OPTIONS, **chosen, **(options or {})})
    return jobs.start_run(s, dataset_id=dataset_id, model_kind=RETRAIN_KIND, config=config,
                          name=f"SetFit on the labels of {dataset_name}", task=pool_task(s, dataset_id))


def pool_scores(run_id: int) -> PoolScores | None:
    """The probabilities a completed retrain gave every text (None when its files are gone)."""

    files = RunFiles.of(run_id)
    path = files.predictions(POOL_SPLIT)
    if not path.exists():
        return None
    try:
        labels = read_meta(files).labels
    except ArtifactError:
        return None
    frame = pd.read_parquet(path)
    thresholds = tuple(float(t) for t in files.read_meta().get("pool_thresholds") or ())
    return PoolScores(run_id, labels, frame["row_index"].to_numpy(), np.array(frame["proba"].tolist()), thresholds)


def learning_curve(s: Session, dataset_id: int) -> list[tuple[int, float]]:
    """(labels, cross-validated accuracy) of every completed retrain, fewest labels first."""
    points = {}
    for run in label_queries.runs_of_kind(s, dataset_id, RETRAIN_KIND):
        metrics = run.metrics or {}
        if run.status is RunStatus.COMPLETED and isinstance(metrics.get("cv_accuracy"), (int, float)):
            points.setdefault(int(metrics["n_labels"]), float(metrics["cv_accuracy"]))  # newest run wins
    return sorted(points.items())
