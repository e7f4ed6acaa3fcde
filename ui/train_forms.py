"""The Train page's two forms: a classifier for labelled texts, a recommender for interactions.

Both are drawn from the registry: the kinds of the task, then the picked kind's option schema (core.runs.kinds).
Each validates through core (the kind's make_config) and starts a background run with core.runs.jobs; the page
around them shows the live run. No training happens in the Streamlit thread.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import streamlit as st

from core.errors import ProtolabError
from core.recs.config import protocol_text
from core.runs import registry
from core.runs.device import ComputeInfo, describe_compute
from core.runs.estimates import estimate_any
from core.text.language import suggested_model_id
from core.text.pretrained import DEFAULT_MODEL_ID, WELL_KNOWN_MODELS
from core.training import plan_training, start_training
from db import datasets as dataset_queries
from db import read_scope, session_scope
from db.enums import TaskKind
from ui import url_state
from ui.common import format_duration
from ui.language import dataset_language_of

# The option whose choice the form repeats outside the collapsed Settings (a recommender's evaluation split).
SPLIT_OPTION = "split_protocol"

OTHER = "other (Hugging Face id or local folder)"
ESTIMATE_KEY = "last_estimate"  # session state: (dataset id, kind, config, seconds) of the last estimate shown


def estimated_seconds(dataset_id: int, model_kind: str, config: dict) -> float | None:
    """The estimate shown for exactly this run (same dataset, kind and settings), if one was."""
    last = st.session_state.get(ESTIMATE_KEY)
    return last[3] if last and last[:3] == (dataset_id, model_kind, config) else None


def classification_form(dataset_id: int, run_model: str | None = None) -> None:
    """Model family, model id and hyperparameters; Estimate and Start. `run_model` presets the family after a
    reload (the model of the run in the URL)."""
    _model_form(TaskKind.CLASSIFICATION, dataset_id, run_model, radio_key="family", prefix="")


def recommender_form(dataset_id: int, run_model: str | None = None) -> None:
    """A recommender, the evaluation protocol and the few settings that matter; Start."""
    _model_form(TaskKind.INTERACTIONS, dataset_id, run_model, radio_key="rec_model", prefix="rec_")


def images_form(dataset_id: int, run_model: str | None = None) -> None:
    """An image model kind and its options, as for texts."""
    if not registry.all_kinds("images"):  # the kinds live in their own modules; none loaded is a real state
        st.info("No image model kinds are installed.")
        return
    _model_form("images", dataset_id, run_model, radio_key="image_model", prefix="image_")


def multilabel_form(dataset_id: int, run_model: str | None = None) -> None:
    """The text kinds on a dataset of tag sets: the same models and settings, a sigmoid per tag."""
    _model_form(TaskKind.MULTILABEL, dataset_id, run_model, radio_key="family", prefix="")


def _model_form(task: TaskKind, dataset_id: int, run_model: str | None, *, radio_key: str, prefix: str) -> None:
    """The kinds of `task` to pick from, then the picked kind's options drawn from its registry entry: the main
    ones first, the rest under a collapsed Settings. Nothing here knows a kind or an option by name."""
    kinds = {k.name: k for k in registry.all_kinds(task)}
    name = st.radio("Model", list(kinds), format_func=lambda n: kinds[n].label, horizontal=True, key=radio_key,
                    captions=[k.help for k in kinds.values()],
                    index=url_state.url_index("model", list(kinds), run_model))
    url_state.remember("model", name)
    kind = kinds[name]
    compute = functools.cache(describe_compute)  # only asked when an option depends on the machine
    defaults = kind.defaults()
    start = _starting_values(kind, defaults)
    shown = [o for o in kind.options if o.form and _applies(o, compute)]
    values: dict[str, Any] = {}
    for option in (o for o in shown if o.main):
        values[option.name] = _widget(st, kind, option, start[option.name], compute, dataset_id)
    settings = [o for o in shown if not o.main]
    if settings or kind.auto_batch:
        with st.expander("Settings", expanded=False):
            columns = st.columns(3)
            for i, option in enumerate(settings):
                values[option.name] = _widget(columns[i % 3], kind, option, start[option.name], compute,
                                              dataset_id)
            if kind.auto_batch and compute().kind == "cuda":  # a small batch leaves a big GPU idle
                auto_key = f"{kind.name}.auto_batch_size"
                values["auto_batch_size"] = columns[len(settings) % 3].checkbox(
                    "Pick batch size from GPU memory", url_state.url_text(auto_key) != "False", key=auto_key,
                    help="On the GPU the run probes memory, trains with the largest batch that fits (up to 256) "
                         "and scales the learning rate; the batch size above is where it starts.")
                url_state.remember_unless(auto_key, values["auto_batch_size"], True)
    # Every setting the user changed goes into the URL, so a reload (a new session) brings the form back as it
    # was and Start trains what the form shows, not the defaults.
    for option in shown:
        url_state.remember_unless(_setting_key(kind, option), values[option.name], defaults[option.name])
    if values.get(SPLIT_OPTION):
        # Outside the (collapsed) settings, so nobody trains on another split than they chose without seeing it.
        st.caption(f"Trains and tests on {protocol_text(values[SPLIT_OPTION])} (change it under Settings).")

    def _config() -> dict:
        return kind.make_config({k: v for k, v in values.items() if v is not None})

    b1, b2 = st.columns(2)
    if b1.button("⏱ Estimate time", key=f"{prefix}estimate"):
        show_estimate(dataset_id, name, _config)
    if b2.button("▶ Start", type="primary", key=f"{prefix}start"):
        try:
            config = _config()
            with session_scope() as s:
                dataset = dataset_queries.get_dataset(s, dataset_id)
                # Over its time budget, the run trains what fits (said on the run's page as its first event).
                plan = plan_training(s, dataset=dataset, model_kind=name, config=config)
                new_id = start_training(s, dataset=dataset, model_kind=name,
                                        config=plan.apply(config) if plan else config, plan=plan,
                                        estimate_s=estimated_seconds(dataset_id, name, config))
            st.query_params["run"] = str(new_id)
        except ProtolabError as exc:
            st.error(str(exc))


def _setting_key(kind: registry.ModelKind, option: registry.Option) -> str:
    """The widget's key and its URL parameter: ?lstm.max_length=64."""
    return f"{kind.name}.{option.name}"


