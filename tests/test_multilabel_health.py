"""Data health of a multi-label dataset (the multi-label task's `audit` entry): cleanlab's multi-label filter on
cross-validated tag probabilities flags rows whose tag sets were corrupted on purpose, says which tags are missing
or wrong and suggests the set; `protolab datasets audit` and the Data health tab show it and save a version."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.cli import main
from core.data.storage import load_frame
from core.health.audit import AuditConfig
from core.health.jobs import audit_dataset
from core.multilabel.audit import audit_tag_sets
from core.multilabel.labels import decode, encode
from core.tasks import get_task
from db import audits as audit_queries
from db import read_scope, session_scope
from db.datasets import get_dataset_by_name, list_datasets
from db.enums import TaskKind
from tests.helpers import wait_until_finished
from tests.test_multilabel_runs import WORDS, write_tickets

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "datasets.py")

ROWS, CORRUPTED = 180, 20


def corrupted_tickets(path: Path) -> tuple[Path, dict[str, tuple[list[str], list[str]]]]:
    """write_tickets' tickets with the tag sets of CORRUPTED tagged rows changed: on even ones a tag removed, on
    odd ones a wrong tag added. Returns the CSV and, by text, (the true set, the corrupted one)."""
    write_tickets(path, n=ROWS)
    frame = pd.read_csv(path, keep_default_na=False)
    rng = random.Random(7)
    tagged = [i for i, t in enumerate(frame["tags"]) if t]
    corrupted = {}
    for k, i in enumerate(rng.sample(tagged, CORRUPTED)):
        true = sorted(t.strip() for t in frame.at[i, "tags"].split("|"))
        wrong = sorted(true[1:] if k % 2 == 0 else {*true, rng.choice([t for t in WORDS if t not in true])})
        frame.at[i, "tags"] = " | ".join(wrong)
        corrupted[frame.at[i, "body"]] = (true, wrong)
    frame.to_csv(path, index=False)
    return path, corrupted


def add(tmp_path: Path) -> tuple[int, dict[str, tuple[list[str], list[str]]]]:
    csv, corrupted = corrupted_tickets(tmp_path / "tickets.csv")
    assert main(["datasets", "add", str(csv), "--task", "multilabel", "--text-col", "body", "--labels-col", "tags",
                 "--json"]) == 0
    with session_scope() as s:
        return get_dataset_by_name(s, "tickets").id, corrupted


def stored_frame(dataset_id: int) -> pd.DataFrame:
    with session_scope() as s:
        return load_frame(s.get(type(get_dataset_by_name(s, "tickets")), dataset_id))


def test_the_multilabel_task_has_an_audit() -> None:
    assert get_task(TaskKind.MULTILABEL).part("audit") is audit_tag_sets


def test_the_audit_flags_the_corrupted_tag_sets_and_suggests_the_removed_tags(tmp_path: Path) -> None:
    dataset_id, corrupted = add(tmp_path)
    frame = stored_frame(dataset_id)
    result = audit_tag_sets(frame, AuditConfig(embeddings=False))
    issues = result.label_issues
    flagged = set(issues["text"])
    found = flagged & set(corrupted)
    # Measured (write_tickets seeds 0-3): 15-20 of the 20 corrupted rows flagged, 0-2 clean ones; each row that
    # lost a tag and was flagged got its true set back as the suggestion.
    assert len(found) >= CORRUPTED // 2, (len(found), len(issues))
    assert len(flagged - set(corrupted)) <= 5
    by_text = issues.set_index("text")
    removed = [t for t, (true, wrong) in corrupted.items() if len(wrong) < len(true) and t in found]
    restored = [t for t in removed if sorted(by_text.at[t, "suggested"]) == corrupted[t][0]]
    assert len(restored) >= len(removed) // 2, (len(restored), len(removed))
    # Each corrupted row found names what was done to it: the removed tag as missing, the added one as wrong.
    named = 0
    for text in found:
        true, wrong = corrupted[text]
        assert by_text.at[text, "label"] == encode(wrong)
        changed = set(true) - set(wrong) if len(wrong) < len(true) else set(wrong) - set(true)
        said = by_text.at[text, "missing"] if len(wrong) < len(true) else by_text.at[text, "wrong"]
        named += changed <= set(said)
    assert named >= len(found) * 2 // 3, (named, len(found))
    per_tag = result.summary["issues_per_tag"]
    assert set(per_tag) == set(WORDS)
    assert sum(v["missing"] + v["wrong"] for v in per_tag.values()) == \
        sum(len(m) + len(w) for m, w in zip(issues["missing"], issues["wrong"], strict=True))
    json.dumps(result.findings())  # stored as JSON with the dataset version


@pytest.mark.slow  # loads MiniLM and embeds 180 texts: ~15 s on the 2-core box
def test_with_embeddings_the_minilm_tag_models_are_averaged_in(tmp_path: Path) -> None:
    dataset_id, corrupted = add(tmp_path)
    frame = stored_frame(dataset_id)
    quick = audit_tag_sets(frame, AuditConfig(embeddings=False))
    result = audit_tag_sets(frame, AuditConfig(embeddings=True))  # embeds once; the rest is the same folds
    assert result.embeddings is not None and result.embeddings.shape[0] == len(frame)
    assert result.summary["embeddings"] is True
    scores = dict(zip(result.label_issues["text"], result.label_issues["score"], strict=True))
    assert scores != dict(zip(quick.label_issues["text"], quick.label_issues["score"], strict=True))
    # Measured: 16 of the 20 corrupted rows flagged, 1 clean one.
    assert len(set(scores) & set(corrupted)) >= CORRUPTED // 2 and len(set(scores) - set(corrupted)) <= 5


def test_the_audit_reports_exact_duplicates_of_tag_sets(tmp_path: Path) -> None:
    dataset_id, _ = add(tmp_path)
    frame = stored_frame(dataset_id)
    copy = frame.iloc[[3]].assign(split="test")
    result = audit_tag_sets(pd.concat([frame, copy], ignore_index=True), AuditConfig(embeddings=False))
    dups = result.duplicates
    assert len(dups) == 1 and bool(dups["leak"].iloc[0]) and dups["label"].iloc[0] == frame["labels"].iloc[3]


def test_cli_audits_a_multilabel_dataset_and_versions_the_suggestions(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    dataset_id, corrupted = add(tmp_path)
    capsys.readouterr()
    assert main(["datasets", "audit", "tickets", "--no-embeddings", "--all", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tags"] == sorted(WORDS) and out["label_issues"] >= 1
    rows = out["rows"] + out["possible_rows"]
    assert len({r["text"] for r in rows} & set(corrupted)) >= CORRUPTED // 2
    assert all({"missing", "wrong", "suggested"} <= set(r) for r in rows)
    assert main(["datasets", "audit", "tickets", "--no-embeddings"]) == 0
    printed = capsys.readouterr().out
    assert "likely label errors" in printed and (" +" in printed or " -" in printed)  # tags missing / wrong
    # The likely errors' suggested sets become a version, each a whole tag set.
    assert main(["datasets", "version", "tickets", "--relabel-suggested", "--min-score", "0", "--json"]) == 0
    version = json.loads(capsys.readouterr().out)
    assert version["relabelled"] >= 3
    old, new = stored_frame(dataset_id), stored_frame(version["id"])
    before = dict(zip(old["text"], old["labels"], strict=True))
    changed = {t: sorted(decode(v)) for t, v in zip(new["text"], new["labels"], strict=True) if before[t] != v}
    # Measured: every row changed is a corrupted one given back its true set.
    restored = sum(t in corrupted and s == sorted(corrupted[t][0]) for t, s in changed.items())
    assert len(changed) == version["relabelled"] and restored >= len(changed) * 2 // 3, (restored, changed)


def page() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=120).run()  # the audit's estimate starts a process once


def test_the_tab_runs_a_multilabel_audit_in_the_background_and_shows_it(tmp_path: Path) -> None:
    dataset_id, _ = add(tmp_path)
    at = page()
    assert at.selectbox(key="health_dataset").options == ["tickets"]
    assert at.selectbox(key="health_source").options == ["cross-validated TF-IDF (all rows)"]  # no run sources
    at.toggle(key="health_embeddings").set_value(False)
    at.button(key="health_run").click().run()
    assert not at.exception and not at.error
    with read_scope() as s:
        run_id = audit_queries.latest_audit_run(s, dataset_id).id
    wait_until_finished(run_id)
    at = page()
    assert not at.exception and not at.error
    found = {m.label: m.value for m in at.metric}
    assert int(found["Likely tag errors"]) >= 5


def test_the_tab_filters_flags_by_tag_and_saves_the_suggested_sets(tmp_path: Path) -> None:
    dataset_id, corrupted = add(tmp_path)
    audit = audit_dataset(dataset_id, AuditConfig(embeddings=False))
    at = page()
    assert not at.exception
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    chart = next(c for c in charts if c["layout"]["title"]["text"] == "Likely tag errors per tag")
    assert {y for trace in chart["data"] for y in trace["y"]} == set(WORDS)
    every = at.dataframe(key=f"health_tag_marks_{audit.audit_id}_every tag_False_False").value
    likely = audit.label_issues[audit.label_issues["likely"]]
    assert len(every) == len(likely)
    at.selectbox(key="health_tag").set_value("praise").run()
    praise = at.dataframe(key=f"health_tag_marks_{audit.audit_id}_praise_False_False").value
    assert 0 < len(praise) <= len(every)
    assert all("praise" in [*m, *w] for m, w in zip(praise["missing"], praise["wrong"], strict=True))
    assert at.button(key="health_save").disabled  # nothing accepted yet
    at.selectbox(key="health_tag").set_value("every tag").run()
    at.toggle(key="health_accept_all").set_value(True).run()
    at.button(key="health_save").click().run()
    assert not at.exception and not at.error
    with read_scope() as s:
        version = next(d for d in list_datasets(s) if d.parent_id == dataset_id)
        version_id, relabelled, marked = version.id, version.changes["relabelled"], version.changes["test_marks"]
        assert any(version.name in m.value for m in at.success)
    assert relabelled + len(marked) == len(likely) and relabelled > 0
    new = stored_frame(version_id)
    fixed = {t: sorted(decode(v)) for t, v in zip(new["text"], new["labels"], strict=True)}
    moved = [t for t in likely["text"] if likely.set_index("text").at[t, "split"] != "test"]
    assert sum(t in corrupted and fixed[t] == corrupted[t][0] for t in moved) >= len(moved) * 2 // 3


def test_a_runs_predictions_cannot_audit_tag_sets(tmp_path: Path) -> None:
    from core.health.audit import AuditError
    from core.health.jobs import start_audit

    dataset_id, _ = add(tmp_path)
    with session_scope() as s, pytest.raises(AuditError, match="audit it with source cv"):
        start_audit(s, dataset_id, {"source": "run:1", "embeddings": False})
