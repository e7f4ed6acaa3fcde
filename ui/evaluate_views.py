"""Streamlit sections of the Evaluate page: one run, error analysis, comparison, reviews, downloads.

The page picks what to show; these functions draw it from core.evaluation (predictions, analysis,
comparison) and the stored run metrics. Curves and calibration are cached per run id + prediction-file mtime.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core.charts import evaluation as charts
from core.data import versions
from core.errors import ProtolabError
from core.evaluation import comparison as compare
from core.evaluation import predictions, testsets, uncertainty
from core.evaluation.analysis import SplitAnalysis, analyse_split, misclassified
from core.evaluation.weakness import run_weakness
from core.export.report import build_report
from core.health.lookup import audit_flags, zero_label_scores
from core.labelling.pool import is_unlabelled
from core.metric_keys import RANKING_METRICS
from core.recs.config import protocol_text
from core.runs import jobs
from core.runs.registry import headline_of
from core.tasks import get_task, resolve
from db import datasets as dataset_queries
from db import read_scope, session_scope
from db import runs as run_queries
from db.enums import ReviewVerdict, RunStatus
from ui.common import format_when
from ui.label_curve import label_curve_section

ANY = "(any)"
ERROR_SPLITS = ("validation", "test")
EDITOR_ROWS = 200  # rows offered for relabel/exclude marks: the most confident mistakes
PICTURE = "picture"  # the marks editor's column of previews (a task whose rows are images: Versions.preview)
MARKS_COLUMN_ORDER = ("row", "exclude", "relabel_to", PICTURE, "true", "predicted", "confidence", "audit", "text")


# Read-only results shared across reruns and sessions (cache_resource: no copy per rerun, which
# for 20k predictions is most of the cost). Keys carry the file mtime, so a rewritten file is re-read.
@st.cache_resource(show_spinner=False, max_entries=8)
def cached_predictions(run_id: int, split: str, mtime: float) -> pd.DataFrame:
    return predictions.load_predictions(run_id, split).drop(columns=["proba"], errors="ignore")


@st.cache_resource(show_spinner=False, max_entries=16)
def cached_analysis(run_id: int, split: str, mtime: float, labels: tuple[str, ...]) -> dict[str, Any]:
    """The split's curves, calibration and threshold table, with their figures built once."""
    analysis = analyse_split(run_id, split, list(labels))
    figures = {"roc": charts.roc_curves(analysis.roc), "pr": charts.pr_curves(analysis.pr)} if analysis.roc else {}
    if analysis.calibration:
        figures["calibration"] = charts.reliability_diagram(analysis.calibration)
    return {"analysis": analysis, "figures": figures}


@st.cache_data(show_spinner=False, max_entries=32)
def cached_previews(reference: str, dataset_id: int, values: tuple[str, ...]) -> list[str | None]:
    """A task's previews of the marks editor's rows (thumbnails of images), made once per filter."""
    return list(resolve(reference)(dataset_id, values))


@st.cache_resource(show_spinner=False, max_entries=32)
def cached_report_figures(run_id: int, split: str, normalise: bool) -> dict[str, Any]:
    """Figures of a finished run's stored metrics and metric points (they never change afterwards)."""
    with read_scope() as s:
        report = predictions.split_report(run_queries.get_run(s, run_id), split)
        points = compare.metric_frame(s, [run_id])
    return {"per_class": charts.per_class_bars(report), "learning": charts.learning_curves(points),
            "cm": charts.confusion_matrix(report["confusion_matrix"], report["labels"], normalise)}


def completed_runs() -> list[dict[str, Any]]:
    """Plain rows (id, label, task, dataset, lineage group) of every completed run, newest first."""
    with read_scope() as s:
        datasets = dataset_queries.list_datasets(s)
        records = run_queries.run_records(s, compare.RECORD_METRICS)
    names = {d.id: d.name for d in datasets}
    # Retrains behind the Label page have no test split to evaluate on; the Label page shows their learning curve.
    being_labelled = {d.id for d in datasets if is_unlabelled(d)}
    rows = []
    for r in records:
        if r.dataset_id in being_labelled:
            continue
        headline, score = headline_of(r.model_kind, r.task, r.metrics)
        group = compare.lineage_root(datasets, r.dataset_id)
        rows.append({"id": r.id, "task": str(r.task), "dataset_id": r.dataset_id, "group": group,
                     "group_name": names.get(group, f"dataset #{group}"),
                     "label": f"{compare.run_label(r)} · {r.model_kind} · {names.get(r.dataset_id, '?')}"
                              + (f" · {headline.label} {score:.3f}" if score is not None else "")})
    return rows


