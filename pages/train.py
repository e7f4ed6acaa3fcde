"""🏋️ Train: pick a classification dataset, a model and a few settings, start a background run, watch it live.

The run trains in its own worker process (core.jobs); this page only reads the database, so a refresh loses nothing.
"""

import streamlit as st

from core import jobs, training
from core.charts.training import loss_curve, validation_curve
from core.device import describe_compute
from core.errors import ProtolabError
from core.pretrained import DEFAULT_MODEL_ID, WELL_KNOWN_MODELS
from core.settings import run_dir
from db import datasets as dataset_queries
from db import runs as run_queries
from db import session_scope
from db.models import RunStatus, TaskKind
from ui.common import ensure_db, format_duration, format_when, page_link, status_chip

FAMILIES = {"transformer": "Transformer (fine-tune)", "lstm": "LSTM (BiLSTM on subwords)",
            "tfidf": "TF-IDF + logistic regression (instant baseline)"}
OTHER = "other (Hugging Face id or local folder)"

ensure_db()
st.title("🏋️ Train")
jobs.reap_dead_runs()  # a worker that died shows as failed, not as running forever

with session_scope() as s:
    datasets = {d.id: f"{d.name} ({d.row_count:,} rows)"
                for d in dataset_queries.list_datasets(s, TaskKind.CLASSIFICATION)}
if not datasets:
    st.info("No classification dataset yet: upload labelled texts (or load a demo dataset) first.")
    page_link("pages/datasets.py", "Go to Datasets", "📂")
    st.stop()

# --- what to train ----------------------------------------------------------------------------------
dataset_id = st.selectbox("Dataset", list(datasets), format_func=datasets.get, key="dataset")
family = st.radio("Model", list(FAMILIES), format_func=FAMILIES.get, horizontal=True, key="family")
options: dict = {"seed": None, "class_weights": None}
if family == "transformer":
    choice = st.selectbox("Pretrained model", [*WELL_KNOWN_MODELS, OTHER], key="model_choice",
                          format_func=lambda m: m if m == OTHER else f"{WELL_KNOWN_MODELS[m]} · {m}",
                          help="MiniLM is bundled and works offline; the others download once from the hub.")
    custom = st.text_input("Model id or folder", key="model_id_custom") if choice == OTHER else ""
    options["model_id"] = (custom.strip() or None) if choice == OTHER else (
        None if choice == DEFAULT_MODEL_ID else choice)
if family == "lstm":
    options["init_embeddings"] = st.checkbox("Start from MiniLM's word embeddings", value=True, key="init_embeddings",
                                             help="Usually learns faster and better than random embeddings.")

with st.expander("Settings", expanded=False):
    c1, c2, c3 = st.columns(3)
    if family == "tfidf":
        options["tfidf_c"] = c1.number_input("C (inverse regularisation)", 0.01, 1000.0, 4.0, key="tfidf_c",
                                             help="Higher fits the training data more closely.")
        options["tfidf_ngram_max"] = c2.number_input("Longest word n-gram", 1, 3, 2, key="tfidf_ngram_max")
        options["tfidf_min_df"] = c3.number_input("Min. document frequency", 1, 100, 1, key="tfidf_min_df")
    else:
        options["epochs"] = c1.number_input("Epochs", 1, 100, 3, key="epochs", help="Passes over the training split.")
        options["batch_size"] = c2.number_input("Batch size", 1, 1024, 32 if family == "transformer" else 64,
                                                key=f"batch_size_{family}", help="Halved automatically on GPU OOM.")
        options["learning_rate"] = c3.number_input("Learning rate", 1e-7, 1.0, training.DEFAULT_LEARNING_RATE[family],
                                                   format="%.1e", step=1e-5, key=f"lr_{family}",
                                                   help="Peak AdamW step size, reached after the warm-up.")
        options["max_length"] = c1.number_input("Max length (tokens)", 8, 512, 128, key="max_length",
                                                help="Longer texts are truncated; shorter is faster.")
        options["warmup_ratio"] = c2.number_input("Warm-up (share of steps)", 0.0, 0.5, 0.1, key="warmup_ratio",
                                                  help="The learning rate rises linearly, then decays to 0.")
        options["weight_decay"] = c3.number_input("Weight decay", 0.0, 1.0, 0.01, key="weight_decay",
                                                  help="AdamW's pull of the weights towards 0 (regularisation).")
        options["patience"] = c1.number_input("Patience (epochs)", 0, 20, 2, key="patience",
                                              help="Stop after this many epochs without a better validation F1; "
                                                   "0 = never stop early.")
        compute = describe_compute()
        options["device"] = c2.selectbox("Device", ["auto", "cpu", "cuda", "mps"], key="device",
                                         help=f"auto picks CUDA, then Apple MPS, then CPU. Here: {compute.summary}")
        if len(compute.gpus) > 1:
            options["gpus"] = c3.number_input("GPUs", 1, len(compute.gpus), 1, key="gpus",
                                              help="More than one trains with DistributedDataParallel.")
    options["seed"] = c1.number_input("Seed", 0, 2**31 - 1, 42, key="seed", help="Same seed, same data: same run.")
    options["class_weights"] = c2.checkbox("Balance classes", False, key="class_weights",
                                           help="Weight rare labels up (for imbalanced data).")