def _starting_values(kind: registry.ModelKind, defaults: dict[str, Any]) -> dict[str, Any]:
    """What each option's widget starts from: the URL's ?kind.option= (a change the user made, kept across
    reloads), else the setting of the run in ?run= when it is of this kind (what it was started with), else the
    default. A value the option cannot take (a hand-edited link, a range since narrowed) is passed over."""
    run = url_state.run_config(url_state.url_run_id())
    from_run = run[1] if run is not None and run[0] == kind.name else {}
    out = dict(defaults)
    for option in kind.options:
        if option.name in from_run and _valid(option, from_run[option.name]):
            out[option.name] = from_run[option.name]
        raw = url_state.url_text(_setting_key(kind, option))
        if raw is not None and (parsed := _parsed(option, raw)) is not None:
            out[option.name] = parsed
    return out


def _parsed(option: registry.Option, raw: str) -> Any:
    """`raw` (URL text) as the option's type, or None when it is not a value the option takes."""
    try:
        if option.type is bool:
            value: Any = {"true": True, "false": False}[raw.strip().lower()]
        elif option.type in (int, float):
            value = option.type(raw)
        else:
            value = raw
    except (KeyError, ValueError):
        return None
    return value if _valid(option, value) else None


def _valid(option: registry.Option, value: Any) -> bool:
    if value is None:
        return False
    if option.type is bool:
        return isinstance(value, bool)
    if option.type in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            return False
        if option.type is int and value != int(value):
            return False
        return (option.low is None or value >= option.low) and (option.high is None or value <= option.high)
    return isinstance(value, str) and (not option.choices or option.open_choices or value in option.choices)


def _applies(option: registry.Option, compute: Callable[[], ComputeInfo]) -> bool:
    return option.when != registry.SEVERAL_GPUS or len(compute().gpus) > 1


def _widget(where: Any, kind: registry.ModelKind, option: registry.Option, default: Any,
            compute: Callable[[], ComputeInfo], dataset_id: int) -> Any:
    """One option's widget in `where` (the page or a column), keyed by kind and option; returns its value."""
    key, help_text = _setting_key(kind, option), _sentence(option.help)
    if option.widget == "pretrained":
        return _pretrained_model(where, dataset_id, help_text, default)
    if option.widget == "device":
        help_text = f"{help_text} Here: {compute().summary}"
    if option.type is bool:
        return where.checkbox(option.label, value=bool(default), key=key, help=help_text)
    if option.choices:
        labels = dict(zip(option.choices, option.choice_text, strict=False))
        index = option.choices.index(default) if default in option.choices else 0
        return where.selectbox(option.label, list(option.choices), index=index, key=key, help=help_text,
                               format_func=lambda value: labels.get(value, value))
    if option.type is str:
        return where.text_input(option.label, value=default or "", key=key, help=help_text).strip() or None
    cast = option.type
    high = len(compute().gpus) if option.when == registry.SEVERAL_GPUS else option.high
    return where.number_input(option.label, None if option.low is None else cast(option.low),
                              None if high is None else cast(high), None if default is None else cast(default),
                              step=None if option.step is None else cast(option.step), format=option.format,
                              key=key, help=help_text)


def _sentence(text: str) -> str | None:
    return f"{text[:1].upper()}{text[1:]}." if text else None


def _pretrained_model(where: Any, dataset_id: int, help_text: str | None, initial: str | None = None) -> str | None:
    """The model picker: the well-known models (the multilingual one suggested for a non-English dataset), or any
    Hugging Face id or local folder; it starts from `initial` when that is not the default (kept in the URL).
    None: the bundled default."""
    language = dataset_language_of(dataset_id)
    suggested = suggested_model_id(language)
    models = [*WELL_KNOWN_MODELS, OTHER]
    if suggested and language is not None:
        where.info(f"Most texts in this dataset look {language.name}: the multilingual model is suggested "
                   "(MiniLM, the default, was trained on English).")
    chosen = initial if initial and initial != DEFAULT_MODEL_ID else None
    start = chosen if chosen in models else OTHER if chosen else suggested
    # Keyed by the suggestion, so switching between an English and a German dataset re-applies it.
    choice = where.selectbox("Pretrained model", models, key=f"model_choice{'_multilingual' if suggested else ''}",
                             index=models.index(start) if start in models else 0,
                             format_func=lambda m: m if m == OTHER else f"{WELL_KNOWN_MODELS[m]} · {m}",
                             help=help_text)
    if choice == OTHER:
        custom = chosen if chosen not in models else ""
        return where.text_input("Model id or folder", value=custom or "", key="model_id_custom").strip() or None
    return None if choice == DEFAULT_MODEL_ID else choice


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
    # Kept for Start: a run estimated short may start beside a long one (core.runs.scheduling).
    st.session_state[ESTIMATE_KEY] = (dataset_id, model_kind, config(), est.seconds)
    memory = f" · peak memory ≈ {est.peak_memory_bytes / 2**30:.1f} GiB" if est.peak_memory_bytes else ""
    st.info(f"About **{format_duration(est.seconds)}** on {est.device}{memory}")
    st.caption(est.breakdown())
    if est.warning:
        st.warning(est.warning)