def _plotly(fig: Any, key: str, **kwargs: Any) -> Any:
    return st.plotly_chart(fig, key=key, width="stretch", **kwargs)


# --- one run --------------------------------------------------------------------------------

def single_run(run_id: int, split: str) -> None:
    with read_scope() as s:
        run = run_queries.get_run(s, run_id)
        if run is None or run.status != RunStatus.COMPLETED:
            st.error(f"Run {run_id} is not a completed run.")
            return
        dataset_name = run.dataset.name
        weakness, pinned = run_weakness(run, s), bool(run.pinned)
    if weakness.weak:
        st.warning(f"Weak run: {weakness.reason}. It is never a default for demos.", icon="⚠️")
    pin_control(run_id, pinned)
    st.caption(f"{run.model_kind} on **{dataset_name}** · device {run.device or run.metrics.get('device', '-')} · "
               f"trained in {run.metrics.get('train_time_s', run.duration_s) or 0:.1f} s")
    get_task(run.task).part("evaluate")(run, split)
    downloads([run_id], split)
    review_panel([run_id], key_prefix="run")


def pin_control(run_id: int, pinned: bool) -> None:
    """The run chosen on purpose for demos: presentation mode shows the pinned run of its task first."""
    label = "📌 Unpin from demos" if pinned else "📌 Pin for demos"
    if st.button(label, key="pin_demo", help="The demo pages and presentation mode show the pinned run first "
                                             "(one per task), even a weak one."):
        with session_scope() as s:
            jobs.set_demo_pin(s, run_id, not pinned)
        st.rerun()


def ranking_view(run: Any, split: str = "test") -> None:
    """A recommender run: its ranking figures against the popularity baseline and by K (always the test split)."""
    head = compare.ranking_headline(run)
    cols = st.columns(max(len(head), 1))
    for col, (key, value) in zip(cols, head.items(), strict=False):
        col.metric(key, f"{value:.3f}" if isinstance(value, (int, float)) else "-")
    against = compare.ranking_baseline_table(run)
    if against is not None:
        st.dataframe(against, hide_index=True, key="rank_baseline", column_config={
            c: st.column_config.NumberColumn(format="%.3f") for c in ("this run", "popularity baseline")})
        st.caption("Popularity baseline: the most popular unseen items for everyone, scored on the same split.")
    by_k = compare.ranking_by_k(run)
    if by_k:
        _plotly(charts.metric_vs_k(by_k), key="rank_k_chart")
        st.dataframe(pd.DataFrame(by_k).T.rename_axis("K"), key="rank_k_table")
    if run.metrics.get("protocol"):
        st.caption(f"Evaluated on: {protocol_text(run.metrics['protocol'])}")


def classification_run(run: Any, split: str) -> None:
    """A classification run: its figures against its task's baseline (TF-IDF for texts), then the label curve of a
    few-label run."""
    with read_scope() as s:
        baseline = compare.baseline_run(s, run)
    classification_view(run, split, baseline)
    label_curve_section(run)  # only for runs trained on few labels


