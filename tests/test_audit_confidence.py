"""The audit's flags carry the precision measured on real labels, pre-fill takes only the flags from a cut the user
sees, and the Data health tab pre-fills exactly the rows `protolab datasets version --relabel-suggested` changes."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.health import confidence
from core.health.confidence import Band
from core.health.jobs import automatic_changes
from db import audits as audit_queries
from db import session_scope
from tests.test_health import store, topics_frame

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "datasets.py")
BANDS = (Band(0.99, 40, 34, 30), Band(0.97, 40, 29, 25), Band(0.95, 40, 18, 14))  # 85 %, 72.5 %, 45 %


def test_the_prefill_cut_is_where_the_measured_precision_drops_below_the_bar() -> None:
    assert confidence.default_min_score(BANDS, 0.7) == 0.97
    assert confidence.default_min_score(BANDS, 0.9) == 1.0  # no band good enough: nothing pre-filled by default
    assert confidence.flag_confidence(0.995, BANDS) == 0.85 and confidence.flag_confidence(0.96, BANDS) == 0.45
    assert confidence.measured_precision(0.97, BANDS) == (63 / 80, 80)
    issues = [{"score": 0.98, "likely": True}, {"score": 0.96, "likely": True}, {"score": 0.99, "likely": False}]
    assert confidence.prefilled(issues, 0.97) == issues[:1]


def test_the_shipped_figures_are_measured_and_say_what_the_default_cut_buys() -> None:
    assert sum(b.judged for b in confidence.REAL_BANDS) >= 100  # a measured sample, not a guess
    cut = confidence.default_min_score()
    precision, judged = confidence.measured_precision(cut)
    assert precision >= confidence.PREFILL_PRECISION and judged > 0


def test_the_tab_prefills_the_rows_the_cli_relabels_past_the_first_200() -> None:
    frame, _, _ = topics_frame(n=360, n_flips=0)
    dataset_id = store(frame)
    cut = confidence.default_min_score()
    # 260 flags above the cut, 60 below it, 20 possible ones: more than the editor's first 200 are pre-filled.
    scores = [min(1.0, cut + 0.001)] * 260 + [0.95] * 60 + [0.5] * 20
    issues = [{"row": i, "split": "train", "text": frame["text"][i], "label": frame["label"][i],
               "suggested": "other", "score": score, "likely": score >= 0.95} for i, score in enumerate(scores)]
    with session_scope() as s:
        audit_id = audit_queries.add_audit(s, dataset_id=dataset_id, run_id=None, source="cv", config={},
                                           summary={"label_issues": 320, "possible_label_issues": 20},
                                           findings={"label_issues": issues}, zero_label=None).id
    with session_scope() as s:
        cli_rows = {c["row"] for c in automatic_changes(audit_queries.latest_audit(s, dataset_id),
                                                        relabel_suggested=True, exclude_duplicates=False)}
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.toggle(key="health_accept_all").set_value(True).run()
    assert not at.exception
    shown = at.dataframe(key=f"health_marks_{audit_id}_True_False_{round(cut, 2)}").value
    page_rows = set(shown.loc[shown["relabel_to"].notna(), "row"])
    assert len(cli_rows) == 260 and page_rows == cli_rows
    assert shown["confidence"].notna().all()  # each flag says how often flags like it were right
    assert any(f"{confidence.measured_precision(round(cut, 2))[0]:.0%} of" in c.value for c in at.caption)


def test_each_audit_mode_has_its_own_measured_cut() -> None:
    default = confidence.calibration_of({"source": "cv", "embeddings": True})
    quick = confidence.calibration_of({"source": "cv", "embeddings": False})
    run = confidence.calibration_of({"source": "run:7", "embeddings": True})
    assert (default.name, quick.name, run.name) == ("embeddings", "tfidf", "run")
    assert confidence.calibration_of({}) is default  # audits stored before modes: the default audit
    # the hand-judged figures (BENCHMARKS.md): 69 % of 200 overall, 77 % from 0.97 up, 80 % from 0.98 up
    assert default.precision == (138 / 200, 200) and default.cut == 0.97
    assert confidence.measured_precision(0.97, default.bands) == (78 / 102, 102)
    assert round(confidence.measured_precision(0.98, default.bands)[0], 2) == 0.80
    assert quick.cut == 0.98 and quick.precision == (122 / 200, 200)
    assert run.cut == 0.98 and run.precision is None  # not measured: the quick pass's cut is kept


def test_the_cli_relabels_from_the_cut_of_the_mode_that_ran() -> None:
    frame, _, _ = topics_frame(n=120, n_flips=0)
    dataset_id = store(frame)
    issues = [{"row": i, "split": "train", "text": frame["text"][i], "label": frame["label"][i],
               "suggested": "other", "score": score, "likely": True} for i, score in enumerate([0.99, 0.975])]
    rows = {}
    for embeddings in (True, False):
        with session_scope() as s:
            audit_queries.add_audit(s, dataset_id=dataset_id, run_id=None, source="cv", config={},
                                    summary={"source": "cv", "embeddings": embeddings},
                                    findings={"label_issues": issues}, zero_label=None)
        with session_scope() as s:
            rows[embeddings] = {c["row"] for c in automatic_changes(audit_queries.latest_audit(s, dataset_id),
                                                                    relabel_suggested=True,
                                                                    exclude_duplicates=False)}
    assert rows == {True: {0, 1}, False: {0}}
