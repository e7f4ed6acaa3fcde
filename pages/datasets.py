"""Datasets: upload a file, check the parsed preview, mapping and validation, then save; inspect, rename, delete.

A thin page: reading, validation, splitting, storage and profiles live in core.data (one module each).
"""

import streamlit as st

from core.charts import datasets as charts
from core.data import datasets as ds
from core.data.demo import DEMOS, load_demo_dataset
from core.data.splits import parse_fractions
from core.data.storage import load_frame
from core.data.types import SPLIT_NAMES, SplitConfig
from core.errors import ProtolabError
from core.tasks import all_tasks, get_task
from db import datasets as dataset_queries
from db import read_scope, session_scope
from ui.common import ensure_db
from ui.data_health import data_health_tab
from ui.dataset_forms import offer_task, read_upload, said_guess

ensure_db()
st.title("📂 Datasets")


@st.cache_data(show_spinner="Profiling…", max_entries=8)
def profile_of(dataset_id: int, content_hash: str, task: str) -> dict:
    with read_scope() as s:
        frame = load_frame(dataset_queries.get_dataset(s, dataset_id))
    return get_task(task).part("profile")(frame)


def add_dataset() -> None:
    st.subheader("Try a demo dataset")
    for col, demo in zip(st.columns(len(DEMOS)), DEMOS.values(), strict=True):
        if col.button(f"Load {demo.title}", key=f"demo_{demo.name}", help=demo.description):
            row = load_demo_dataset(demo.name)
            col.success(f"Loaded '{row.name}' ({row.row_count} rows)")
    st.subheader("Upload your own")
    tasks = {str(t.name): t for t in all_tasks()}
    task = tasks[st.radio("Task", list(tasks), key="task", horizontal=True, format_func=lambda n: tasks[n].label)]
    upload = st.file_uploader("CSV, TSV, JSON, JSON Lines, Parquet or .xlsx (also .gz / .zip), or a ZIP of images",
                              key="upload", on_change=offer_task)
    if upload is None:
        return
    # Every widget below is keyed by the file: the browser keeps a widget's value while its key stays the same,
    # so shared keys showed (and saved) the previous file's columns and name after another upload.
    fid = upload.file_id
    said_guess(task)
    table = read_upload(upload.getvalue(), upload.name, task.reader)
    st.caption(f"{upload.name}: {table.file_format}, {len(table.frame):,} rows, encoding {table.encoding or 'n/a'}")
    for note in table.notes:
        st.info(note)
    st.dataframe(table.preview(20), key=f"preview_{fid}")
    left, right = st.columns(2)
    fractions = left.text_input("Split train,validation,test", "0.8,0.1,0.1", key=f"split_{fid}")
    seed = int(right.number_input("Seed", value=42, step=1, key=f"seed_{fid}"))
    said = [said for said, _ in task.split_methods]
    method = task.split_method(st.radio("Split", said, key=f"split_method_{fid}", horizontal=True)
                               if len(said) > 1 else said[0])
    prepared = task.part("upload")(table, SplitConfig(parse_fractions(fractions), seed, method), fid)
    for note in prepared.notes:
        if note not in table.notes:  # what validation changed (unescaped entities); the parse notes are above
            st.info(note)
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
    cols = st.columns(3)
    cols[0].metric("Rows", f"{summary['rows']:,}")
    cols[1].metric("Encoding", summary["encoding"] or "n/a")
    st.plotly_chart(charts.split_sizes({k: summary["splits"].get(k, 0) for k in SPLIT_NAMES}), key="chart_splits")
    for warning in summary["warnings"]:
        st.warning(warning)
    if summary["mapping"].get("unlabelled"):
        st.info("No labels yet: define a label set and label them on the Label page.")
        return
    profile = profile_of(summary["id"], summary["content_hash"], summary["task"])
    get_task(summary["task"]).part("inspect")(summary, profile, cols[2])


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