def classification_view(run: Any, split: str, baseline: Any) -> None:
    try:
        report = predictions.split_report(run, split)
    except ProtolabError as exc:
        st.error(str(exc))
        return
    with read_scope() as s:
        zero_label = zero_label_scores(s, run.dataset_id, split)  # from the dataset's latest data audit
    column = compare.baseline_column(run.task)
    if baseline is not None and split == "test" and not testsets.check_test_sets([run, baseline]).same:
        st.warning(f"The {column} ({compare.run_label(baseline)}) was scored on a different test set: "
                   "its column is left out.", icon="⚠️")
        baseline = None
    intervals = uncertainty.run_intervals(run, split)
    table = compare.headline_table(report, compare.baseline_report(baseline, split), zero_label, intervals,
                                   task=run.task)
    if baseline is None:  # an empty column of "None" says less than the caption below
        table = table.drop(columns=[column])
    st.dataframe(table, hide_index=True, key="headline", column_config={
        c: st.column_config.NumberColumn(format="%.3f")
        for c in ("this run", column, "majority class", compare.ZERO_LABEL_COLUMN)})
    st.caption(compare.baseline_caption(run, baseline)
               + f" · Majority class '{report.get('majority_label', '?')}' = {report.get('majority_rate', 0):.3f}"
               + (" · 95 % intervals: bootstrap over the split's rows" if intervals else ""))
    for warning in uncertainty.run_warnings(run) if split == "test" else []:
        st.warning(warning, icon="📏")
    # Learning curves only for kinds that train in epochs: a TF-IDF run has none to draw.
    names = ["Per class", "Confusion matrix", "ROC / PR", "Calibration", "Threshold"]
    epochs = compare.has_epochs(run)
    if epochs:
        names.insert(4, "Learning curves")
    tabs = dict(zip(names, st.tabs(names), strict=True))
    normalise = tabs["Confusion matrix"].toggle("Row-normalised", key="cm_normalise")
    figures = cached_report_figures(run.id, split, normalise)
    with tabs["Per class"]:
        _plotly(figures["per_class"], key="per_class_chart")
    with tabs["Confusion matrix"]:
        _plotly(figures["cm"], key="cm_chart", on_select="rerun", selection_mode="points")
        st.caption("Click a cell to list its mistakes below.")
    if epochs:
        with tabs["Learning curves"]:
            _plotly(figures["learning"], key="learning_chart")
    try:
        mtime = predictions.predictions_mtime(run.id, split)
        cached = cached_analysis(run.id, split, mtime, tuple(report["labels"]))
    except predictions.ArtifactsMissing as exc:
        st.error(f"The prediction files of this run cannot be read: {exc}. Stored metrics are shown above; "
                 "curves, calibration and error analysis need the artifacts.")
        return
    analysis, figures = cached["analysis"], cached["figures"]
    with tabs["ROC / PR"]:
        if "roc" in figures:
            left, right = st.columns(2)
            with left:
                _plotly(figures["roc"], key="roc_chart")
            with right:
                _plotly(figures["pr"], key="pr_chart")
        else:
            st.info("This run's predictions carry no class probabilities.")
    with tabs["Calibration"]:
        if "calibration" in figures:
            _plotly(figures["calibration"], key="calibration_chart")
    with tabs["Threshold"]:
        threshold_view(analysis)
    error_analysis(run, split, report["labels"])


def ranking_comparison(runs: list[Any], points: pd.DataFrame, names: dict[int, str]) -> None:
    metric = st.selectbox("Metric at K", list(RANKING_METRICS), key="cmp_k_metric")
    _plotly(charts.metric_vs_k_comparison({r.id: compare.ranking_by_k(r) for r in runs}, names, metric),
            key="cmp_k_chart")


def classification_comparison(runs: list[Any], points: pd.DataFrame, names: dict[int, str]) -> None:
    if points.empty:
        return
    curves = sorted({f"{sp}:{n}" for n, sp in points[["name", "split"]].drop_duplicates().itertuples(index=False)})
    picked = st.selectbox("Learning curve", curves, key="cmp_curve",
                          index=curves.index("validation:macro_f1") if "validation:macro_f1" in curves else 0)
    split, name = picked.split(":", 1)
    _plotly(charts.overlaid_learning_curves(points, names, name, split), key="cmp_curves")


def threshold_view(analysis: SplitAnalysis) -> None:
    if analysis.thresholds is None:
        st.info("The threshold explorer is for two-class tasks with probabilities.")
        return
    t = st.slider("Threshold", 0.0, 1.0, 0.5, 0.02, key="threshold")
    _plotly(charts.threshold_chart(analysis.thresholds, analysis.positive_label or "", t), key="threshold_chart")
    row = analysis.thresholds.iloc[(analysis.thresholds["threshold"] - t).abs().argmin()]
    st.caption(f"At {row['threshold']:.2f}: precision {row['precision']:.3f}, recall {row['recall']:.3f}, "
               f"F1 {row['f1']:.3f}, {int(row['predicted_positive'])} predicted {analysis.positive_label}")


def _apply_cell_click(labels: list[str], split: str) -> None:
    # A click on the confusion matrix selects the invisible marker of that cell: copy it into the
    # two filters once per new click, so the selectboxes stay free to change afterwards. The
    # matrix is of the page's split, so the mistakes listed switch to that split too.
    points = (st.session_state.get("cm_chart") or {}).get("selection", {}).get("points") or []
    cell = tuple((points[0].get("customdata") or ())[:2]) if points else ()
    if len(cell) == 2 and cell != st.session_state.get("_cm_applied"):
        st.session_state["_cm_applied"] = cell
        st.session_state["err_true"], st.session_state["err_pred"] = (str(c) if c in labels else ANY for c in cell)
        st.session_state["err_split"] = split


