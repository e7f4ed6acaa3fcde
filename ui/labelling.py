"""The Label page's widgets: the label-set editor (one label or several tags per text), one text at a time (keys
1-9 label, or toggle tags and Enter confirms; s, u), a table batch, progress, background retrains and "save as a
version". Every label is written to the database in the button's callback, before the page reruns, so what the
page shows next is what is stored.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.charts import labelling as charts
from core.errors import ProtolabError
from core.labelling import pool as labels
from core.labelling import retrain
from core.labelling.strategy import Clusters, choose_next
from core.tasks import labelling_tasks
from db import read_scope, session_scope
from db import runs as run_queries
from db.models import Dataset

BATCH_SIZE = 10
WHY = {"diverse": "diverse: the most typical text of a cluster with no label yet",
       "uncertain": "uncertain: the model hesitates most between two labels", "random": "random"}


def _fail(exc: ProtolabError) -> None:
    st.session_state["label_error"] = str(exc)


def show_error() -> None:
    if message := st.session_state.pop("label_error", None):
        st.error(message)


def label_set_editor(dataset_id: int, state: labels.LabelState) -> None:
    """Names and optional one-line descriptions, one label a line (`name: description`), and whether a text gets
    one label or several tags (fixed once texts are labelled)."""
    with st.expander("Label set", expanded=not state.classes):
        tasks = {task.name: task for task in labelling_tasks()}
        names = list(tasks)
        task = st.radio("Each text gets", names, index=names.index(state.task) if state.task in tasks else 0,
                        format_func=lambda n: tasks[n].labelling.choice, horizontal=True,
                        key=f"label_kind_{dataset_id}", disabled=bool(state.labels),
                        help="several tags: keys 1-9 toggle tags, Enter confirms the set (none is allowed); the "
                             "labelled texts save as a multi-label dataset")
        current = "\n".join(f"{c.name}: {c.description}" if c.description else c.name for c in state.classes)
        text = st.text_area("One label a line; `name: one-line description` (the first nine get keys 1-9)",
                            current, key=f"label_set_{dataset_id}", height=140)
        if st.button("Save label set", key="save_label_set"):
            try:
                with session_scope() as s:
                    labels.set_label_set(s, dataset_id, labels.parse_label_set(text), task)
                st.rerun()
            except ProtolabError as exc:
                st.error(str(exc))


def _give(dataset_id: int, row: int, given: list[str] | None) -> None:
    """Store a text's labels (one class, or a tag set) or, with None, its skip."""
    try:
        with session_scope() as s:
            labels.record_labels(s, dataset_id, row, given)
        st.session_state.pop(f"current_{dataset_id}", None)
    except ProtolabError as exc:
        _fail(exc)


def _undo(dataset_id: int) -> None:
    with session_scope() as s:
        row = labels.undo_last(s, dataset_id)
    if row is None:
        st.session_state["label_error"] = "nothing to undo"
    else:
        st.session_state[f"current_{dataset_id}"] = row  # show the text whose label was taken back
        st.session_state[f"why_{dataset_id}"] = "the text whose label you took back"


def next_rows(dataset_id: int, state: labels.LabelState, n_rows: int, n: int, strategy: str,
              clusters: Clusters | None, scores: retrain.PoolScores | None) -> tuple[list[int], str]:
    return choose_next(strategy, n_rows=n_rows, labelled=state.labels.keys(), skipped=state.skipped, n=n,
                       clusters=clusters, margin=scores.margins if scores else None,
                       proba_rows=scores.rows if scores else None, seed=dataset_id)


def one_at_a_time(dataset_id: int, texts: pd.Series, state: labels.LabelState, strategy: str,
                  clusters: Clusters | None, scores: retrain.PoolScores | None) -> None:
    key = f"current_{dataset_id}"
    row = st.session_state.get(key)
    if row is None or row in state.labels or row in state.skipped:
        picks, used = next_rows(dataset_id, state, len(texts), 1, strategy, clusters, scores)
        if not picks:
            st.success("Every text is labelled or skipped.")
            return
        row = st.session_state[key] = picks[0]
        st.session_state[f"why_{dataset_id}"] = WHY[used]
    why = st.session_state.get(f"why_{dataset_id}", "")
    with st.container(border=True, key="label_text"):
        st.markdown(str(texts.iloc[row]).replace("\n", "  \n"), unsafe_allow_html=False)
    caption = f"Text {row + 1} of {len(texts)} · picked as {why}"
    if scores and not state.labelling.several and (guess := scores.suggestion(row)):
        caption += f" · model suggests **{guess[0]}** ({guess[1]:.0%}, run #{scores.run_id})"
    if state.labelling.several:
        tag_toggles(dataset_id, row, caption, state, scores)
        return
    st.caption(caption)
    cols = st.columns(min(len(state.classes), 9) + 2)
    for i, cls in enumerate(state.classes):
        col = cols[i] if i < 9 else st
        col.button(f"{i + 1} · {cls.name}" if i < 9 else cls.name, key=f"label_{i}", help=cls.description or None,
                   shortcut=str(i + 1) if i < 9 else None, on_click=_give, args=(dataset_id, row, [cls.name]),
                   width="stretch")
    cols[-2].button("Skip (s)", key="skip", shortcut="s", on_click=_give, args=(dataset_id, row, None),
                    width="stretch")
    cols[-1].button("Undo (u)", key="undo", shortcut="u", on_click=_undo, args=(dataset_id,),
                    width="stretch")


