"""The model kinds Protolab can train and serve: one entry each, read by the CLI, the Train page, the worker,
the demo pages and every list of runs. Adding a model is one `register(ModelKind(...))` plus its module.

Entries name their code as "module:attribute" strings, resolved on first use, so listing the kinds (Home,
the CLI's --help) imports no torch or scikit-learn. Extra kinds come from the modules named in
PROTOLAB_MODEL_KINDS (comma-separated), imported here in every process, the worker's included.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.errors import ProtolabError
from core.runs.device import DEVICE_KINDS
from core.tasks import Headline, get_task, load_plugins, resolve
from db.enums import JOB_KINDS, LABEL_RETRAIN_KIND, TaskKind


class UnknownModelKind(ProtolabError):
    """A model kind nobody registered (a typo, or a run made by a plugin that is not loaded)."""


@dataclass(frozen=True)
class ModelKind:
    """Everything Protolab needs to know about one kind of model."""

    name: str  # "transformer", "bpr", ... (stored as Run.model_kind)
    task: str  # the name of its task entry (core.tasks): a TaskKind for the built-in ones
    label: str  # what the Train page and pickers show
    help: str  # one line: when to pick it
    build_config: str  # "module:function" (name, options) -> full, validated config dict
    execute: str  # "module:function" (RunContext) -> final metrics; the worker calls it
    load: str | None = None  # "module:function" (RunFiles, device) -> the served model (None: not servable)
    # "module:function" (dataset, kind name, config) -> its pre-flight Estimate (None: no estimate for it yet)
    estimate: str | None = None
    devices: tuple[str, ...] = ("cpu",)  # the device kinds it can use; "cpu" only = never on a GPU
    multi_gpu: bool = False  # can train on several GPUs with DistributedDataParallel
    has_epochs: bool = False  # reports loss per step/epoch (runs without epochs show no epoch panels)
    options: tuple[str, ...] = ()  # the config keys the Train page and the CLI let a user set
    # The config keys that change what it learns (None: all). Classification runs share one config
    # dataclass, so a TF-IDF run stores epochs and a learning rate it never reads; Compare hides them.
    settings: tuple[str, ...] | None = None
    short: str = ""  # the name in charts and sentences ("SetFit"); "" = the label
    job: str | None = None  # the job kind that trains it on a dataset still being labelled (SetFit: the retrain)
    offered: bool = True  # False: only its own page starts it (the Label page's retrains), so no picker offers it
    # Roughly what a run writes (model + checkpoint, MB): a run is refused before it starts with less free space.
    # A floor, not a promise: a big vocabulary or catalogue writes more.
    disk_mb: int = 10

    @property
    def headline(self) -> Headline:
        return get_task(self.task).headline

    @property
    def short_label(self) -> str:
        return self.short or self.label

    @property
    def is_job(self) -> bool:
        """A background job on a dataset (a data audit), not a model: no picker or list of models shows it."""
        return self.name in JOB_KINDS

    @property
    def uses_gpu(self) -> bool:
        return any(d != "cpu" for d in self.devices)

    def make_config(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The full config of a run of this kind from the options a user gave (unknown or bad ones raise)."""
        return resolve(self.build_config)(self.name, dict(options))

    def executor(self) -> Callable[[Any], dict[str, Any]]:
        return resolve(self.execute)

    def estimator(self) -> Callable[..., Any] | None:
        return resolve(self.estimate) if self.estimate else None

    def loader(self) -> Callable[..., Any]:
        if self.load is None:
            raise UnknownModelKind(f"{self.label} runs cannot be served")
        return resolve(self.load)


@dataclass
class _Registry:
    kinds: dict[str, ModelKind] = field(default_factory=dict)
    plugins_loaded: bool = False


_registry = _Registry()