def error_analysis(run: Any, page_split: str, labels: list[str]) -> None:
    st.subheader("Error analysis")
    _apply_cell_click(labels, page_split)
    # Validation first: relabelling and excluding change training and validation rows; the test set
    # stays as uploaded, so its mistakes can only be marked for a new test set.
    split = st.radio("Mistakes from", list(ERROR_SPLITS), horizontal=True, key="err_split",
                     help="Fix validation mistakes; test mistakes are marked for a new test set on request.")
    try:
        preds = cached_predictions(run.id, split, predictions.predictions_mtime(run.id, split))
    except predictions.ArtifactsMissing as exc:
        st.info(f"No {split} predictions to analyse: {exc}")
        return
    left, right = st.columns(2)
    true = left.selectbox("True label", [ANY, *labels], key="err_true")
    pred = right.selectbox("Predicted label", [ANY, *labels], key="err_pred")
    wrong = misclassified(preds, None if true == ANY else true, None if pred == ANY else pred)
    st.caption(f"{len(wrong)} mistakes of {len(preds)} predictions, most confident first; the first "
               f"{min(len(wrong), EDITOR_ROWS)} can be marked for relabelling or exclusion.")
    marks = wrong.head(EDITOR_ROWS).assign(exclude=False, relabel_to=None)
    content = marks_content(run, preds, marks)
    with read_scope() as s:
        flags = audit_flags(s, run.dataset_id)  # what the dataset's latest data audit thinks of each row
    if flags:
        marks.insert(5, "audit", [flags.get((t, y), "") for t, y in zip(marks["text"], marks["true"], strict=True)])
    # Edits are kept by row position, so each filter gets its own editor: a mark never moves to another row.
    # The marks come first: after a long text column they sat off-screen to the right.
    edited = st.data_editor(marks, key=f"marks_{run.id}_{split}_{true}_{pred}", hide_index=True, width="stretch",
                            column_order=[c for c in MARKS_COLUMN_ORDER if c in marks.columns],
                            disabled=["row", "text", "true", "predicted", "confidence", "audit", PICTURE],
                            column_config={
                                "confidence": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0,
                                                                              format="%.3f"),
                                "relabel_to": st.column_config.SelectboxColumn("relabel to", options=labels),
                                PICTURE: st.column_config.ImageColumn(PICTURE)})
    save_marks(run, split, versions.marks_to_changes(edited, split, content))


def save_marks(run: Any, split: str, changes: list[dict[str, Any]], *, key: str = "save_version",
               noun: str = "marks") -> None:
    """The changes marked in an error table: test rows wait for a new test set; training and validation rows are
    saved as a new dataset version on request, which can then be retrained on."""
    if split == "test":
        test_marks_panel(run, changes)
    elif st.button(f"Save {len(changes)} {noun} as a new dataset version", key=key, disabled=not changes):
        try:
            with session_scope() as s:
                version = versions.create_dataset_version(s, run.dataset_id, changes, source_run_id=run.id)
            st.session_state["new_version"] = (run.id, version.id, version.name)
        except ProtolabError as exc:
            st.error(str(exc))
    retrain_panel(run.id)


def marks_content(run: Any, preds: pd.DataFrame, marks: pd.DataFrame) -> str:
    """The column the marks name their rows by (the task's Versions.content), added to `marks` with the task's
    previews when the run's predictions carry it (an image run's keys and thumbnails); "text" otherwise."""
    entry = get_task(run.task).versions
    if entry is None or entry.content == "text" or entry.content not in preds.columns:
        return "text"
    marks[entry.content] = preds[entry.content].iloc[marks["row"]].astype(str).to_numpy()
    if entry.preview:
        marks[PICTURE] = cached_previews(entry.preview, run.dataset_id, tuple(marks[entry.content]))
    return entry.content


