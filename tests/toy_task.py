"""A task that lives outside core/: texts with a numeric score, and one model kind that predicts the mean score.

Loaded through PROTOLAB_MODEL_KINDS=tests.toy_task, it shows that adding a task is one task entry, one model
kind and their module: the Datasets, Train and Evaluate pages, the CLI, the worker and the API pick it up
without another file changing.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from core.data.storage import content_digest, load_split
from core.data.types import DatasetError, ParsedTable, PreparedDataset, SplitConfig
from core.errors import ProtolabError
from core.runs import jobs
from core.runs.files import RunFiles
from core.runs.registry import ModelKind, register
from core.tasks import Demo, Figure, Headline, Task, register_task
from db import session_scope

TASK = "toy-scores"
KIND = "toy-mean"
_HERE = "tests.toy_task"


# --- what a dataset of the task holds: a text and its score, split at random -------------------------------
def upload(table: ParsedTable, split: SplitConfig, fid: str) -> PreparedDataset:
    columns = list(table.frame.columns)
    text = st.selectbox("Text column", columns, key=f"map_text_{fid}")
    score = st.selectbox("Score column", columns, index=min(1, len(columns) - 1), key=f"map_score_{fid}")
    scores = pd.to_numeric(table.frame[score], errors="coerce")
    if scores.isna().any():
        raise DatasetError(f"column '{score}' holds values that are not numbers")
    rng = np.random.default_rng(split.seed)
    cut = np.cumsum(np.asarray(split.fractions) * len(scores)).round().astype(int)
    order = rng.permutation(len(scores))
    names = np.empty(len(scores), dtype=object)
    for name, lo, hi in zip(("train", "validation", "test"), (0, *cut[:2]), cut, strict=True):
        names[order[lo:hi]] = name
    frame = pd.DataFrame({"text": table.frame[text].astype(str), "score": scores.astype(float), "split": names})
    return PreparedDataset(task=TASK, frame=frame, mapping={"text": text, "score": score},
                           stats={"mean_score": float(scores.mean())}, warnings=[], encoding=table.encoding,
                           source_filename=table.filename, content_hash=content_digest(frame.drop(columns="split")))


def profile(frame: pd.DataFrame) -> dict[str, Any]:
    return {"mean": float(frame["score"].mean()), "max": float(frame["score"].max())}


def inspect(summary: dict[str, Any], profile: dict[str, Any], column: Any) -> None:
    column.metric("Mean score", f"{profile['mean']:.2f}")


# --- training ---------------------------------------------------------------------------------------------
def train_form(dataset_id: int, run_model: str | None = None) -> None:
    if st.button("▶ Start", key="toy_start"):
        with session_scope() as s:
            run_id = jobs.start_run(s, dataset_id=dataset_id, model_kind=KIND, config={})
        st.query_params["run"] = str(run_id)


def build_config(name: str, options: dict[str, Any]) -> dict[str, Any]:
    if options:
        raise ProtolabError(f"the {name} model takes no options")
    return {}


def execute(ctx: Any) -> dict[str, Any]:
    mean = float(load_split(ctx.dataset(), "train")["score"].mean())
    test = load_split(ctx.dataset(), "test")["score"]
    ctx.files.model.mkdir(parents=True, exist_ok=True)
    (ctx.files.model / "mean.json").write_text(json.dumps({"mean": mean}))
    ctx.files.write_meta({"kind": KIND, "task": str(ctx.task), "dataset_id": ctx.dataset_id})
    return {"mae": float((test - mean).abs().mean()), "n_test": len(test)}


class MeanScorer:
    def __init__(self, mean: float) -> None:
        self.mean = mean


def load(files: RunFiles, device: str = "cpu") -> MeanScorer:
    return MeanScorer(json.loads((files.model / "mean.json").read_text())["mean"])


# --- evaluating and serving ---------------------------------------------------------------------------------
def evaluate(run: Any, split: str) -> None:
    st.metric("Test MAE", f"{run.metrics['mae']:.3f}")


def compare(runs: list[Any], points: pd.DataFrame, names: dict[int, str]) -> None:
    st.caption("Lower MAE is better.")


def serve(model: MeanScorer, body: dict[str, Any]) -> dict[str, Any]:
    return {"scores": [model.mean for _ in body.get("texts", [])]}


register_task(Task(
    TASK, "scored texts", "scored texts", "a scoring run", Headline("mae", "MAE"), ("mae",),
    upload=f"{_HERE}:upload", profile=f"{_HERE}:profile", inspect=f"{_HERE}:inspect",
    train_form=f"{_HERE}:train_form", evaluate=f"{_HERE}:evaluate", compare=f"{_HERE}:compare",
    summary=(Figure("Test MAE", "mae"),), split_methods=(("random", "random"),), stats_keys=("mean_score",),
    verb="score", serve=f"{_HERE}:serve", demo=Demo("tests/toy_demo.py", "Toy demo", "🧸")))
register(ModelKind(KIND, TASK, "Mean score", "always the training split's mean score",
                   f"{_HERE}:build_config", f"{_HERE}:execute", f"{_HERE}:load"))
