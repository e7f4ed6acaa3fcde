"""Data health of image datasets (core.health.images): near-duplicate images and likely label errors from the
frozen EfficientNet-Lite0 embeddings, on 34 generated 64x64 shapes with a planted copy and a planted mislabel."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.cli import main
from core.data.storage import ROW_ID, load_frame
from core.data.versions import create_dataset_version
from core.health.audit import AuditCancelled, AuditConfig, AuditError
from core.health.images import audit_images
from core.health.jobs import audit_dataset, start_audit
from core.images import IMAGE
from core.runs import scheduling
from core.tasks import get_task
from db import audits as audit_queries
from db import datasets as dataset_queries
from db import read_scope, session_scope
from db.datasets import list_datasets
from tests.image_files import make_zip, planted_shapes

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "datasets.py")
SMALL = AuditConfig(image_size=64)  # the tests' pictures are 64 px: the probe's 224 would only upsample them


def store_shapes(tmp_path, name: str = "shapes") -> int:  # noqa: ANN001
    path = tmp_path / f"{name}.zip"
    make_zip(planted_shapes(), path)
    assert main(["datasets", "add", str(path), "--task", "images", "--name", name]) == 0
    with session_scope() as s:
        return dataset_queries.get_dataset_by_name(s, name).id


def test_the_images_task_has_an_audit_of_its_own() -> None:
    task = get_task("images")
    assert task.part("audit").__module__ == "core.health.images" and not task.audit_from_runs
    assert task.part("health_view").__module__ == "ui.images.health"


def test_the_audit_finds_the_planted_copy_and_mislabel_and_a_suggestion_relabels_it(tmp_path) -> None:  # noqa: ANN001
    dataset_id = store_shapes(tmp_path)
    said: list[str] = []
    result = audit_dataset(dataset_id, SMALL, on_progress=lambda fraction, text: said.append(text))
    assert any(t == "embedding images (34/34)" for t in said)  # batched, with the text audit's progress
    with read_scope() as s:
        frame = load_frame(dataset_queries.get_dataset(s, dataset_id))
        stored = audit_queries.latest_audit(s, dataset_id)
        assert stored.id == result.audit_id and stored.summary["near_duplicates"] == 1
    path = frame["path"].tolist()
    dups = result.duplicates
    assert len(dups) == 1  # the brightened copy, and no two distinct shapes
    copy = dups.iloc[0]
    assert (copy["text"], copy["duplicate_text"]) == ("test/disc/copy.png", "train/disc/0.png")
    assert bool(copy["leak"]) and not bool(copy["exact"]) and copy["similarity"] >= SMALL.similarity
    assert copy[IMAGE] == frame[IMAGE][path.index("test/disc/copy.png")]
    likely = result.label_issues[result.label_issues["likely"]]
    assert likely["text"].tolist() == ["train/square/wrong.png"]  # the planted one, and only it
    issue = likely.iloc[0]
    assert (issue["label"], issue["suggested"]) == ("square", "disc") and issue["score"] >= SMALL.certainty
    assert int(issue["row"]) == path.index("train/square/wrong.png") and int(issue[ROW_ID]) == int(
        frame[ROW_ID][issue["row"]])
    finding = result.findings()["label_issues"][0]
    with session_scope() as s:  # accepting the suggestion: the text audit's relabel -> new version path
        version = create_dataset_version(s, dataset_id, [{"action": "relabel", "row": finding["row"],
                                                          "split": finding["split"], "text": finding["text"],
                                                          "label": finding["label"], "to": finding["suggested"]}])
        child = load_frame(version).set_index(ROW_ID)
    assert child.loc[int(issue[ROW_ID]), "label"] == "disc" and len(child) == len(frame)


def test_a_cancel_stops_the_audit_while_it_embeds(tmp_path) -> None:  # noqa: ANN001
    dataset_id = store_shapes(tmp_path)
    with read_scope() as s:
        frame = load_frame(dataset_queries.get_dataset(s, dataset_id))
    said: list[str] = []
    with pytest.raises(AuditCancelled):
        audit_images(frame, SMALL, dataset_id=dataset_id, should_stop=lambda: True,
                     on_progress=lambda fraction, text: said.append(text))
    assert not any(t.startswith("finding likely label errors") for t in said)


def page() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=60).run()


def test_the_tab_estimates_and_queues_an_image_audit_with_its_similarity(tmp_path, launches,  # noqa: ANN001
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("core.runs.jobs.launch_worker", lambda run_id, gpus=1: 0)  # no worker process here
    dataset_id = store_shapes(tmp_path)
    at = page()
    assert not at.exception and any("not been audited yet" in i.value for i in at.info)
    at.select_slider(key="health_similarity").set_value(0.99)
    at.button(key="health_run").click().run()  # estimated first (the backbone timed on a sample), then queued
    assert not at.exception and not at.error
    with read_scope() as s:
        run = audit_queries.latest_audit_run(s, dataset_id)
        assert run.config["similarity"] == 0.99 and run.config["source"] == "cv"
        assert scheduling.estimated_seconds(run.events) > 3.0  # the start-up `launches` says, and the images'
    with session_scope() as s, pytest.raises(AuditError, match="audit it with source cv"):
        start_audit(s, dataset_id, {"source": "run:1"})  # an image run's predictions are not an audit source


def test_the_tab_shows_thumbnails_and_saves_an_accepted_suggestion_as_a_version(tmp_path) -> None:  # noqa: ANN001
    dataset_id = store_shapes(tmp_path)
    audit = audit_dataset(dataset_id, SMALL)
    at = page()
    assert not at.exception
    found = {m.label: m.value for m in at.metric}
    assert (found["Likely label errors"], found["Near-duplicates"], found["Leaking across splits"]) == ("1",) * 3
    rows = at.dataframe(key=f"health_image_marks_{audit.audit_id}_False_False").value
    assert rows["text"].tolist() == ["train/square/wrong.png"] and rows["suggested"].tolist() == ["disc"]
    assert rows["picture"].iloc[0].startswith("data:image/png;base64,")
    pairs = next(d.value for d in at.dataframe if "duplicate_text" in d.value.columns)
    assert pairs["text"].tolist() == ["test/disc/copy.png"] and pairs["duplicate_text"].tolist() == ["train/disc/0.png"]
    assert pairs["picture"].iloc[0].startswith("data:image/png") and pairs["other picture"].iloc[0]
    assert at.button(key="health_save").disabled  # nothing marked yet
    at.toggle(key="health_accept_all").set_value(True).run()
    assert at.button(key="health_save").label == "Save 1 changes as a new dataset version"
    at.button(key="health_save").click().run()
    assert not at.exception and not at.error
    with read_scope() as s:
        version = next(d for d in list_datasets(s) if d.parent_id == dataset_id)
        child = load_frame(version)
    assert version.changes["relabelled"] == 1
    assert child.set_index("path").loc["train/square/wrong.png", "label"] == "disc"
    assert any(version.name in m.value for m in at.success)