def test_marks_panel(run: Any, changes: list[dict[str, Any]]) -> None:
    """Test-split mistakes are marked, not fixed: a new, differently named test set only when asked for."""
    with read_scope() as s:
        dataset = dataset_queries.get_dataset(s, run.dataset_id)
        pending, name = len(versions.pending_test_marks(dataset)), versions.test_set_name(dataset)
    st.caption(f"The test set (**{name}**) stays as it was uploaded, so scores on it stay comparable. Marked "
               f"mistakes wait here until you make a new test set from them; {pending} marked so far.")
    left, right = st.columns(2)
    if left.button(f"Mark {len(changes)} test-set mistakes", key="mark_test", disabled=not changes):
        with session_scope() as s:
            versions.mark_test_rows(s, run.dataset_id, changes)
        st.rerun()
    if right.button(f"Make a new test set with the {pending} marked fixes", key="new_test_set", disabled=not pending):
        try:
            with session_scope() as s:
                version = versions.create_dataset_version(s, run.dataset_id, [], source_run_id=run.id,
                                                          new_test_set=True)
            st.session_state["new_version"] = (run.id, version.id, version.name)
            st.warning(f"{version.name} has a new test set: runs on it are not compared with runs on {name}.")
        except ProtolabError as exc:
            st.error(str(exc))


def retrain_panel(run_id: int) -> None:
    saved = st.session_state.get("new_version")
    if not saved or saved[0] != run_id:
        return
    _, dataset_id, name = saved
    st.success(f"Saved dataset version **{name}**.")
    if st.button("Retrain with the same configuration", key="retrain", type="primary"):
        try:
            with session_scope() as s:
                new_id = jobs.retrain(s, run_id, dataset_id)
        except ProtolabError as exc:
            st.error(str(exc))
            return
        st.session_state["compare_preset"] = [run_id, new_id]
        st.info(f"Run #{new_id} started on {name}. When it completes, compare it under **Compare runs**.")


# --- several runs ---------------------------------------------------------------------------

def compare_preset(current: int | None) -> list[int]:
    """The runs Compare opens on: a retrain beside the run it came from, else the current run and its
    TF-IDF baseline (the first is the run whose dataset is shown)."""
    preset = st.session_state.get("compare_preset") or []
    if current is None or (preset and preset[0] == current):
        return preset
    with read_scope() as s:
        run = run_queries.get_run(s, current)
        baseline = compare.baseline_run(s, run) if run is not None and not predictions.is_ranking(run) else None
        return [current] + ([baseline.id] if baseline is not None else [])


def comparison(rows: list[dict[str, Any]], current: int | None = None) -> None:
    """Several runs of one dataset (with its versions) side by side, opened on `current` and its baseline."""
    groups = {r["group"]: r for r in rows}
    preset = compare_preset(current)
    by_id = {r["id"]: r for r in rows}
    options = sorted(groups)
    default = options.index(by_id[preset[0]]["group"]) if preset and preset[0] in by_id else 0
    group = st.selectbox("Dataset (with its versions)", options, index=default, key="cmp_dataset",
                         format_func=lambda g: groups[g]["group_name"])
    ids = [r["id"] for r in rows if r["group"] == group]
    with read_scope() as s:
        runs = run_queries.run_records(s, compare.RECORD_METRICS, run_ids=ids)
        board = compare.leaderboard(runs)
        differing = compare.config_differences(runs) if len(runs) > 1 else []
        st.dataframe(board, hide_index=True, key="leaderboard", column_config={
            c: st.column_config.Column(f"{c} ≠", help="differs between runs") for c in differing if c in board})
        st.caption("Sorted by the headline metric; click a column to sort. ≠ marks hyperparameters that differ.")
        valid_preset = [i for i in preset if i in ids]
        if len(valid_preset) == 1:  # no baseline: the best other run beside it
            valid_preset += [i for i in board["run"].tolist() if i not in valid_preset][:1]
        chosen = st.multiselect("Runs to compare", board["run"].tolist(), key="cmp_runs",
                                default=valid_preset or board["run"].head(3).tolist(),
                                format_func=lambda i: by_id[i]["label"])
        selected = [r for r in runs if r.id in chosen]
        if len(selected) < 2:
            st.info("Pick at least two runs to compare.")
            return
        test_set_warning(selected)
        _comparison_charts(selected, compare.metric_frame(s, chosen))
    downloads(chosen, "test")
    review_panel(chosen, key_prefix="cmp")


def test_set_warning(runs: list[Any]) -> None:
    """Runs scored on different test sets are said to be so, and compared on the test rows they share."""
    check = testsets.check_test_sets(runs)
    if check.same:
        tell_apart(runs)
        return
    st.warning(check.message, icon="⚠️")
    if check.shared_rows:
        shared = testsets.scores_on_shared_rows([r.id for r in runs])
        st.dataframe(shared, hide_index=True, key="cmp_shared", column_config={
            c: st.column_config.NumberColumn(format="%.3f") for c in testsets.SHARED_KEYS})


