"""AppTest of the Datasets page's Data health tab: start an audit in the background, see its findings, accept
the suggestions as a new dataset version, retrain the last run on it."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.health.audit import AuditConfig
from core.health.confidence import calibration_of
from core.health.jobs import audit_dataset
from core.runs import scheduling
from db import audits as audit_queries
from db import read_scope, session_scope
from db import runs as run_queries
from db.datasets import get_dataset, list_datasets
from tests.conftest import sklearn_predictions, store_completed_run
from tests.helpers import wait_until_finished
from tests.test_health import store, topics_frame

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "datasets.py")


def page() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=120).run()  # the audit's estimate starts a process once


def test_without_an_auditable_dataset_the_tab_says_what_to_do() -> None:
    at = page()
    assert not at.exception
    said = " ".join(i.value for i in at.info)
    assert "No dataset to audit yet" in said and "labelled texts or labelled images or texts with tag sets" in said


def test_run_audit_from_the_tab_goes_to_the_background_then_shows_findings() -> None:
    frame, flips, _ = topics_frame()
    dataset_id = store(frame)
    at = page()
    assert any("not been audited yet" in i.value for i in at.info)
    at.toggle(key="health_embeddings").set_value(False)
    at.button(key="health_estimate").click().run()
    assert not at.exception and not at.error
    assert any(i.value.startswith("About **") for i in at.info)  # before it starts, as a training run's
    at.button(key="health_run").click().run()
    assert not at.exception and not at.error
    with read_scope() as s:
        run = audit_queries.latest_audit_run(s, dataset_id)
        assert run is not None and run.config["embeddings"] is False and run.config["source"] == "cv"
        # queued with its estimate, which the queue reads to let a short audit start beside a long run
        assert scheduling.estimated_seconds(run.events) is not None
        run_id = run.id
    wait_until_finished(run_id)
    at = page()
    assert not at.exception
    found = {m.label: m.value for m in at.metric}
    assert int(found["Likely label errors"]) >= 15 and int(found["Near-duplicates"]) == 0
    audit_id = _audit_id(dataset_id)
    cut = round(calibration_of({"source": "cv", "embeddings": False}).cut, 2)  # the quick pass's own cut
    rows = at.dataframe(key=f"health_marks_{audit_id}_False_False_{cut}").value
    assert len(set(rows["row"]) & set(flips.tolist())) >= 15 and rows["likely"].all()
    assert rows["score"].is_monotonic_decreasing
    with read_scope() as s:
        possible = audit_queries.latest_audit(s, dataset_id).summary["possible_label_issues"]
    assert possible >= 1  # the second tier is there on request, below the likely ones
    at.toggle(key="health_possible").set_value(True).run()
    both = at.dataframe(key=f"health_marks_{audit_id}_False_True_{cut}").value
    assert len(both) == len(rows) + possible and not both["likely"].iloc[-1]


def _audit_id(dataset_id: int) -> int:
    with read_scope() as s:
        return audit_queries.latest_audit(s, dataset_id).id


def test_accept_suggestions_save_a_version_and_retrain_the_last_run(monkeypatch: pytest.MonkeyPatch) -> None:
    import core.runs.jobs

    monkeypatch.setattr(core.runs.jobs, "launch_worker", lambda run_id, gpus=1: 0)  # no worker process here
    frame, flips, truth = topics_frame()
    dataset_id = store(frame)
    labels, preds = sklearn_predictions(dataset_id)
    last_run = store_completed_run(dataset_id, labels, preds, name="baseline")
    audit = audit_dataset(dataset_id, AuditConfig(embeddings=False))
    at = page()
    assert at.selectbox(key="health_source").options == ["cross-validated TF-IDF (all rows)",
                                                          f"run #{last_run} (its validation and test rows)"]
    assert at.button(key="health_save").disabled  # nothing marked yet
    at.toggle(key="health_accept_all").set_value(True).run()
    # only the likely ones from the cut measured on real tweets up are pre-filled, all of them (as the CLI does)
    cut = calibration_of(audit.summary).cut  # the quick pass ran: its cut, not the default audit's
    assert cut == 0.98
    n = int((audit.label_issues["likely"] & (audit.label_issues["score"] >= cut - 1e-9)).sum())
    assert n > 0
    assert at.button(key="health_save").label == f"Save {n} changes as a new dataset version"
    at.button(key="health_save").click().run()
    assert not at.exception and not at.error
    with read_scope() as s:
        version = next(d for d in list_datasets(s) if d.parent_id == dataset_id)
        # Flags on test rows are only marked: the test set stays as uploaded (issue 24).
        marked = version.changes["test_marks"]
        assert {m["split"] for m in marked} <= {"test"}
        assert version.changes["relabelled"] + len(marked) == n and get_dataset(s, dataset_id).changes == {}
    assert any(version.name in m.value for m in at.success)
    at.button(key="health_retrain").click().run()
    assert not at.exception
    with read_scope() as s:
        new = run_queries.list_runs(s, dataset_id=version.id)[0]
        assert new.parent_run_id == last_run and new.model_kind == "tfidf"
    assert any(f"Run #{new.id} started" in i.value for i in at.info)


def test_a_failed_audit_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    from db.enums import RunStatus

    monkeypatch.setattr("core.runs.jobs.launch_worker", lambda run_id, gpus=1: 0)
    frame, _, _ = topics_frame()
    dataset_id = store(frame)
    from core.health.jobs import start_audit

    with session_scope() as s:
        run_id = start_audit(s, dataset_id, {"embeddings": False})
        run = run_queries.get_run(s, run_id)
        run.status, run.error = RunStatus.FAILED, "the disk is full\nmore detail"
    at = page()
    assert not at.exception
    assert any("The last audit failed: the disk is full" in e.value for e in at.error)


def test_evaluate_shows_the_zero_label_line_and_the_audit_flag_of_each_mistake() -> None:
    from core.evaluation.comparison import ZERO_LABEL_COLUMN

    frame, flips, _ = topics_frame(n=300, n_flips=30, seed=2)
    dataset_id = store(frame)
    labels, preds = sklearn_predictions(dataset_id)
    run_id = store_completed_run(dataset_id, labels, preds, name="tfidf")
    evaluate = str(Path(PAGE).parent / "evaluate.py")
    at = AppTest.from_file(evaluate, default_timeout=60)
    at.query_params["run"] = str(run_id)
    at.run()
    assert ZERO_LABEL_COLUMN not in at.dataframe[0].value.columns  # no audit yet: no zero-label line
    assert "audit" not in at.dataframe(key=f"marks_{run_id}_validation_(any)_(any)").value.columns
    audit = audit_dataset(dataset_id, AuditConfig())
    at = AppTest.from_file(evaluate, default_timeout=60)
    at.query_params["run"] = str(run_id)
    at.run()
    assert not at.exception
    headline = at.dataframe[0].value
    zero = headline.loc[headline["metric"] == "macro f1", ZERO_LABEL_COLUMN].iloc[0]
    assert zero == pytest.approx(audit.zero_label["reports"]["test"]["macro_f1"]) and 0.0 < zero <= 1.0
    mistakes = at.dataframe(key=f"marks_{run_id}_validation_(any)_(any)").value
    flagged = mistakes[mistakes["audit"].str.contains("label", na=False)]
    issues = audit.label_issues.set_index("text")
    assert len(flagged) > 0
    for text, flag in zip(flagged["text"], flagged["audit"], strict=True):
        tier = "label wrong?" if issues.loc[text, "likely"] else "label?"  # likely vs possible label error
        assert flag.startswith(f"{tier} → {issues.loc[text, 'suggested']}")


@pytest.mark.parametrize(("summary", "said", "cut"), [
    ({"source": "cv", "embeddings": True}, "really mislabelled 69% of the time on real labels", 0.97),
    ({"source": "cv", "embeddings": False}, "really mislabelled 61% of the time on real labels", 0.98),
    ({"source": "run:1", "embeddings": False}, "has not been measured", 0.98)])
def test_the_tab_shows_the_precision_of_the_audit_mode_that_ran(summary: dict, said: str, cut: float) -> None:
    frame, _, _ = topics_frame(n=120, n_flips=0)
    dataset_id = store(frame)
    issues = [{"row": 0, "split": "train", "text": frame["text"][0], "label": frame["label"][0],
               "suggested": "other", "score": 0.99, "likely": True}]
    with session_scope() as s:
        audit_id = audit_queries.add_audit(s, dataset_id=dataset_id, run_id=None, source=summary["source"],
                                           config={}, summary={**summary, "label_issues": 1},
                                           findings={"label_issues": issues}, zero_label=None).id
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    mode = next(c.value for c in at.caption if c.value.startswith("Audit mode:"))
    assert said in mode and "measured:" in mode  # the figure of the mode that ran, and where it comes from
    assert ("bench/judgments" in mode) == summary["embeddings"] and ("69%" in mode) == (cut == 0.97)
    assert at.select_slider(key="health_min_score").value == cut
    at.dataframe(key=f"health_marks_{audit_id}_False_False_{cut}")  # the editor is keyed by the mode's cut


def test_the_tab_lists_the_datasets_of_every_task_with_an_audit_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    import core.tasks
    from core.health.jobs import start_audit
    from core.tasks import get_task, register_task

    frame, _, _ = topics_frame(n=120, n_flips=0)
    store(frame, name="texts")
    tagged = store(frame, name="tagged")
    monkeypatch.setattr(core.tasks._tasks, "tasks", dict(core.tasks._tasks.tasks))  # the registration is undone
    register_task(replace(get_task("classification"), name="toy-audited", holds="toy rows"))
    with session_scope() as s:
        get_dataset(s, tagged).task = "toy-audited"
    at = page()
    assert sorted(at.selectbox(key="health_dataset").options) == ["tagged", "texts"]
    register_task(replace(get_task("toy-audited"), audit=None))  # a task without an audit: not listed, refused
    at = page()
    assert at.selectbox(key="health_dataset").options == ["texts"]
    with session_scope() as s, pytest.raises(Exception, match="only datasets of labelled texts"):
        start_audit(s, tagged, {"embeddings": False})
    assert get_task("interactions").audit is None and get_task("images").audit is not None
