"""Multi-label versions through the task entry: a relabel sets a row's whole tag set (checked against the
dataset's tags), the version recounts its tags, and a retrain queues the same kind on it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

import core.runs.jobs
from core.cli import main
from core.data import versions
from core.data.storage import load_frame
from core.multilabel.analysis import SET_TAGS, tag_errors, tag_set_changes
from core.multilabel.labels import decode, encode
from core.runs import jobs
from db import runs as run_queries
from db import session_scope
from db.datasets import get_dataset_by_name
from db.enums import TaskKind
from tests.test_multilabel_runs import write_tickets


def tickets(tmp_path: Path) -> int:
    assert main(["datasets", "add", str(write_tickets(tmp_path / "tickets.csv")), "--task", "multilabel",
                 "--text-col", "body", "--labels-col", "tags", "--json"]) == 0
    with session_scope() as s:
        return get_dataset_by_name(s, "tickets").id


def test_a_relabel_sets_the_tag_set_and_the_version_recounts(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    dataset_id = tickets(tmp_path)
    capsys.readouterr()
    with session_scope() as s:
        frame = load_frame(s.get(type(get_dataset_by_name(s, "tickets")), dataset_id))
    row = frame[(frame["split"] == "train") & (frame["labels"] != "[]")].iloc[0]
    target = sorted(set(["bug", "praise"]) - set(decode(row["labels"]))) or ["bug"]
    change = {"action": "relabel", "split": "train", "text": row["text"], "label": row["labels"],
              "row_id": int(row["row_id"]), "to": target}
    with session_scope() as s:
        version = versions.create_dataset_version(s, dataset_id, [change])
        version_id, stats = version.id, dict(version.stats)
    with session_scope() as s:
        new = load_frame(s.get(type(version), version_id))
    assert new.loc[new["row_id"] == row["row_id"], "labels"].tolist() == [encode(target)]
    assert (new["row_id"] != row["row_id"]).sum() == len(frame) - 1
    assert stats["tags"] == {t: sum(t in decode(v) for v in new["labels"]) for t in stats["tags"]}
    # An empty set is a valid target; a tag the dataset never had is refused, by name.
    with session_scope() as s:
        versions.create_dataset_version(s, version_id, [{**change, "label": encode(target), "to": []}])
    with session_scope() as s, pytest.raises(versions.VersionError, match="'refunds': not a tag of this dataset"):
        versions.create_dataset_version(s, dataset_id, [{**change, "to": ["bug", "refunds"]}])


def test_a_retrain_on_a_version_stays_a_multilabel_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset_id = tickets(tmp_path)
    monkeypatch.setattr(core.runs.jobs, "launch_worker", lambda run_id, gpus=1: 0)  # no worker process here
    with session_scope() as s:
        run_id = jobs.start_run(s, dataset_id=dataset_id, model_kind="tfidf", config={"seed": 1},
                                task=TaskKind.MULTILABEL)
        frame = load_frame(get_dataset_by_name(s, "tickets"))
    row = frame[frame["split"] == "validation"].iloc[0]
    with session_scope() as s:
        version = versions.create_dataset_version(s, dataset_id, [{"action": "relabel", "split": "validation",
                                                                   "text": row["text"], "label": row["labels"],
                                                                   "to": ["billing"]}], source_run_id=run_id)
        new_id = jobs.retrain(s, run_id, version.id)
    with session_scope() as s:
        new = run_queries.get_run(s, new_id)
        assert (new.task, new.model_kind, new.dataset_id, new.parent_run_id) == (TaskKind.MULTILABEL, "tfidf",
                                                                                 version.id, run_id)



def test_evaluate_offers_the_mistakes_tag_sets_to_fix_and_the_fixes_become_a_version(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    csv = write_tickets(tmp_path / "tickets.csv", n=120)
    noisy = pd.read_csv(csv, keep_default_na=False)
    noisy.loc[noisy.index % 4 == 1, "tags"] = "praise"  # tags the words do not support: mistakes to fix
    noisy.to_csv(csv, index=False)
    assert main(["datasets", "add", str(csv), "--task", "multilabel", "--text-col", "body", "--labels-col", "tags",
                 "--json"]) == 0
    with session_scope() as s:
        dataset_id = get_dataset_by_name(s, "tickets").id
    capsys.readouterr()
    assert main(["train", "--dataset", "tickets", "--model", "tfidf", "--wait", "--json"]) == 0
    run_id = json.loads(capsys.readouterr().out)["run_id"]

    at = AppTest.from_file("../pages/evaluate.py", default_timeout=60).run()
    at.radio(key="split").set_value("validation").run()
    assert not at.exception, at.exception
    errors = tag_errors(run_id, "validation")
    assert len(errors) and "row_id" in errors.columns
    shown = at.dataframe(key=f"ml_marks_{run_id}_validation_(every tag)").value
    assert shown.columns[0] == SET_TAGS and "exclude" in shown.columns and len(shown) == len(errors)
    assert [sorted(v) for v in shown[SET_TAGS]] == [sorted(v) for v in shown["true"]]  # starts as the true tags
    assert at.button(key="ml_save_version").disabled  # nothing fixed yet: nothing to save
    at.radio(key="split").set_value("test").run()
    assert not at.exception and at.button(key="mark_test").disabled  # test rows are marked, never changed

    # What the editor hands back once a person gave one text other tags and excluded another.
    marks = errors.head(2).assign(exclude=[False, True])
    fixed = ["billing", "bug"] if sorted(marks["true"].iloc[0]) != ["billing", "bug"] else []
    marks.insert(0, SET_TAGS, [fixed, marks["true"].iloc[1]])
    changes = tag_set_changes(marks, "validation")
    assert [(c["action"], c.get("to")) for c in changes] == [("relabel", fixed), ("exclude", None)]
    with session_scope() as s:
        version_id = versions.create_dataset_version(s, dataset_id, changes, source_run_id=run_id).id
    with session_scope() as s:
        new = load_frame(s.get(type(get_dataset_by_name(s, "tickets")), version_id))
    assert int(marks["row_id"].iloc[1]) not in set(new["row_id"])
    assert new.loc[new["row_id"] == int(marks["row_id"].iloc[0]), "labels"].tolist() == [encode(fixed)]
