"""The Datasets page's per-task parts: the mapping widgets of an upload and the view of a stored dataset.

Each task entry (core.tasks) names its upload and inspect functions here; the page draws what is common.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core.charts import datasets as charts
from core.data import datasets as ds
from core.data.classification import prepare_classification
from core.data.interactions import prepare_interactions
from core.data.mapping import guess_catalogue, guess_classification, guess_interactions
from core.data.profiling import classification_profile as text_profile
from core.data.types import (
    CatalogueMapping,
    ClassificationMapping,
    CleanOptions,
    InteractionsMapping,
    ParsedTable,
    PreparedDataset,
    SplitConfig,
)
from core.data.unlabelled import prepare_unlabelled
from core.errors import ProtolabError
from core.tasks import all_tasks, get_task, resolve
from core.text.pretrained import default_token_counter

NONE = "(none)"
GUESSED = "task_guessed"  # the task the last upload was claimed by (session state)


@st.cache_data(show_spinner="Reading the file…", max_entries=4)
def read_upload(data: bytes, filename: str, reader: str | None = None) -> ParsedTable:
    """An upload as its task reads it (`reader`: the task entry's; None: a table file)."""
    return resolve(reader)(data, filename) if reader else ds.read_table(data, filename)


def offer_task() -> None:
    """The uploader's callback: a file that a task claims (a ZIP of images, a table of tag sets) switches the task
    picker to it."""
    upload = st.session_state.get("upload")
    st.session_state.pop(GUESSED, None)
    if upload is None:
        return
    current = st.session_state.get("task")
    if current is not None and get_task(current).claims and resolve(get_task(current).claims)(
            upload.getvalue(), upload.name):
        st.session_state[GUESSED] = current
        return
    for task in all_tasks():
        if task.claims and resolve(task.claims)(upload.getvalue(), upload.name):
            st.session_state["task"] = st.session_state[GUESSED] = str(task.name)
            return


def said_guess(task: Any) -> None:
    """Say that the task was picked from the file's shape, so a wrong guess is noticed and changed."""
    if st.session_state.get(GUESSED) == str(task.name):
        st.info(f"This file looks like {task.holds}: the task is set to {task.label} (change it above if not).")


@st.cache_resource(show_spinner=False)
def token_counter():  # noqa: ANN201 - a closure over the cached tokenizer
    return default_token_counter()


def classification_profile(frame: pd.DataFrame) -> dict[str, Any]:
    """A classification dataset's profile, tokens counted by the default tokenizer (characters only without one)."""
    try:
        counter = token_counter()
    except ProtolabError:  # no tokenizer available: character lengths only
        counter = None
    return text_profile(frame, counter)


def pick(label: str, columns: list[str], guess: str | None, key: str, optional: bool = False) -> str | None:
    options = ([NONE] if optional else []) + columns
    value = st.selectbox(label, options, index=options.index(guess) if guess in options else 0, key=key)
    return None if value == NONE else value


# --- text classification -------------------------------------------------------------------------------

def classification_upload(table: ParsedTable, split: SplitConfig, fid: str) -> PreparedDataset:
    """The text and label columns (or "no labels yet") and the cleaning options; widgets keyed by the file `fid`."""
    cols = list(table.frame.columns)
    guess = guess_classification(table.frame)
    # Ticked from the start when no column looks like labels (a file of texts alone).
    if st.checkbox("No labels yet (label the texts on the Label page)", value=guess.label is None,
                   key=f"unlabelled_{fid}"):
        return prepare_unlabelled(table, pick("Text column", cols, guess.text, f"map_text_{fid}"))
    mapping = ClassificationMapping(pick("Text column", cols, guess.text, f"map_text_{fid}"),
                                    pick("Label column", cols, guess.label, f"map_label_{fid}"))
    options = CleanOptions(drop_duplicates=st.checkbox("Drop exact duplicate texts", key=f"drop_dups_{fid}"),
                           drop_rare_classes=st.checkbox("Drop classes too small for every split",
                                                         key=f"drop_rare_{fid}"))
    return prepare_classification(table, mapping, split, options)


def classification_inspect(summary: dict[str, Any], profile: dict[str, Any], column: Any) -> None:
    column.metric("Classes", len(summary.get("classes", {})))  # a dataset written without stats has none
    st.plotly_chart(charts.class_balance(profile["classes"], profile["imbalance_ratio"]), key="chart_classes")
    st.plotly_chart(charts.text_length_histogram(profile["chars"], profile["tokens"]), key="chart_lengths")
    st.caption(f"{profile['duplicates']} exact duplicate texts; {summary['stats'].get('long_texts', 0)} over-long "
               "texts")
    if len(profile["samples"]) < len(profile["classes"]):
        st.caption(f"Examples from the {len(profile['samples'])} largest of {len(profile['classes'])} classes")
    for label, texts in profile["samples"].items():
        st.markdown(f"**{label}**: " + " · ".join(texts))


# --- interactions ----------------------------------------------------------------------------------------

def interactions_upload(table: ParsedTable, split: SplitConfig, fid: str) -> PreparedDataset:
    """The user, item, rating and time columns and an optional catalogue; widgets keyed by the file `fid`."""
    cols = list(table.frame.columns)
    guess = guess_interactions(table.frame)
    mapping = InteractionsMapping(
        pick("User column", cols, guess.user, f"map_user_{fid}"),
        pick("Item column", cols, guess.item, f"map_item_{fid}"),
        pick("Rating column", cols, guess.rating, f"map_rating_{fid}", True),
        pick("Timestamp column", cols, guess.timestamp, f"map_timestamp_{fid}", True))
    items_file = st.file_uploader("Item catalogue (optional)", key=f"items_upload_{fid}")
    items, items_mapping = None, None
    if items_file is not None:
        items = read_upload(items_file.getvalue(), items_file.name)
        g = guess_catalogue(items.frame, id_hint=mapping.item)
        icols, cid = list(items.frame.columns), items_file.file_id  # keyed by the catalogue file too
        items_mapping = CatalogueMapping(
            pick("Catalogue item id", icols, g.item, f"map_item_id_{cid}"),
            pick("Title", icols, g.title, f"map_title_{cid}"),
            pick("Description", icols, g.text, f"map_item_text_{cid}", True),
            pick("Genres", icols, g.genres, f"map_genres_{cid}", True))
    return prepare_interactions(table, mapping, split, items, items_mapping)


def interactions_inspect(summary: dict[str, Any], profile: dict[str, Any], column: Any) -> None:
    column.metric("Users / items", f"{profile['users']:,} / {profile['items']:,}")
    st.caption(f"{profile['interactions']:,} interactions, sparsity {profile['sparsity']:.2%}")
    if profile["ratings"] is not None:
        st.plotly_chart(charts.rating_histogram(profile["ratings"]), key="chart_ratings")
    st.plotly_chart(charts.long_tail(profile["per_user"], "user"), key="chart_users")
    st.plotly_chart(charts.long_tail(profile["per_item"], "item"), key="chart_items")
