"""The Train page's two forms: a classifier for labelled texts, a recommender for interactions.

Each reads its widgets, validates through core (build_config) and starts a background run with
core.training.start_training (the CLI's door too); the page around them shows the live run. No training happens in
the Streamlit thread.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from core.errors import ProtolabError
from core.recs.config import protocol_text
from core.runs import registry
from core.runs.device import DEVICES, describe_compute
from core.runs.estimates import estimate_any
from core.text.config import DEFAULT_LEARNING_RATE
from core.text.language import suggested_model_id
from core.text.pretrained import DEFAULT_MODEL_ID, WELL_KNOWN_MODELS
from core.training import start_training
from db import datasets as dataset_queries
from db import read_scope, session_scope
from db.enums import TaskKind
from ui import url_state
from ui.common import format_duration
from ui.labelling import setfit_settings
from ui.language import dataset_language_of

OTHER = "other (Hugging Face id or local folder)"
PROTOCOLS = {"stratified_item": "75/25 per item, seed 42 (comparable with published MovieLens figures)",
             "leave_last_out": "leave the last interaction of each user out (by time)",
             "dataset": "the split stored with the dataset"}


def classification_form(dataset_id: int, run_model: str | None = None) -> None:
    """Model family, model id and hyperparameters; Estimate and Start. `run_model` presets the family after a
    reload (the model of the run in the URL)."""
    kinds = {k.name: k for k in registry.all_kinds(TaskKind.CLASSIFICATION)}
    family = st.radio("Model", list(kinds), format_func=lambda name: kinds[name].label, horizontal=True,
                      key="family", captions=[k.help for k in kinds.values()],
                      index=url_state.url_index("model", list(kinds), run_model))
    url_state.remember("model", family)
    options: dict = {"seed": None, "class_weights": None}
    if family == "transformer":
        language = dataset_language_of(dataset_id)
        suggested = suggested_model_id(language)
        models = [*WELL_KNOWN_MODELS, OTHER]
        if suggested and language is not None:
            st.info(f"Most texts in this dataset look {language.name}: the multilingual model is suggested "
                    "(MiniLM, the default, was trained on English).")
        # Keyed by the suggestion, so switching between an English and a German dataset re-applies it.
        choice = st.selectbox("Pretrained model", models, key=f"model_choice{'_multilingual' if suggested else ''}",
                              index=models.index(suggested) if suggested in models else 0,
                              format_func=lambda m: m if m == OTHER else f"{WELL_KNOWN_MODELS[m]} · {m}",
                              help="MiniLM is bundled and works offline; the others download once from the hub.")
        custom = st.text_input("Model id or folder", key="model_id_custom") if choice == OTHER else ""
        options["model_id"] = (custom.strip() or None) if choice == OTHER else (
            None if choice == DEFAULT_MODEL_ID else choice)
    if family == "lstm":
        options["init_embeddings"] = st.checkbox(
            "Start from MiniLM's word embeddings", value=True, key="init_embeddings",
            help="Usually learns faster and better than random embeddings.")

    with st.expander("Settings", expanded=False):
        c1, c2, c3 = st.columns(3)
        if family == "tfidf":
            options["tfidf_c"] = c1.number_input("C (inverse regularisation)", 0.01, 1000.0, 4.0, key="tfidf_c",
                                                 help="Higher fits the training data more closely.")
            options["tfidf_ngram_max"] = c2.number_input("Longest word n-gram", 1, 3, 2, key="tfidf_ngram_max")
            options["tfidf_min_df"] = c3.number_input("Min. document frequency", 1, 100, 1, key="tfidf_min_df")
        elif family == "setfit":
            options.update(setfit_settings(c1, c2, c3))
        else:
            options["epochs"] = c1.number_input("Epochs", 1, 100, 3, key="epochs",
                                                help="Passes over the training split.")
            options["batch_size"] = c2.number_input("Batch size", 1, 1024, 32 if family == "transformer" else 64,
                                                    key=f"batch_size_{family}", help="Halved automatically on GPU OOM.")
            compute = describe_compute()
            if compute.kind == "cuda":  # a small batch leaves a big GPU idle: let the run measure what fits
                options["auto_batch_size"] = c2.checkbox(
                    "Pick batch size from GPU memory", True, key=f"auto_batch_{family}",
                    help="On the GPU the run probes memory, trains with the largest batch that fits (up to 256) "
                         "and scales the learning rate; the batch size above is where it starts.")
            options["learning_rate"] = c3.number_input("Learning rate", 1e-7, 1.0,
                                                       DEFAULT_LEARNING_RATE.get(family, 1e-4),
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
            options["device"] = c2.selectbox("Device", list(DEVICES), key="device",
                                             help=f"auto picks CUDA, then Apple MPS, then CPU. Here: {compute.summary}")
            if len(compute.gpus) > 1:
                options["gpus"] = c3.number_input("GPUs", 1, len(compute.gpus), 1, key="gpus",
                                                  help="More than one trains with DistributedDataParallel.")
        options["seed"] = c1.number_input("Seed", 0, 2**31 - 1, 42, key="seed", help="Same seed, same data: same run.")
        options["class_weights"] = c2.checkbox("Balance classes", False, key="class_weights",
                                               help="Weight rare labels up (for imbalanced data).")

    def _config() -> dict:
        return kinds[family].make_config({k: v for k, v in options.items() if v is not None})

    b1, b2 = st.columns(2)
    if b1.button("⏱ Estimate time", key="estimate"):
        show_estimate(dataset_id, family, _config)
    if b2.button("▶ Start", type="primary", key="start"):
        try:
            with session_scope() as s:
                new_id = start_training(s, dataset=dataset_queries.get_dataset(s, dataset_id), model_kind=family,
                                        config=_config())
            st.query_params["run"] = str(new_id)
        except ProtolabError as exc:
            st.error(str(exc))


def show_estimate(dataset_id: int, model_kind: str, config: Callable[[], dict]) -> None:
    """Measure a probe of the run and say how long the whole run will take, and where the time goes."""

    try:
        with read_scope() as s:
            dataset = dataset_queries.get_dataset(s, dataset_id)
        with st.spinner("Measuring start-up and a few training steps…"):
            est = estimate_any(dataset, model_kind, config())
    except ProtolabError as exc:
        st.error(str(exc))
        return
    memory = f" · peak memory ≈ {est.peak_memory_bytes / 2**30:.1f} GiB" if est.peak_memory_bytes else ""
    st.info(f"About **{format_duration(est.seconds)}** on {est.device}{memory}")
    st.caption(est.breakdown())
    if est.warning:
        st.warning(est.warning)


def recommender_form(dataset_id: int, run_model: str | None = None) -> None:
    """A recommender, the evaluation protocol and the few settings that matter; Start."""
    kinds = {k.name: k for k in registry.all_kinds(TaskKind.INTERACTIONS)}
    model = st.radio("Model", list(kinds), format_func=lambda name: kinds[name].label, horizontal=True,
                     key="rec_model", captions=[k.help for k in kinds.values()],
                     index=url_state.url_index("model", list(kinds), run_model))
    url_state.remember("model", model)
    options: dict = {}
    with st.expander("Settings", expanded=False):
        c1, c2, c3 = st.columns(3)
        options["k"] = c1.number_input("K (ranking metrics)", 1, 100, 10, key="rec_k",
                                       help="Precision@K, Recall@K, NDCG@K … are computed for this K.")
        # Default: the split chosen at upload (training used to re-split silently); the GRU wants time order.
        options["split_protocol"] = c2.selectbox(
            "Evaluation split", list(PROTOCOLS), format_func=PROTOCOLS.get, key=f"rec_protocol_{model}",
            index=list(PROTOCOLS).index("leave_last_out" if model == "sequential" else "dataset"),
            help="Compare runs only when they use the same split.")
        options["seed"] = c3.number_input("Seed", 0, 2**31 - 1, 42, key="rec_seed")
        if model in ("bpr", "sequential"):
            defaults = kinds[model].make_config({})
            options["epochs"] = c1.number_input("Epochs", 1, 1000, defaults["epochs"], key=f"rec_epochs_{model}")
            options["factors"] = c2.number_input("Latent factors", 4, 1024, defaults["factors"],
                                                 key=f"rec_factors_{model}")
            options["learning_rate"] = c3.number_input("Learning rate", 1e-5, 1.0, defaults["learning_rate"],
                                                       format="%.4f", key=f"rec_lr_{model}")
            options["device"] = c1.selectbox("Device", list(DEVICES), key="rec_device")
    # Outside the (collapsed) settings, so nobody trains on another split than they chose without seeing it.
    st.caption(f"Trains and tests on {protocol_text(options['split_protocol'])} (change it under Settings).")
    b1, b2 = st.columns(2)
    if b1.button("⏱ Estimate time", key="rec_estimate"):
        show_estimate(dataset_id, model, lambda: kinds[model].make_config(options))
    if b2.button("▶ Start", type="primary", key="rec_start"):
        try:
            config = kinds[model].make_config(options)
            with session_scope() as s:
                new_id = start_training(s, dataset=dataset_queries.get_dataset(s, dataset_id), model_kind=model,
                                        config=config)
            st.query_params["run"] = str(new_id)
        except ProtolabError as exc:
            st.error(str(exc))