def _config() -> dict:
    return training.build_config(family, {k: v for k, v in options.items() if v is not None})


b1, b2 = st.columns(2)
if b1.button("⏱ Estimate time", key="estimate"):
    try:
        if not hasattr(training, "estimate_run"):
            st.warning("Time estimates are not available in this build yet.")
        else:
            with st.spinner("Measuring a few training steps…"):
                est = training.estimate_run(dataset_id=dataset_id, model_kind=family, config=_config())
            memory = f" · peak memory ≈ {est.peak_memory_bytes / 2**30:.1f} GiB" if est.peak_memory_bytes else ""
            st.info(f"About **{format_duration(est.seconds)}** on {est.device}{memory}")
            if est.warning:
                st.warning(est.warning)
    except ProtolabError as exc:
        st.error(str(exc))
if b2.button("▶ Start", type="primary", key="start"):
    try:
        new_id = jobs.start_run(dataset_id=dataset_id, task=TaskKind.CLASSIFICATION, model_kind=family,
                                config=_config(), gpus=int(options.get("gpus") or 1))
        st.query_params["run"] = str(new_id)
    except ProtolabError as exc:
        st.error(str(exc))


# --- the live panel ---------------------------------------------------------------------------------
def _snapshot(run_id: int) -> dict | None:
    with session_scope() as s:
        run = run_queries.get_run(s, run_id)
        if run is None or run.task != TaskKind.CLASSIFICATION:
            return None
        return {"id": run.id, "status": run.status, "progress": run.progress, "text": run.status_text or "",
                "model": run.model_kind, "dataset": run.dataset.name, "device": run.device, "error": run.error,
                "metrics": run.metrics or {}, "events": run.events or [], "duration": run.duration_s,
                "points": [{"name": p.name, "value": p.value, "step": p.step, "epoch": p.epoch, "split": p.split}
                           for p in run_queries.metric_points(s, run_id)]}


def live_panel(run_id: int, was_active: bool) -> None:
    if was_active:
        jobs.reap_dead_runs()  # so a worker that dies while we watch turns into "failed" here
    run = _snapshot(run_id)
    if run is None:
        return
    if was_active and not run["status"].is_active:
        st.rerun()  # finished: redraw the whole page once, without the 1 s refresh
    st.markdown(f"{status_chip(run['status'])} **Run #{run['id']}** · {run['model']} on {run['dataset']} · "
                f"{run['device'] or 'device not chosen yet'} · {format_duration(run['duration'])}")
    st.progress(min(1.0, run["progress"]), text=run["text"] or run["status"].value)
    for event in run["events"]:
        if event.get("event") not in (None, "resume", "resumed"):
            st.caption(f"ℹ️ {event}")
    left, right = st.columns(2)
    left.plotly_chart(loss_curve(run["points"]), key=f"loss_{run_id}")
    right.plotly_chart(validation_curve(run["points"]), key=f"val_{run_id}")
    if run["status"].is_active and st.button("■ Cancel", key="cancel"):
        jobs.cancel_run(run_id)
        st.toast(f"Cancelling run #{run_id}…")
    if run["status"] == RunStatus.COMPLETED:
        m = run["metrics"]
        k1, k2, k3 = st.columns(3)
        k1.metric("Test macro-F1", f"{m.get('macro_f1', 0):.3f}")
        k2.metric("Test accuracy", f"{m.get('accuracy', 0):.3f}")
        k3.metric("Train samples/s", f"{m.get('train_samples_per_s', 0):,.0f}")
        page_link("pages/evaluate.py", "Evaluate this run", "📊", query_params={"run": str(run_id)})
    if run["status"] == RunStatus.FAILED:
        st.error(run["error"] or "The run failed without a message.")
        with st.expander("Worker log (last lines)"):
            st.code(jobs.log_tail(run_id) or "(empty)")
    resumable = run["status"] in (RunStatus.FAILED, RunStatus.CANCELLED) and (run_dir(run_id) / "checkpoint").exists()
    if resumable and st.button("↻ Resume from checkpoint", key="resume"):
        jobs.resume_run(run_id)
        st.rerun()


with session_scope() as s:
    recent = [(r.id, r.status, r.model_kind, r.dataset.name, r.created_at, (r.metrics or {}).get("macro_f1"))
              for r in run_queries.list_runs(s, task=TaskKind.CLASSIFICATION, limit=10)]
wanted = st.query_params.get("run")
active = [r[0] for r in recent if r[1].is_active]
selected = int(wanted) if wanted and wanted.isdigit() else (active[0] if active else recent[0][0] if recent else None)
if selected is not None and (snap := _snapshot(selected)) is not None:
    st.subheader("Run")
    is_active = snap["status"].is_active
    st.fragment(run_every="1s" if is_active else None)(live_panel)(selected, is_active)

st.subheader("Recent runs")
if not recent:
    st.caption("No runs yet: press Start above.")
for run_id, status, model, dataset_name, created, f1 in recent:
    row, open_col = st.columns([6, 1])
    score = f" · macro-F1 {f1:.3f}" if isinstance(f1, (int, float)) else ""
    row.markdown(f"{status_chip(status)} **#{run_id}** {model} on {dataset_name} · {format_when(created)}{score}")
    if open_col.button("Open", key=f"open_{run_id}"):
        st.query_params["run"] = str(run_id)
        st.rerun()
