"""The Datasets page's "Data health" tab: start an audit (a background run), see what it found, mark rows,
save them as a new dataset version and retrain the last run on it.

The audit itself is core.health; this module only reads the database and draws.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core.charts.health import audit_counts
from core.data.versions import create_dataset_version
from core.errors import ProtolabError
from core.health import confidence
from core.health import jobs as health_jobs
from core.health.audit import CERTAINTY
from core.runs import jobs, scheduling
from core.runs.estimates import estimate_any
from core.tasks import all_tasks, get_task
from db import audits as audit_queries
from db import datasets as dataset_queries
from db import read_scope, session_scope
from db import runs as run_queries
from db.enums import AUDIT_KIND, RunStatus
from ui.common import format_duration

EDITOR_ROWS = 200  # the most suspicious rows offered for marks, as on the Evaluate page
CV = "cv"


def data_health_tab() -> None:
    with read_scope() as s:
        audited = {t.name for t in all_tasks() if t.audit is not None}  # each task says if it has an audit
        datasets = {d.id: d.name for d in dataset_queries.list_datasets(s) if d.task in audited}
    if not datasets:  # named from the task entries, so a task that gains an audit is listed here too
        kinds = " or ".join(t.holds for t in all_tasks() if t.audit is not None)
        st.info(f"No dataset to audit yet: the audit reads {kinds}. Add one under **Add a dataset**, then audit "
                "it here.")
        return
    dataset_id = st.selectbox("Dataset", list(datasets), key="health_dataset", format_func=datasets.get)
    with read_scope() as s:
        audit_run = audit_queries.latest_audit_run(s, dataset_id)
        running = audit_run is not None and audit_run.status.is_active
        audit = _plain_audit(audit_queries.latest_audit(s, dataset_id))
        failed = audit_run.error if audit_run is not None and audit_run.status == RunStatus.FAILED else None
        models = run_queries.list_runs(s, dataset_id=dataset_id, statuses=[RunStatus.COMPLETED], models_only=True)
        dataset = dataset_queries.get_dataset(s, dataset_id)
        task = get_task(dataset.task)
        sources = [CV, *(f"run:{r.id}" for r in models if task.audit_from_runs)]
        labels = sorted((dataset.stats or {}).get("classes") or {})
    if running:
        audit_progress(audit_run.id)
    else:
        task.part("audit_form")(dataset_id, sources, labels)
    if failed and (audit is None or audit["run_id"] != audit_run.id):
        st.error(f"The last audit failed: {failed.splitlines()[0]}")
    if audit is None:
        st.info("This dataset has not been audited yet.")
        return
    task.part("health_view")(dataset_id, audit)
    retrain_offer(dataset_id, models[0].id if models else None)


def audit_form(dataset_id: int, sources: list[str], labels: list[str]) -> None:
    left, right = st.columns(2)
    source = left.selectbox("Probabilities from", sources, key="health_source",
                            format_func=lambda s: "cross-validated TF-IDF (all rows)" if s == CV
                            else f"run #{s.split(':')[1]} (its validation and test rows)")
    embeddings = right.toggle("MiniLM near-duplicates and zero-label baseline", value=True, key="health_embeddings",
                              help="Slower on a CPU (about a minute per 10,000 rows); off: exact duplicates only")
    descriptions = {}
    with st.expander("Zero-label baseline: describe each label in one line (optional)"):
        for label in labels:
            descriptions[label] = st.text_input(label, key=f"health_desc_{label}", placeholder=label)
    certainty = certainty_slider()
    options = {"source": source, "embeddings": embeddings, "certainty": certainty,
               "label_descriptions": {k: v.strip() for k, v in descriptions.items() if v.strip()}}
    audit_buttons(dataset_id, options)


def certainty_slider() -> float:
    """How sure the held-out models must be that a label is wrong for a flag to count as a likely error."""
    return st.select_slider(
        "A likely label error is one the held-out models are this sure is wrong", key="health_certainty",
        options=sorted({0.8, 0.85, 0.9, CERTAINTY, 0.98, 0.99}), value=CERTAINTY, format_func=lambda c: f"{c:.0%}",
        help="Lower lists more rows, and more of them will turn out to be labelled right after all. Rows below it "
             "that cleanlab still doubts are listed as possible label errors.")


def audit_buttons(dataset_id: int, options: dict[str, Any]) -> None:
    """Estimate and Run buttons of any task's audit form: the audit is estimated, then queued as a background run."""
    left, right = st.columns(2)
    if left.button("⏱ Estimate time", key="health_estimate"):
        try:
            show_audit_estimate(audit_estimate(dataset_id, options))
        except ProtolabError as exc:
            st.error(str(exc))
    if right.button("Run the audit", key="health_run", type="primary"):
        try:
            # Always estimated first: the queue lets a short audit start beside a long run (core.runs.scheduling).
            seconds = audit_estimate(dataset_id, options).seconds
            with session_scope() as s:
                health_jobs.start_audit(s, dataset_id, options, estimate_s=seconds)
        except ProtolabError as exc:
            st.error(str(exc))
            return
        st.rerun()


