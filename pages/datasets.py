"""Datasets: upload a file, check the parsed preview, mapping and validation, then save; inspect, rename, delete.

A thin page: reading, validation, splitting, storage and profiles live in core.data (one module each).
"""

import streamlit as st

from core.charts import datasets as charts
from core.data import datasets as ds
from core.data.classification import prepare_classification
from core.data.demo import DEMOS, load_demo_dataset
from core.data.interactions import prepare_interactions
from core.data.mapping import guess_catalogue, guess_classification, guess_interactions
from core.data.profiling import classification_profile, interactions_profile
from core.data.splits import parse_fractions
from core.data.storage import load_frame
from core.data.types import (
    SPLIT_NAMES,
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
from core.text.pretrained import default_token_counter
from db import datasets as dataset_queries
from db import read_scope, session_scope
from ui.common import ensure_db
from ui.data_health import data_health_tab

ensure_db()
st.title("📂 Datasets")
NONE = "(none)"


@st.cache_data(show_spinner="Reading the file…", max_entries=4)
def read_upload(data: bytes, filename: str) -> ParsedTable:
    return ds.read_table(data, filename)


@st.cache_resource(show_spinner=False)
def token_counter():  # noqa: ANN201 - a closure over the cached tokenizer
    return default_token_counter()


@st.cache_data(show_spinner="Profiling…", max_entries=8)
def profile_of(dataset_id: int, content_hash: str, task: str) -> dict:
    with read_scope() as s:
        frame = load_frame(dataset_queries.get_dataset(s, dataset_id))
    if task != "classification":
        return interactions_profile(frame)
    try:
        counter = token_counter()
    except ProtolabError:  # no tokenizer available: character lengths only
        counter = None
    return classification_profile(frame, counter)


def pick(label: str, columns: list[str], guess: str | None, key: str, optional: bool = False) -> str | None:
    options = ([NONE] if optional else []) + columns
    value = st.selectbox(label, options, index=options.index(guess) if guess in options else 0, key=key)
    return None if value == NONE else value


def prepare(table: ParsedTable, task: str, split: SplitConfig, fid: str) -> PreparedDataset:
    """The mapping widgets, keyed by the upload's file id `fid` (add_dataset says why)."""
    cols = list(table.frame.columns)
    if task == "classification":
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


def add_dataset() -> None:
    st.subheader("Try a demo dataset")
    for col, demo in zip(st.columns(len(DEMOS)), DEMOS.values(), strict=True):
        if col.button(f"Load {demo.title}", key=f"demo_{demo.name}", help=demo.description):
            row = load_demo_dataset(demo.name)
            col.success(f"Loaded '{row.name}' ({row.row_count} rows)")
    st.subheader("Upload your own")
    task = st.radio("Task", ["classification", "interactions"], key="task", horizontal=True)
    upload = st.file_uploader("CSV, TSV, JSON, JSON Lines, Parquet or .xlsx (also .gz / .zip)", key="upload")
    if upload is None:
        return
    # Every widget below is keyed by the file: the browser keeps a widget's value while its key stays the same,
    # so shared keys showed (and saved) the previous file's columns and name after another upload.
    fid = upload.file_id
    table = read_upload(upload.getvalue(), upload.name)
    st.caption(f"{upload.name}: {table.file_format}, {len(table.frame):,} rows, encoding {table.encoding or 'n/a'}")
    for note in table.notes:
        st.info(note)
    st.dataframe(table.frame.head(20), key=f"preview_{fid}")
    left, right = st.columns(2)
    fractions = left.text_input("Split train,validation,test", "0.8,0.1,0.1", key=f"split_{fid}")
    seed = int(right.number_input("Seed", value=42, step=1, key=f"seed_{fid}"))
    method = "stratified"
    if task == "interactions":
        method = {"per-user random": "random", "leave last out (by time)": "time"}[
            st.radio("Split", ["per-user random", "leave last out (by time)"], key=f"split_method_{fid}",
                     horizontal=True)]
    prepared = prepare(table, task, SplitConfig(parse_fractions(fractions), seed, method), fid)
    for warning in prepared.warnings:
        st.warning(warning)
    counts = prepared.frame["split"].value_counts()
    st.success(f"Checks passed: {len(prepared.frame):,} rows; "
               + ", ".join(f"{counts.get(name, 0):,} {name}" for name in SPLIT_NAMES))
    with read_scope() as s:
        same = ds.find_same_content(s, prepared)
        same_name = same.name if same else None
    allow = False
    if same_name:
        st.info(f"This content is already stored as '{same_name}': use it below, or store a copy.")
        allow = st.checkbox("Store a copy anyway", key=f"allow_duplicate_{fid}")
    name = st.text_input("Dataset name", upload.name.rsplit(".", 1)[0][:200], key=f"name_{fid}")
    if st.button("Save dataset", key=f"save_{fid}", type="primary", disabled=bool(same_name) and not allow):
        with session_scope() as s:
            row = ds.import_dataset(s, prepared, name=name, allow_duplicate=allow)
        st.success(f"Saved '{row.name}' (id {row.id}).")


def inspect(summary: dict) -> None:
    stats = summary["stats"]
    cols = st.columns(3)
    cols[0].metric("Rows", f"{summary['rows']:,}")
    cols[1].metric("Encoding", summary["encoding"] or "n/a")
    st.plotly_chart(charts.split_sizes({k: summary["splits"].get(k, 0) for k in SPLIT_NAMES}), key="chart_splits")
    for warning in summary["warnings"]:
        st.warning(warning)
    if summary["mapping"].get("unlabelled"):
        st.info("Unlabelled texts: define a label set and label them on the Label page.")
        return
    profile = profile_of(summary["id"], summary["content_hash"], summary["task"])
    if summary["task"] == "classification":
        cols[2].metric("Classes", len(summary["classes"]))
        st.plotly_chart(charts.class_balance(profile["classes"], profile["imbalance_ratio"]), key="chart_classes")
        st.plotly_chart(charts.text_length_histogram(profile["chars"], profile["tokens"]), key="chart_lengths")
        st.caption(f"{profile['duplicates']} exact duplicate texts; {stats.get('long_texts', 0)} over-long texts")
        if len(profile["samples"]) < len(profile["classes"]):
            st.caption(f"Examples from the {len(profile['samples'])} largest of {len(profile['classes'])} classes")
        for label, texts in profile["samples"].items():
            st.markdown(f"**{label}**: " + " · ".join(texts))
    else:
        cols[2].metric("Users / items", f"{profile['users']:,} / {profile['items']:,}")
        st.caption(f"{profile['interactions']:,} interactions, sparsity {profile['sparsity']:.2%}")
        if profile["ratings"] is not None:
            st.plotly_chart(charts.rating_histogram(profile["ratings"]), key="chart_ratings")
        st.plotly_chart(charts.long_tail(profile["per_user"], "user"), key="chart_users")
        st.plotly_chart(charts.long_tail(profile["per_item"], "item"), key="chart_items")


def manage(summary: dict) -> None:
    # Keyed by dataset: one shared key kept the first dataset's name in the box after switching.
    new_name = st.text_input("Rename to", summary["name"], key=f"rename_to_{summary['id']}")
    if st.button("Rename", key="rename") and new_name != summary["name"]:
        with session_scope() as s:
            row = ds.rename_dataset(s, summary["id"], new_name)
            st.session_state["_flash"] = f"Renamed '{summary['name']}' to '{row.name}'."
        st.rerun()
    with read_scope() as s:
        runs = ds.runs_to_delete(s, summary["id"])
    if st.button("Delete dataset", key="delete"):
        st.session_state["confirm_delete"] = summary["id"]
    if st.session_state.get("confirm_delete") == summary["id"]:
        gone = f" and its {len(runs)} runs ({', '.join(f'#{r}' for r in runs)})" if runs else ""
        st.warning(f"Delete '{summary['name']}'{gone}? This cannot be undone.")
        if st.button("Yes, delete", key="confirm_delete_yes", type="primary"):
            with session_scope() as s:
                ds.delete_dataset(s, summary["id"])
            st.session_state.pop("confirm_delete")
            st.rerun()


add_tab, list_tab, health_tab = st.tabs(["Add a dataset", "Your datasets", "Data health"])
with add_tab:
    try:
        add_dataset()
    except ProtolabError as exc:
        st.error(str(exc))
with list_tab:
    with read_scope() as s:
        summaries = [ds.summarize(d) for d in dataset_queries.list_datasets(s)]
    if not summaries:
        st.info("No datasets yet: upload one or load a demo dataset.")
    else:
        st.dataframe([{k: d[k] for k in ("id", "name", "task", "rows", "created_at")} for d in summaries],
                     key="datasets_table")
        # Chosen by id, so a rename keeps the same dataset selected (a name would vanish from the options).
        by_id = {d["id"]: d for d in summaries}
        chosen = by_id[st.selectbox("Inspect", list(by_id), format_func=lambda i: by_id[i]["name"], key="inspect")]
        if flash := st.session_state.pop("_flash", None):
            st.success(flash)
        try:
            inspect(chosen)
            manage(chosen)
        except ProtolabError as exc:
            st.error(str(exc))
with health_tab:
    data_health_tab()
