"""A Protolab run as an MLflow pyfunc model: `mlflow.pyfunc.load_model(uri).predict(frame)` answers with the run's
own predictor, whatever its kind (the kind's loader) and task (the task entry's `pyfunc_predict`).

The logged model holds the run's meta.json and model/ folder; loading it needs Protolab importable (installed) where
it is loaded, as serving the run with `protolab serve` does. This module imports mlflow at its top: only the
tracking code and MLflow's loader import it, never a page.
"""

from __future__ import annotations

import importlib.metadata
import shutil
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

from core.metric_keys import DISPLAY_K
from core.runs import registry
from core.runs.files import RunFiles
from core.tasks import get_task, resolve

ARTIFACT = "run"  # the pyfunc artifact that holds the run's files


class ProtolabModel(mlflow.pyfunc.PythonModel):
    """The served model of one run, loaded from the run files logged beside it."""

    def __init__(self, model_kind: str, task: str) -> None:
        self.model_kind, self.task = model_kind, str(task)
        self.model: Any = None

    def load_context(self, context: Any) -> None:
        files = RunFiles(Path(context.artifacts[ARTIFACT]))
        self.model = registry.get_kind(self.model_kind).loader()(files)

    # No type hints here: MLflow reads them as the model's input schema and warns that Any is none.
    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(
            model_input if isinstance(model_input, dict) else {"input": list(model_input)})
        task = get_task(self.task)
        if task.pyfunc_predict:
            return resolve(task.pyfunc_predict)(self.model, frame)
        # A plugin's task without a frame function: each row is one request to its serve function.
        return pd.DataFrame([resolve(task.serve)(self.model, row) for row in frame.to_dict("records")])


def save_run_model(files: RunFiles, model_kind: str, task: str, path: Path, scratch: Path) -> None:
    """Write the run's pyfunc model folder at `path` (its files are staged in `scratch` first)."""
    staged = scratch / ARTIFACT
    staged.mkdir(parents=True)
    shutil.copy2(files.meta, staged / files.meta.name)
    shutil.copytree(files.model, staged / files.model.name)
    mlflow.pyfunc.save_model(path, python_model=ProtolabModel(model_kind, task), artifacts={ARTIFACT: str(staged)},
                             pip_requirements=_requirements())


def _requirements() -> list[str]:
    """Pinned mlflow and Protolab itself; listed, not inferred (inference loads the model in a subprocess)."""
    found = [f"mlflow=={mlflow.__version__}"]
    try:
        found.append(f"protolab=={importlib.metadata.version('protolab')}")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout: Protolab is on the path, not installed
        found.append("protolab")
    return found


def _texts(frame: pd.DataFrame) -> list[str]:
    column = "text" if "text" in frame.columns else frame.columns[0]
    return [str(t) for t in frame[column]]


def classify_frame(model: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """A classification run's answer: label and confidence per text (the `text` column, else the first)."""
    preds = model.predict(_texts(frame))
    return pd.DataFrame({"label": [p.label for p in preds], "confidence": [p.confidence for p in preds],
                         "low_confidence": [p.low_confidence for p in preds]})


def recommend_frame(model: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """A recommender run's answer: the top items (rank, item, score) of each `user` (`k` a row, default DISPLAY_K)."""
    rows = []
    for record in frame.to_dict("records"):
        user = str(record.get("user", next(iter(record.values()))))
        k = int(record.get("k") or DISPLAY_K)
        for rank, (item, score, _) in enumerate(model.recommend(user, k), start=1):
            rows.append({"user": user, "rank": rank, "item": item, "score": float(score)})
    return pd.DataFrame(rows, columns=["user", "rank", "item", "score"])
