"""AppTest of the error → relabel → new version → retrain loop on an image run's Evaluate page: the marks editor
shows each mistake's picture, marks name the image, test rows are only marked until a new test set is asked for."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.data.storage import ROW_ID, load_frame
from core.images import IMAGE, TASK
from db import datasets as dataset_queries
from db import runs as run_queries
from db import session_scope
from tests.conftest import store_completed_run
from tests.test_images_versions import store_pets

PAGE = "../pages/evaluate.py"
NO_EDITS = {"edited_rows": {}, "added_rows": [], "deleted_rows": []}


def image_run_with_one_mistake_a_split() -> tuple[int, int, pd.DataFrame]:
    """A completed image run (hand-made predictions, no model) whose first validation and test rows are wrong."""
    dataset_id, frame = store_pets()
    labels, preds = ["cat", "dog"], {}
    for split in ("validation", "test"):
        rows = frame[frame["split"] == split].reset_index(drop=True)
        wrong = [i == 0 for i in range(len(rows))]
        pred = [("dog" if y == "cat" else "cat") if w else y for y, w in zip(rows["label"], wrong, strict=True)]
        proba = np.array([[0.9, 0.1] if p == "cat" else [0.1, 0.9] for p in pred])
        preds[split] = pd.DataFrame({"text": rows["path"], IMAGE: rows[IMAGE], "label": rows["label"],
                                     ROW_ID: rows[ROW_ID], "pred": pred, "confidence": proba.max(axis=1),
                                     "proba": [list(p) for p in proba]})
    run_id = store_completed_run(dataset_id, labels, preds, model_kind="cnn", task=TASK,
                                 config={"epochs": 1, "image_size": 16})
    return run_id, dataset_id, preds["test"]


def open_marks(run_id: int, split: str, edits: dict) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["run"] = str(run_id)
    at.session_state["err_split"] = split
    at.session_state[f"marks_{run_id}_{split}_(any)_(any)"] = edits
    at.run()
    assert not at.exception, at.exception
    return at


def test_image_mistakes_are_marked_on_their_pictures_and_retrained_on_a_new_test_set(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import core.runs.jobs

    monkeypatch.setattr(core.runs.jobs, "launch_worker", lambda run_id, gpus=1: 0)  # no worker process here
    run_id, dataset_id, test_preds = image_run_with_one_mistake_a_split()
    at = open_marks(run_id, "test", {**NO_EDITS, "edited_rows": {"0": {"relabel_to": "dog" if test_preds["label"][0]
                                                                       == "cat" else "cat"}}})
    marks = at.dataframe(key=f"marks_{run_id}_test_(any)_(any)").value
    assert len(marks) == 1 and marks["picture"][0].startswith("data:image/png;base64,")  # the mistake's thumbnail
    assert marks[IMAGE][0] == test_preds[IMAGE][0]
    assert not any("How many labels do I need?" in e.label for e in at.expander)  # SetFit curves are for texts
    assert at.button(key="new_test_set").disabled  # nothing marked yet: the test set stays as uploaded
    at.button(key="mark_test").click().run()
    with session_scope() as s:
        pending = dataset_queries.get_dataset(s, dataset_id).changes["test_marks"]
    assert [(m[IMAGE], m[ROW_ID]) for m in pending] == [(test_preds[IMAGE][0], int(test_preds[ROW_ID][0]))]

    at.button(key="new_test_set").click().run()
    assert not at.exception and any("has a new test set" in w.value for w in at.warning)
    at.button(key="retrain").click().run()
    assert not at.exception
    with session_scope() as s:
        version = dataset_queries.get_dataset_by_name(s, at.session_state["new_version"][2])
        child, version_id = load_frame(version), version.id
        new = run_queries.list_runs(s, dataset_id=version_id)[0]
        assert (new.task, new.model_kind, new.config, new.parent_run_id) == (TASK, "cnn", {"epochs": 1,
                                                                                          "image_size": 16}, run_id)
        assert version.stats["test_set"]["name"] not in ("pets test set", None)  # a new, differently named one
    fixed = child.set_index(ROW_ID).loc[int(test_preds[ROW_ID][0])]
    assert fixed["label"] == test_preds["pred"][0] and fixed[IMAGE] == test_preds[IMAGE][0]

    at = open_marks(run_id, "validation", {**NO_EDITS, "edited_rows": {"0": {"exclude": True}}})
    at.button(key="save_version").click().run()
    assert not at.exception and any("Saved dataset version" in s.value for s in at.success)
    with session_scope() as s:
        excluded = load_frame(dataset_queries.get_dataset_by_name(s, at.session_state["new_version"][2]))
    assert len(excluded) == len(load_frame_of(dataset_id)) - 1


def load_frame_of(dataset_id: int) -> pd.DataFrame:
    with session_scope() as s:
        return load_frame(dataset_queries.get_dataset(s, dataset_id))
