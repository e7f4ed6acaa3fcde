"""Labelling texts with tag sets on the Label page (core.labelling): the labelled rows saved as a multi-label dataset,
and the background retrain that suggests tags, multi-label SetFit on the tag sets given so far.

SetFit, not TF-IDF: it is what the one-label retrain trains, it learns from a couple of dozen texts where word
counts barely can, and with RETRAIN_OPTIONS' few pairs it takes seconds to a minute on a CPU (the same budget).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from core.data.types import ParsedTable, PreparedDataset, SplitConfig
from core.labelling.pool import LabelState, labelled_frame
from core.labelling.retrain import POOL_SPLIT, TAG_THRESHOLD
from core.multilabel.dataset import MultilabelMapping, MultilabelOptions, prepare_multilabel
from core.multilabel.fewshot import save_setfit_tagger, train_setfit_tags
from core.multilabel.labels import JSON_LIST, TagFormat, decode, encode, to_matrix
from core.multilabel.serving import THRESHOLDS_FILE
from core.runs import registry
from core.runs.context import RunContext
from core.text.config import TrainingError
from core.text.fewshot import resolve
from db.models import Dataset

# A tag the labels so far put on too few rows for every split, or on every row, is left out of the saved version
# (and said so in its warnings) rather than refusing to save: labelling goes on, and a later version has it.
SAVE_OPTIONS = MultilabelOptions(drop_rare=True, drop_constant=True)


def prepare_labelled(table: ParsedTable, split: SplitConfig) -> PreparedDataset:
    """Tag-set labelling's `prepare`: the labelled texts (tags stored encoded) as a multi-label dataset."""
    mapping = MultilabelMapping("text", TagFormat(JSON_LIST, columns=("label",)))
    return prepare_multilabel(table, mapping, split, SAVE_OPTIONS)


def learnable_tags(y: np.ndarray) -> list[int]:
    """The tags a model can learn from the labels so far: on some labelled rows and absent from others."""
    on = y.sum(axis=0)
    return [j for j in range(y.shape[1]) if 0 < on[j] < len(y)]


def train_on_tag_sets(ctx: RunContext, cfg: Any, dataset: Dataset, state: LabelState, texts: pd.Series
                      ) -> dict[str, Any]:
    """Tag-set labelling's `retrain`: multi-label SetFit on the tag sets given so far, then every text scored.

    A tag no labelled row has, or every one has, is not learnt: its probability is that share (0 or 1)."""
    labelled = labelled_frame(texts, state)
    names = state.class_names
    y = to_matrix([decode(v) for v in labelled["label"]], names)
    learnt = learnable_tags(y)
    if len(learnt) < 2:
        raise TrainingError(f"dataset '{dataset.name}' needs at least two tags that some labelled texts have and "
                            f"others lack before a model can learn ({len(labelled)} texts labelled)")
    tags = [names[j] for j in learnt]
    device = resolve(cfg.device)
    ctx.set_device(device)
    model = train_setfit_tags(ctx, labelled["text"].tolist(), y[:, learnt], tags, cfg, device)
    ctx.progress(0.92, f"scoring all {len(texts)} texts", force=True)
    proba = np.tile(y.mean(axis=0).astype(np.float64), (len(texts), 1))
    proba[:, learnt] = model.predict_proba(texts.tolist())
    files = ctx.files
    files.predictions_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"row_index": np.arange(len(texts)),
                  "pred": [encode([t for t, p in zip(names, row, strict=True) if p >= TAG_THRESHOLD]) for row in proba],
                  "proba": [row.tolist() for row in proba]}).to_parquet(files.predictions(POOL_SPLIT), index=False)
    save_setfit_tagger(model, files.model)
    # thresholds.json is what serving reads: the run serves as a multi-label SetFit run, its tags at 0.5
    (files.model / THRESHOLDS_FILE).write_text(json.dumps({"tags": tags, "per_tag": [TAG_THRESHOLD] * len(tags),
                                                           "global": TAG_THRESHOLD, "use": "global"}, indent=2))
    files.write_meta({"kind": registry.model_of_job(ctx.model_kind).name, "task": str(ctx.task), "labels": names,
                      "max_length": cfg.max_length, "model_id": cfg.model_id, "dataset_id": ctx.dataset_id,
                      "pool": True, "n_labels": len(labelled), "pool_thresholds": [TAG_THRESHOLD] * len(names)})
    return {"n_labels": len(labelled), "labels": names, "label_counts": state.counts, "learnt_tags": tags,
            "device": device, "split": "none"}