def _toggle(key: str, tag: str) -> None:
    shown = st.session_state[key]
    shown["tags"] = [t for t in shown["tags"] if t != tag] if tag in shown["tags"] else [*shown["tags"], tag]


def _confirm(dataset_id: int, row: int, key: str) -> None:
    _give(dataset_id, row, list(st.session_state[key]["tags"]))
    st.session_state.pop(key, None)


def tag_toggles(dataset_id: int, row: int, caption: str, state: labels.LabelState,
                scores: retrain.PoolScores | None) -> None:
    """One toggle a tag (keys 1-9), on from the start where the latest retrain suggests it; Enter confirms."""
    key = f"tags_{dataset_id}"
    suggested = scores.suggested_tags(row) if scores else None
    if st.session_state.get(key, {}).get("row") != row:
        st.session_state[key] = {"row": row, "tags": list(suggested or {})}
    if suggested is not None:
        caption += (" · model suggests " + (", ".join(f"**{t}** ({p:.0%})" for t, p in suggested.items())
                                            or "no tag") + f" (run #{scores.run_id})")
    st.caption(caption)
    on = set(st.session_state[key]["tags"])
    cols = st.columns(min(len(state.classes), 9))
    for i, cls in enumerate(state.classes):
        mark = "☑" if cls.name in on else "☐"
        (cols[i] if i < 9 else st).button(
            f"{mark} {i + 1} · {cls.name}" if i < 9 else f"{mark} {cls.name}", key=f"tag_{i}",
            help=cls.description or None, shortcut=str(i + 1) if i < 9 else None,
            type="primary" if cls.name in on else "secondary", on_click=_toggle, args=(key, cls.name),
            width="stretch")
    left, mid, right = st.columns([2, 1, 1])
    left.button(f"Confirm {len(on)} tag{'s' if len(on) != 1 else ''} (Enter)" if on else "Confirm: no tag (Enter)",
                key="confirm_tags", shortcut="Enter", type="primary", on_click=_confirm, args=(dataset_id, row, key),
                width="stretch")
    mid.button("Skip (s)", key="skip", shortcut="s", on_click=_give, args=(dataset_id, row, None),
               width="stretch")
    right.button("Undo (u)", key="undo", shortcut="u", on_click=_undo, args=(dataset_id,), width="stretch")


def table_batch(dataset_id: int, texts: pd.Series, state: labels.LabelState, strategy: str,
                clusters: Clusters | None, scores: retrain.PoolScores | None) -> None:
    key = f"batch_{dataset_id}"
    rows = [r for r in st.session_state.get(key, []) if r not in state.labels and r not in state.skipped]
    if not rows:
        rows, _ = next_rows(dataset_id, state, len(texts), BATCH_SIZE, strategy, clusters, scores)
        st.session_state[key] = rows
    if not rows:
        st.success("Every text is labelled or skipped.")
        return
    if state.labelling.several:
        _tag_batch(dataset_id, texts, rows, state, scores)
        return
    suggestions = [scores.suggestion(r) if scores else None for r in rows]
    table = pd.DataFrame({"row": [r + 1 for r in rows], "text": [str(texts.iloc[r]) for r in rows],
                          "suggested": [f"{g[0]} ({g[1]:.0%})" if g else "" for g in suggestions],
                          "label": [None] * len(rows)})
    edited = st.data_editor(
        table, key=f"batch_editor_{dataset_id}_{len(state.labels)}", hide_index=True,
        disabled=["row", "text", "suggested"],
        column_config={"label": st.column_config.SelectboxColumn("label", options=state.class_names),
                       "text": st.column_config.TextColumn("text", width="large")})
    if st.button("Save these labels", key="save_batch", type="primary"):
        _save_batch(dataset_id, [(rows[i], [str(v)]) for i, v in enumerate(edited["label"])
                                 if isinstance(v, str) and v])