def register(kind: ModelKind) -> ModelKind:
    """Add (or replace, for tests and plugins) a model kind."""
    _registry.kinds[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    _registry.kinds.pop(name, None)


def all_kinds(task: str | None = None, *, jobs: bool = False) -> list[ModelKind]:
    """Every model kind (of one task) a user can pick, in registration order: the order pickers show.
    With `jobs=True` also the jobs: those that are not models (data audits) and those only their page starts."""
    _load_plugins()
    return [k for k in _registry.kinds.values()
            if (task is None or k.task == task) and (jobs or (k.offered and not k.is_job))]


def kind_names(task: str | None = None) -> tuple[str, ...]:
    return tuple(k.name for k in all_kinds(task))


def get_kind(name: str) -> ModelKind:
    _load_plugins()
    kind = _registry.kinds.get(str(name))
    if kind is None:
        raise UnknownModelKind(f"unknown model {name!r}: use one of {', '.join(_registry.kinds)}")
    return kind


def find_kind(name: str) -> ModelKind | None:
    _load_plugins()
    return _registry.kinds.get(str(name))


def model_of_job(job: str) -> ModelKind:
    """The model kind whose `job` is `job` (the kind a Label-page retrain trains and serves)."""
    found = [k for k in all_kinds() if k.job == job]
    if not found:
        raise UnknownModelKind(f"no model kind trains as the {job!r} job")
    return found[0]


def applicable_config(model_kind: str, config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The part of a run's stored config that applies to its kind (all of it for an unregistered kind)."""
    kind = find_kind(model_kind)
    config = dict(config or {})
    if kind is None or kind.settings is None:
        return config
    return {k: v for k, v in config.items() if k in kind.settings}


def headline_of(model_kind: str, task: str, metrics: Mapping[str, Any] | None) -> tuple[Headline, float | None]:
    """A run's headline metric and value; a run of an unregistered kind still gets its task's headline."""
    kind = find_kind(model_kind)
    headline = kind.headline if kind is not None else get_task(task).headline
    return headline, headline.value(metrics)


def _load_plugins() -> None:
    if _registry.plugins_loaded:
        return
    _registry.plugins_loaded = True
    load_plugins()  # each plugin module calls register(...) (and register_task(...)) on import


# --- the built-in kinds --------------------------------------------------------------------------------
_TEXT_CONFIG, _TEXT_EXECUTE, _TEXT_LOAD = "core.text.config:build_config", "core.text.executor:execute_run", \
    "core.text.serving:load_token_classifier"
_REC_CONFIG, _REC_EXECUTE, _REC_LOAD = "core.recs.config:build_config", "core.recs.training:execute_run", \
    "core.recs.serving:load_run_model"
_TEXT_ESTIMATE, _REC_ESTIMATE = "core.text.estimate:estimate_run", "core.recs.estimate:estimate_recommender"
_NEURAL_OPTIONS = ("model_id", "epochs", "batch_size", "learning_rate", "max_length", "patience", "warmup_ratio",
                   "weight_decay", "seed", "device", "gpus", "class_weights")
_NEURAL_SETTINGS = (*_NEURAL_OPTIONS, "grad_accum_steps", "max_grad_norm")
_REC_OPTIONS = ("k", "split_protocol", "seed")
_GPU = DEVICE_KINDS  # the kinds that can use a GPU run on any device

for _kind in (
    ModelKind("transformer", TaskKind.CLASSIFICATION, "Transformer (fine-tune)",
              "the most accurate; fine-tunes a pretrained model (MiniLM by default), best on a GPU",
              _TEXT_CONFIG, _TEXT_EXECUTE, _TEXT_LOAD, devices=_GPU, multi_gpu=True, has_epochs=True,
              options=_NEURAL_OPTIONS, settings=_NEURAL_SETTINGS, disk_mb=400, estimate=_TEXT_ESTIMATE),
    ModelKind("lstm", TaskKind.CLASSIFICATION, "LSTM (BiLSTM on subwords)",
              "a small recurrent network: fast to train, even on a CPU",
              _TEXT_CONFIG, _TEXT_EXECUTE, _TEXT_LOAD, devices=_GPU, multi_gpu=True, has_epochs=True,
              options=_NEURAL_OPTIONS,
              settings=(*_NEURAL_SETTINGS, "init_embeddings"), disk_mb=100, estimate=_TEXT_ESTIMATE),
    ModelKind("tfidf", TaskKind.CLASSIFICATION, "TF-IDF + logistic regression (fast baseline)",
              "the baseline every model must beat: word and bigram counts on a CPU; seconds for a few thousand "
              "texts, about a minute for 30,000 (Estimate says how long)",
              _TEXT_CONFIG, _TEXT_EXECUTE, "core.text.serving:load_tfidf_classifier",
              options=("seed", "class_weights"),
              settings=("seed", "class_weights", "tfidf_ngram_max", "tfidf_min_df", "tfidf_max_features",
                        "tfidf_c"), disk_mb=20, estimate=_TEXT_ESTIMATE),
    ModelKind("setfit", TaskKind.CLASSIFICATION, "SetFit (few-shot, from 8 examples a class)",
              "contrastive fine-tuning of MiniLM + a logistic head: the best with few labels; minutes on a CPU",
              "core.text.fewshot:build_config", "core.text.fewshot_run:execute_run",
              "core.text.fewshot_run:load_setfit_classifier", devices=_GPU,
              options=("model_id", "epochs", "batch_size", "learning_rate", "max_length", "seed", "device",
                       "class_weights", "num_iterations", "max_pairs"),
              settings=("model_id", "epochs", "batch_size", "learning_rate", "max_length", "seed",
                        "class_weights", "num_iterations", "max_pairs"), short="SetFit", job=LABEL_RETRAIN_KIND,
              disk_mb=200),
    ModelKind("ease", TaskKind.INTERACTIONS, "EASE (linear item model; best on MovieLens)",
              "the strongest item-to-item model on small catalogues; seconds",
              _REC_CONFIG, _REC_EXECUTE, _REC_LOAD, options=_REC_OPTIONS, disk_mb=50, estimate=_REC_ESTIMATE),
    ModelKind("itemknn", TaskKind.INTERACTIONS, "Item k-NN (cosine)",
              "people who liked this also liked: simple, explainable",
              _REC_CONFIG, _REC_EXECUTE, _REC_LOAD, estimate=_REC_ESTIMATE, options=_REC_OPTIONS),
    ModelKind("bpr", TaskKind.INTERACTIONS, "BPR matrix factorisation",
              "learned user and item factors; uses a GPU when there is one",
              _REC_CONFIG, _REC_EXECUTE, _REC_LOAD, estimate=_REC_ESTIMATE, devices=_GPU, has_epochs=True,
              options=(*_REC_OPTIONS, "factors", "epochs", "device")),
    ModelKind("sequential", TaskKind.INTERACTIONS, "GRU over each user's history",
              "predicts the next item from the order of a user's history; use a leave-last-out split",
              _REC_CONFIG, _REC_EXECUTE, _REC_LOAD, estimate=_REC_ESTIMATE, devices=_GPU, has_epochs=True,
              options=(*_REC_OPTIONS, "factors", "epochs", "device")),
    ModelKind("content", TaskKind.INTERACTIONS, "Content (catalogue text) + k-NN",
              "recommends from item titles and descriptions, so new items get recommended too",
              _REC_CONFIG, _REC_EXECUTE, _REC_LOAD, estimate=_REC_ESTIMATE, devices=_GPU,
              options=(*_REC_OPTIONS, "model_id", "device")),
    ModelKind("popularity", TaskKind.INTERACTIONS, "Popularity (baseline)",
              "the most popular items for everyone: the baseline",
              _REC_CONFIG, _REC_EXECUTE, _REC_LOAD, estimate=_REC_ESTIMATE, options=_REC_OPTIONS),
    ModelKind("data_audit", TaskKind.CLASSIFICATION, "Data health audit",
              "label errors, near-duplicates, leakage and oddities of a dataset (a job, not a model)",
              "core.health.jobs:build_config", "core.health.jobs:execute_audit"),
    ModelKind(LABEL_RETRAIN_KIND, TaskKind.CLASSIFICATION, "SetFit on the labels so far (Label page)",
              "the Label page's background retrain: suggestions and uncertainty for the texts still unlabelled",
              "core.text.fewshot:build_config", "core.labelling.retrain:execute_retrain",
              "core.text.fewshot_run:load_setfit_classifier", devices=_GPU, short="SetFit", offered=False,
              disk_mb=200),
    ModelKind("label_curve", TaskKind.CLASSIFICATION, "How many labels do I need (label curve)",
              "macro-F1 of SetFit, TF-IDF and the Transformer at 8-64 labels a class (a job, not a model)",
              "core.labelling.curve_job:build_config", "core.labelling.curve_job:execute_label_curve",
              devices=_GPU),
):
    register(_kind)