def audit_estimate(dataset_id: int, options: dict[str, Any]) -> Any:
    """The audit's Estimate for these options, measured once per dataset and options in this session."""
    key = ("health_estimate_of", dataset_id, repr(sorted(options.items())))
    if key not in st.session_state:
        with read_scope() as s:
            dataset = dataset_queries.get_dataset(s, dataset_id)
        with st.spinner("Timing the audit's steps on a sample of the rows…"):
            st.session_state[key] = estimate_any(dataset, AUDIT_KIND, health_jobs.build_config(AUDIT_KIND, options))
    return st.session_state[key]


def show_audit_estimate(est: Any) -> None:
    st.info(f"About **{format_duration(est.seconds)}** on the CPU")
    st.caption(est.breakdown())


@st.fragment(run_every="2s")
def audit_progress(run_id: int) -> None:
    with read_scope() as s:
        run = run_queries.get_run(s, run_id)
        status, progress, text, events = run.status, run.progress, run.status_text, list(run.events or [])
    if status.is_active:
        estimated = scheduling.estimated_seconds(events)
        about = f" (estimated at about {format_duration(estimated)})" if estimated is not None else ""
        st.progress(progress, text=f"Audit running in the background{about}: {text}")
    else:
        st.rerun()  # finished: redraw the whole tab with the new findings


def _plain_audit(audit: Any) -> dict[str, Any] | None:
    if audit is None:
        return None
    return {"id": audit.id, "run_id": audit.run_id, "source": audit.source, "summary": dict(audit.summary or {}),
            "findings": dict(audit.findings or {}), "zero_label": dict(audit.zero_label or {})}


def headline_metrics(summary: dict[str, Any], errors: str, errors_help: str) -> None:
    """The four counts atop an audit's findings: its likely label errors (as the task calls them), near-duplicates,
    rows leaking across splits and oddities."""
    cols = st.columns(4)
    cols[0].metric(errors, summary.get("label_issues", 0), help=errors_help)
    cols[1].metric("Near-duplicates", summary.get("near_duplicates", 0))
    cols[2].metric("Leaking across splits", summary.get("leakage", 0))
    cols[3].metric("Oddities", sum(int(summary.get(k) or 0) for k in ("empty", "long", "other_script")))


def findings_view(dataset_id: int, audit: dict[str, Any]) -> None:
    summary, findings = audit["summary"], audit["findings"]
    headline_metrics(summary, "Likely label errors",
                     f"Rows the held-out models are at least {summary.get('certainty', CERTAINTY):.0%} sure are "
                     f"labelled wrong; {summary.get('possible_label_issues', 0):,} more are possible errors.")
    st.plotly_chart(audit_counts(summary), key="health_chart")
    st.caption(f"Audit #{audit['id']} · source {audit['source']} · {summary.get('rows_checked_for_label_issues', 0):,}"
               f" of {summary.get('rows', 0):,} rows checked for label errors · {summary.get('seconds', 0):.1f} s")
    zero_test = ((audit["zero_label"] or {}).get("reports") or {}).get("test")
    if zero_test:
        st.info(f"With no labels at all (MiniLM similarity to the label names or descriptions), the test macro-F1 "
                f"would be {zero_test['macro_f1']:.3f}: what your labels buy is any model's margin over that.")
    for small in findings.get("small_classes", []):
        st.warning(f"Class '{small['label']}' is too small for the split: {small['reason']}.")
    marks_editor(dataset_id, audit)
    other_findings(findings)