def _tag_batch(dataset_id: int, texts: pd.Series, rows: list[int], state: labels.LabelState,
               scores: retrain.PoolScores | None) -> None:
    """Tag sets as a table: each row's tags start from the suggestion; saving labels every row shown (none
    ticked: the text has no tag)."""
    suggested = [(scores.suggested_tags(r) or {}) if scores else {} for r in rows]
    table = pd.DataFrame({"row": [r + 1 for r in rows], "text": [str(texts.iloc[r]) for r in rows],
                          "tags": [list(g) for g in suggested]})
    edited = st.data_editor(
        table, key=f"batch_editor_{dataset_id}_{len(state.labels)}", hide_index=True, disabled=["row", "text"],
        column_config={"tags": st.column_config.MultiselectColumn("tags", options=state.class_names),
                       "text": st.column_config.TextColumn("text", width="large")})
    if st.button(f"Save these {len(rows)} tag sets (an empty one: no tag)", key="save_batch", type="primary"):
        # a cell holds a list (or an array, once edited); an emptied one may come back as None
        _save_batch(dataset_id, [(rows[i], [] if v is None or isinstance(v, str) else [str(t) for t in v])
                                 for i, v in enumerate(edited["tags"])])


def _save_batch(dataset_id: int, given: list[tuple[int, list[str]]]) -> None:
    try:
        with session_scope() as s:
            for row, given_labels in given:
                labels.record_labels(s, dataset_id, row, given_labels)
        st.session_state.pop(f"batch_{dataset_id}", None)
        st.rerun()
    except ProtolabError as exc:
        st.error(str(exc))


def progress(dataset_id: int, state: labels.LabelState) -> None:
    left, right = st.columns(2)
    left.plotly_chart(charts.labels_per_class(state.counts), key="chart_label_counts")
    with read_scope() as s:
        points = retrain.learning_curve(s, dataset_id)
    if points:
        right.plotly_chart(charts.learning_curve(points), key="chart_learning_curve")
        right.caption("Cross-validated accuracy of a logistic head on MiniLM embeddings of the labels each "
                      "retrain saw.")
    elif state.labelling.several:
        right.info("Tag-set retrains draw no learning curve yet; their suggestions tick the tags.")
    else:
        right.info("The learning curve appears after the first background retrain.")


def retraining(dataset: Dataset, state: labels.LabelState, every: int) -> None:
    """Start a background SetFit run every `every` new labels (a worker process, never this thread)."""
    with read_scope() as s:
        status = retrain.retrain_status(s, dataset.id)
    if retrain.should_retrain(status, every, state.counts):
        with session_scope() as s:
            run_id = retrain.start_retrain(s, dataset.id, dataset.name)
        st.toast(f"Retraining the few-shot model in the background (run #{run_id})")
    elif st.button("Retrain now", key="retrain_now", disabled=status.active_run_id is not None):
        try:
            with session_scope() as s:
                retrain.start_retrain(s, dataset.id, dataset.name)
            st.rerun()
        except ProtolabError as exc:
            st.error(str(exc))
    watch_retrain(dataset.id, status.latest_completed_id)


@st.fragment(run_every="3s")
def watch_retrain(dataset_id: int, shown_completed_id: int | None) -> None:
    """The active retrain's progress; when a newer one completes, rerun the page to use its suggestions."""
    with read_scope() as s:
        status = retrain.retrain_status(s, dataset_id)
        active = run_queries.get_run(s, status.active_run_id) if status.active_run_id else None
        text = f"Retraining (run #{active.id}): {active.status_text or active.status.value}" if active else None
        progress_value = float(active.progress) if active else 0.0
    if text:
        st.progress(progress_value, text=text)
    if status.latest_completed_id != shown_completed_id:
        st.rerun()


def save_version(dataset_id: int, state: labels.LabelState) -> None:
    n = len(state.labels)
    name = st.text_input("Version name (empty: automatic)", "", key="version_name")
    if st.button(f"Save {n} labelled rows as a version", key="save_version", disabled=n == 0):
        try:
            with session_scope() as s:
                version = labels.save_labelled_version(s, dataset_id, name.strip() or None)
                st.success(f"Saved '{version.name}' (id {version.id}): a labelled dataset; train any model on it "
                           "on the Train page.")
        except ProtolabError as exc:
            st.error(str(exc))