def tell_apart(runs: list[Any]) -> None:
    """Whether the shared test set can tell the two best runs apart (a paired bootstrap of their macro-F1)."""
    if any(predictions.is_ranking(r) for r in runs):
        return
    best = sorted(runs, key=lambda r: -float((r.metrics or {}).get("macro_f1") or 0.0))[:2]
    try:
        diff = testsets.paired_difference_on_shared_rows(best[0].id, best[1].id)
    except predictions.ArtifactsMissing:
        return
    if diff is None:
        return
    a, b = compare.run_label(best[0]), compare.run_label(best[1])
    if diff[0] <= 0.0 <= diff[1]:
        st.warning(f"This test set is too small to tell {a} and {b} apart: the difference in macro-F1 is between "
                   f"{diff[0]:+.3f} and {diff[1]:+.3f} (95 %, paired bootstrap), which includes no difference.",
                   icon="📏")
    else:
        st.caption(f"{a} beats {b} by {diff[0]:.3f} to {diff[1]:.3f} macro-F1 on this test set (95 %, paired).")


def _comparison_charts(runs: list[Any], points: pd.DataFrame) -> None:
    names = {r.id: compare.run_label(r) for r in runs}
    _plotly(charts.runs_compared(runs, names), key="cmp_bars")
    get_task(runs[0].task).part("compare")(runs, points, names)  # the runs of one dataset's lineage: one task
    differing = compare.config_differences(runs)
    configs = pd.DataFrame([{"run": names[r.id], **{k: repr(v) for k, v in compare.settings_of(r).items()}}
                            for r in runs])
    st.markdown("**Hyperparameters** (differences highlighted)")
    st.dataframe(configs.style.map(lambda _: "background-color: #fff3cd", subset=differing or None)
                 if differing else configs, hide_index=True, key="cmp_configs")


# --- reviews and downloads -----------------------------------------------------------------

def review_panel(run_ids: list[int], key_prefix: str) -> None:
    """Stakeholder reviews of a run (one id) or a comparison (several); reusable by other pages."""
    st.subheader("Reviews")
    with read_scope() as s:
        reviews = {(r.reviewer, r.verdict, r.comment, tuple(r.compared_run_ids or ())): r
                   for i in run_ids for r in run_queries.reviews_of(s, i)}
    for (reviewer, verdict, comment, compared), r in reviews.items():
        icon = "✅" if verdict == ReviewVerdict.APPROVE else "🛠️"
        scope = f" (comparing {', '.join(f'#{c}' for c in compared)})" if compared else ""
        with st.chat_message("user", avatar=icon):
            st.markdown(f"**{reviewer}** · {verdict.value.replace('_', ' ')}{scope} · {format_when(r.created_at)}")
            st.text(comment)
    with st.form(f"{key_prefix}_review_form", clear_on_submit=True):
        name = st.text_input("Your name", key=f"{key_prefix}_reviewer")
        comment = st.text_area("Comment", key=f"{key_prefix}_comment")
        verdict = st.radio("Verdict", ["approve", "needs_work"], horizontal=True, key=f"{key_prefix}_verdict",
                           format_func=lambda v: "Approve" if v == "approve" else "Needs work")
        if st.form_submit_button("Submit review", key=f"{key_prefix}_submit"):
            if not name.strip():
                st.error("Please give your name.")
                return
            compared = run_ids if len(run_ids) > 1 else []
            with session_scope() as s:
                for i in run_ids:
                    run_queries.add_review(s, i, reviewer=name, verdict=ReviewVerdict(verdict), comment=comment,
                                           compared_run_ids=compared)
            st.rerun()


def downloads(run_ids: list[int], split: str) -> None:
    left, right = st.columns(2)
    left.download_button("Download report (HTML)", data=lambda: build_report(run_ids, split),
                         file_name=f"protolab-report-{'-'.join(map(str, run_ids))}.html", mime="text/html",
                         key="download_report", on_click="ignore")
    if len(run_ids) == 1 and predictions.predictions_path(run_ids[0], split).exists():
        right.download_button("Predictions (CSV)", data=lambda: predictions.predictions_csv(run_ids[0], split),
                              file_name=f"predictions-{run_ids[0]}-{split}.csv", mime="text/csv",
                              key="download_csv", on_click="ignore")