def other_findings(findings: dict[str, Any]) -> None:
    """The near-duplicates and oddities an audit found, each in an expander (any text task's audit)."""
    with st.expander(f"Near-duplicates ({len(findings.get('duplicates', []))})"):
        st.dataframe(pd.DataFrame(findings.get("duplicates", [])), hide_index=True, key="health_duplicates")
    with st.expander(f"Oddities ({len(findings.get('oddities', []))})"):
        st.dataframe(pd.DataFrame(findings.get("oddities", [])), hide_index=True, key="health_oddities")


def marks_editor(dataset_id: int, audit: dict[str, Any]) -> None:
    issues = pd.DataFrame(audit["findings"].get("label_issues", []),
                          columns=["row", "split", "text", "label", "suggested", "score", "likely"])
    # audits stored before the two tiers have no "likely": all their flags counted as likely then
    issues["likely"] = pd.Series([True if pd.isna(v) else bool(v) for v in issues["likely"]], dtype=bool)
    labels = sorted(set(issues["label"]) | set(issues["suggested"])) if len(issues) else []
    likely, possible = int(issues["likely"].sum()), int((~issues["likely"]).sum())
    st.subheader("Suspicious rows")
    with_possible = possible > 0 and st.toggle(
        f"Also show the {possible:,} possible label errors", key="health_possible",
        help="cleanlab doubts their labels, but less surely: many are ambiguous texts labelled right.")
    shown = issues if with_possible else issues[issues["likely"]]
    st.caption(f"{likely:,} likely label errors{f' and {possible:,} possible ones' if with_possible else ''}, most "
               f"suspicious first (score 1 = surely wrong); the first {min(len(shown), EDITOR_ROWS)} can be "
               "relabelled (to the suggestion or by hand) or excluded.")
    mode = confidence.calibration_of(audit["summary"])
    st.caption(mode_precision(mode))
    accept, cut = prefill_controls(issues, mode)
    chosen = {int(i["row"]) for i in confidence.prefilled(issues.to_dict("records"), cut)} if accept else set()
    # Every pre-filled row is in the editor, past the first EDITOR_ROWS too: the page changes what the CLI does.
    marks = shown.head(max(EDITOR_ROWS, len(chosen))).assign(exclude=False)
    marks.insert(marks.columns.get_loc("score") + 1, "confidence",
                 [confidence.flag_confidence(float(v), mode.bands) for v in marks["score"]])
    marks["relabel_to"] = marks["suggested"].where(marks["row"].isin(chosen)) if accept else None
    edited = st.data_editor(marks, key=f"health_marks_{audit['id']}_{accept}_{with_possible}_{cut}",
                            hide_index=True, width="stretch",
                            column_order=("row", "exclude", "relabel_to", "label", "suggested", "score",
                                          "confidence", "likely", "split", "text"),
                            disabled=["row", "split", "text", "label", "suggested", "score", "confidence", "likely"],
                            column_config={
                                "score": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0,
                                                                         format="%.3f"),
                                "confidence": st.column_config.NumberColumn(
                                    "really wrong?", format="%.2f",
                                    help="Share of this audit mode's flags scored like this one that were "
                                         "really mislabelled, judged by hand on real tweets (BENCHMARKS.md)"),
                                "relabel_to": st.column_config.SelectboxColumn("relabel to", options=labels)})
    changes = with_duplicates(health_jobs.marks_to_changes(edited), audit["findings"].get("duplicates", []))
    save_version(dataset_id, changes)


