"""The multi-label task's parts of the Datasets and Evaluate pages: mapping an upload of tag sets, a stored
dataset's tag charts, and a run's scores, thresholds and mistakes (whose tag sets can be fixed as a new dataset
version). Named by its task entry (core.tasks)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from core.charts import multilabel as charts
from core.data.storage import ROW_ID
from core.data.types import DatasetError, ParsedTable, PreparedDataset, SplitConfig
from core.multilabel.analysis import SET_TAGS, answers, tag_errors, tag_set_changes
from core.multilabel.dataset import (
    FORMAT_LABELS,
    MultilabelMapping,
    MultilabelOptions,
    guess_multilabel,
    prepare_multilabel,
    rows_needed,
)
from core.multilabel.labels import (
    DELIMITED,
    DELIMITERS,
    FORMATS,
    ONE_HOT,
    TagFormat,
    binary_columns,
    guess_format,
    parse_tags,
    similar_tags,
)
from ui.dataset_forms import pick
from ui.evaluate_views import EDITOR_ROWS, save_marks

ALL = "(every tag)"


def multilabel_upload(table: ParsedTable, split: SplitConfig, fid: str) -> PreparedDataset:
    """The text column, how the tags are written (guessed and shown), the tag column(s) and the cleaning options."""
    cols = [str(c) for c in table.frame.columns]
    guess = guess_multilabel(table.frame)
    text = pick("Text column", cols, guess.text, f"map_text_{fid}")
    kinds = list(FORMATS)
    kind = st.radio("Tags are written as", kinds, index=kinds.index(guess.tags.kind), horizontal=True,
                    format_func=lambda k: FORMAT_LABELS[k] + (" (guessed)" if k == guess.tags.kind else ""),
                    key=f"tag_format_{fid}")
    if kind == ONE_HOT:
        offered = [c for c in cols if c != text]
        ticked = list(guess.tags.columns) if guess.tags.kind == ONE_HOT else binary_columns(table.frame, [text])
        columns = st.multiselect("Tag columns (one 0/1 column per tag; the 0/1 columns are proposed)", offered,
                                 default=[c for c in ticked if c in offered], key=f"tag_columns_{fid}")
        fmt = TagFormat(ONE_HOT, columns=tuple(columns))
    else:
        first = guess.tags.columns[0] if guess.tags.kind != ONE_HOT and guess.tags.columns else None
        column = pick("Tags column", cols, first, f"map_tags_{fid}")
        delimiter = None
        if kind == DELIMITED:
            guessed = guess_format(table.frame[column]).delimiter or DELIMITERS[0]
            delimiter = st.selectbox("Delimiter", DELIMITERS, index=DELIMITERS.index(guessed),
                                     format_func=lambda d: f"'{d}'" + (" (guessed)" if d == guessed else ""),
                                     key=f"delimiter_{fid}_{column}")
        fmt = TagFormat(kind, delimiter, (column,))
    st.caption(f"Reading {fmt.describe()}" + (" (as guessed from the file)." if fmt == guess.tags else "."))
    offer_merge(table, fmt)
    c1, c2 = st.columns(2)
    options = MultilabelOptions(
        merge_similar=c1.checkbox("Merge tags that differ only by case or spaces", key=f"merge_similar_{fid}"),
        drop_rare=c1.checkbox(f"Drop rare tags (fewer than {rows_needed(split)} rows)", key=f"drop_rare_{fid}"),
        drop_constant=c2.checkbox("Drop tags on every row", key=f"drop_constant_{fid}"),
        drop_duplicates=c2.checkbox("Drop exact duplicate texts", key=f"drop_dups_{fid}"))
    return prepare_multilabel(table, MultilabelMapping(text, fmt), split, options)


def offer_merge(table: ParsedTable, fmt: TagFormat) -> None:
    """Name the tags that differ only by case or spaces before validation refuses them, with the spelling a merge
    keeps (nothing when the tags do not parse: validation says why)."""
    try:
        groups = similar_tags(parse_tags(table, fmt))
    except DatasetError:
        return
    if groups:
        said = "; ".join(" / ".join(repr(t) for t in group) + f" → '{group[0]}'" for group in groups.values())
        st.warning(f"Tags spelled in more than one way (by case or spaces only): {said}. Tick "
                   "'Merge tags that differ only by case or spaces' to keep the most used spelling of each.")


def multilabel_inspect(summary: dict[str, Any], profile: dict[str, Any], column: Any) -> None:
    column.metric("Tags", len(profile["tags"]))
    st.caption(f"{profile['rows_without_tags']:,} of {profile['rows']:,} rows have no tag (valid: an empty tag set)")
    st.plotly_chart(charts.tag_frequency(profile["tags"], profile["rows"]), key="chart_tags")
    st.plotly_chart(charts.tags_per_row(profile["tags_per_row"]), key="chart_tags_per_row")
    st.plotly_chart(charts.cooccurrence(profile["cooccurrence"]["tags"], profile["cooccurrence"]["counts"]),
                    key="chart_cooccurrence")
    for tag, texts in profile["samples"].items():
        st.markdown(f"**{tag}**: " + " · ".join(texts))


def multilabel_run(run: Any, split: str) -> None:
    """Scores at the run's per-tag thresholds, beside one global threshold, 0.5 and the two baselines; per-tag
    chart, threshold curves and the texts with missing or extra tags."""
    m = run.metrics or {}
    scores = (m.get("reports") or {}).get(split) or {}
    if not scores:
        st.info(f"Run {run.id} has no {split} scores.")
        return
    cols = st.columns(6)
    shown = (("micro-F1", "micro_f1", ".3f"), ("macro-F1", "macro_f1", ".3f"), ("samples-F1", "samples_f1", ".3f"),
             ("Hamming loss", "hamming_loss", ".4f"), ("Subset accuracy", "subset_accuracy", ".3f"))
    for col, (label, key, fmt) in zip(cols, shown, strict=False):
        col.metric(label, format(scores[key], fmt))
    cols[5].metric("Tags per text", f"{scores['labels_per_row_pred']:.2f}",
                   f"{scores['labels_per_row_pred'] - scores['labels_per_row_true']:+.2f} vs true "
                   f"{scores['labels_per_row_true']:.2f}", delta_color="off")
    st.dataframe(answers(m, split), hide_index=True, key="ml_answers")
    st.plotly_chart(charts.per_tag_scores(scores["per_tag"]), key="ml_per_tag")
    tags = list(m.get("labels") or scores["per_tag"])
    curves = m.get("threshold_curves") or {}
    if curves.get("curves"):
        tag = st.selectbox("Threshold curve of", tags, key="ml_curve_tag")
        j = tags.index(tag)
        st.plotly_chart(charts.threshold_curve(tag, curves["grid"], curves["curves"][j],
                                               (m.get("thresholds") or {}).get(tag, 0.5)), key="ml_curve")
    tag_set_editor(run, split, tags)


def tag_set_editor(run: Any, split: str, tags: list[str]) -> None:
    """The texts with missing or extra tags, whose tag sets can be fixed (or the rows excluded) and saved as a new
    dataset version, then retrained on: the single-label error loop, with whole tag sets. Test rows are marked
    for a new test set, never changed in place (as for single-label runs)."""
    st.subheader("Texts with missing or extra tags")
    picked = st.selectbox("Tag", [ALL, *tags], key="ml_error_tag")
    errors = tag_errors(run.id, split, None if picked == ALL else picked)
    st.caption(f"{len(errors):,} texts of the {split} split; the first {min(len(errors), EDITOR_ROWS)} can be given "
               "the tags they should have, or excluded.")
    marks = errors.head(EDITOR_ROWS).assign(exclude=False)
    marks.insert(0, SET_TAGS, marks["true"])
    # Edits are kept by row position, so each filter gets its own editor: a fix never moves to another row.
    edited = st.data_editor(marks, key=f"ml_marks_{run.id}_{split}_{picked}", hide_index=True, width="stretch",
                            disabled=["text", "true", "predicted", "missing", "extra", ROW_ID],
                            column_order=[SET_TAGS, "exclude", "text", "true", "predicted", "missing", "extra"],
                            column_config={SET_TAGS: st.column_config.MultiselectColumn(
                                "set tags to", options=tags, help="the tags this text should have (may be none)")})
    save_marks(run, split, tag_set_changes(edited, split), key="ml_save_version", noun="fixes")