def with_duplicates(changes: list[dict[str, Any]], duplicates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The marks' changes, plus an exclusion of every near-duplicate not marked already when the user asks."""
    if duplicates and st.checkbox(f"Also exclude the {len(duplicates)} near-duplicates (the copy in the earliest "
                                  "split is kept)", key="health_exclude_dups"):
        marked = {c.get("row") for c in changes}
        changes = changes + [{"action": "exclude", "row": int(d["row"]), "split": d["split"], "text": d["text"],
                              "label": d["label"]} for d in duplicates if int(d["row"]) not in marked]
    return changes


def save_version(dataset_id: int, changes: list[dict[str, Any]]) -> None:
    """The button that saves the marked changes as a new dataset version (its name kept for the retrain offer)."""
    if on_test := sum(1 for c in changes if c.get("split") == "test"):
        st.caption(f"{on_test} of these are test rows: they are marked, not changed, so the test set stays as "
                   "uploaded and scores stay comparable (make a new test set from the marks on Evaluate).")
    if st.button(f"Save {len(changes)} changes as a new dataset version", key="health_save", disabled=not changes):
        try:
            with session_scope() as s:
                version = create_dataset_version(s, dataset_id, changes)
                st.session_state["health_version"] = (dataset_id, version.id, version.name)
        except ProtolabError as exc:
            st.error(str(exc))


def prefill_controls(issues: pd.DataFrame, mode: confidence.Calibration) -> tuple[bool, float]:
    """The pre-fill toggle and its cut (the lowest score pre-filled), with the precision measured at that cut for
    the audit's mode (the one that ran)."""
    default = mode.cut
    cuts = sorted({*(round(b.low, 2) for b in mode.bands), round(default, 2), 1.0})
    left, right = st.columns([2, 1])
    accept = left.toggle("Pre-fill suggested labels for the flags scored at least this", key="health_accept_all",
                         help="The same rows as `protolab datasets version --relabel-suggested` (its --min-score).")
    cut = right.select_slider("Lowest score pre-filled", options=cuts, value=round(default, 2),
                              key="health_min_score", label_visibility="collapsed")
    measured = confidence.measured_precision(cut, mode.bands)
    count = len(confidence.prefilled(issues.to_dict("records"), cut))
    right = confidence.measured_suggestion_right(cut, mode.bands)
    said = (f"{measured[0]:.0%} of {measured[1]} flags of this audit mode scored {cut:.2f} or more were really "
            f"mislabelled when judged by hand on real tweets, and the suggestion was the right label for {right:.0%}"
            if measured else f"no flags this high were judged on real data for {mode.label}")
    st.caption(f"{count:,} likely label errors are scored {cut:.2f} or more: {said}.")
    return accept, cut


def mode_precision(mode: confidence.Calibration) -> str:
    """What the audit mode that ran is measured to be worth: on real labels, and on seeded flips."""
    real = mode.precision
    said = (f"its likely label errors were really mislabelled {real[0]:.0%} of the time on real labels"
            if real else "its precision on real labels has not been measured")
    synthetic = (f", {mode.synthetic:.0%} on tweets with 5 % of labels flipped at random" if mode.synthetic
                 else "")
    return f"Audit mode: {mode.label}. {said[0].upper()}{said[1:]}{synthetic} (measured: {mode.measured})."


def retrain_offer(dataset_id: int, last_run_id: int | None) -> None:
    saved = st.session_state.get("health_version")
    if not saved or saved[0] != dataset_id:
        return
    _, version_id, name = saved
    st.success(f"Saved dataset version **{name}**.")
    if last_run_id is None:
        st.caption("Train a model on it from the Train page.")
        return
    if st.button(f"Retrain the last run (#{last_run_id}) on {name}", key="health_retrain", type="primary"):
        try:
            with session_scope() as s:
                new_id = jobs.retrain(s, last_run_id, version_id)
        except ProtolabError as exc:
            st.error(str(exc))
            return
        st.info(f"Run #{new_id} started on {name}. When it completes, compare it on the Evaluate page.")
