"""The model kinds Protolab can train and serve: one entry each, carrying everything about the kind (its option
schema, learning rate, exports, estimator, the libraries its worker imports, ...), read by the CLI, the Train
page, the worker, the demo pages, Compare and every list of runs. Adding a model is one
`register(ModelKind(...))` plus its module; nothing else is keyed by a kind's name.

Entries name their code as "module:attribute" strings, resolved on first use, so listing the kinds (Home,
the CLI's --help) imports no torch or scikit-learn. The built-in kinds are registered by core.runs.kinds; extra
kinds come from the modules named in PROTOLAB_MODEL_KINDS (comma-separated), imported here in every process, the
worker's included.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from core.errors import ProtolabError
from core.tasks import Headline, get_task, load_plugins, resolve
from db.enums import JOB_KINDS

BUILT_IN = ("core.runs.kinds",)  # the modules that register the built-in kinds, loaded before any plugin


class UnknownModelKind(ProtolabError):
    """A model kind nobody registered (a typo, or a run made by a plugin that is not loaded)."""


# Option.when: the machine conditions under which a form offers an option.
SEVERAL_GPUS = "several_gpus"  # a machine with two or more GPUs (the GPU count; capped at the GPUs it has)


@dataclass(frozen=True)
class Option:
    """One setting of a kind that a user (or a search over runs) may choose: the Train form draws it, the CLI has a
    flag for it, Compare shows it when runs differ in it, and a hyperparameter search reads its range from here."""

    name: str  # the key in the run's config
    type: type  # int, float, bool or str
    label: str  # the Train form's label
    help: str = ""  # one line, shown by the form and by `protolab train --help`
    default: Any = None  # what the form starts from; None: the kind's own default (its make_config({}))
    low: float | None = None  # the inclusive range of a number (None: open)
    high: float | None = None
    log: bool = False  # a range to search on a log scale (learning rates, regularisation strengths)
    # The range a hyperparameter search tries by default ((low, high) of a number, searched on a log scale when
    # `log`), narrower than what is valid; None: not searched unless `protolab search --space` names it.
    search: tuple[float, float] | None = None
    step: float | None = None  # the form's +/- step for a number (None: Streamlit's)
    format: str | None = None  # the form's printf format for a number ("%.1e")
    choices: tuple[str, ...] = ()  # the values of a str option, in the order the form lists them
    choice_text: tuple[str, ...] = ()  # what the form shows for each choice (empty: the values)
    open_choices: bool = False  # other values are valid too ("cuda:1"): the CLI does not restrict to choices
    flag: str | None = None  # the CLI flag; None: "--" + the name with dashes
    form: bool = True  # the Train form offers it
    cli: bool = True  # `protolab train` has a flag for it
    main: bool = False  # drawn above the form's collapsed Settings (the choice that matters most)
    when: str | None = None  # a machine condition (SEVERAL_GPUS) without which the form leaves it out
    widget: str | None = None  # a form widget of its own: "pretrained" (the model picker), "device"

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class TaskVariant:
    """How a kind trains and serves on a task other than its own under the same name, options and form (the text
    kinds on multi-label texts): another executor and loader, and what that task's runs of it export to."""

    task: str
    execute: str  # "module:function" (RunContext) -> final metrics
    load: str | None = None  # "module:function" (RunFiles, device) -> the served model
    exports: tuple[str, ...] = ()
    exporter: str | None = None  # as ModelKind.exporter, for that task's runs
    load_onnx: str | None = None  # as ModelKind.load_onnx, for that task's runs


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
    # Every config key that changes what it learns, in the order the form draws them: the form, the CLI's flags
    # and Compare read them. A classification run's config also holds keys of other kinds (one dataclass for all);
    # Compare leaves out what is not an option here.
    options: tuple[Option, ...] = ()
    learning_rate: float | None = None  # the default peak learning rate (None: its config's own default)
    auto_batch: bool = False  # on a GPU, can pick its batch size from a memory probe (`--batch-size auto`)
    exports: tuple[str, ...] = ()  # the `protolab export --format` values its runs export to
    # "module:function" (run id, format, folder) -> core.export.exporting.ExportedModel: writes the model files of
    # an export itself (None: the text classifiers' writers in core.export.exporting)
    exporter: str | None = None
    # "module:function" (RunFiles) -> the served model on onnxruntime, for `protolab serve --runtime onnx` on a task
    # served by its task entry's `serve` (None: such runs serve as they trained)
    load_onnx: str | None = None
    imports: tuple[str, ...] = ()  # libraries its worker imports beyond the executor's module (start-up timing)
    model: str | None = None  # "module:Class" of the model it fits, where the family's code asks (recommenders)
    curve: str | None = None  # "module:function" that trains it on k labels a class for the label curve
    few_shot: bool = False  # made to learn from a few labels a class: its runs ask "should we label more?"
    short: str = ""  # the name in charts and sentences ("SetFit"); "" = the label
    job: str | None = None  # the job kind that trains it on a dataset still being labelled (SetFit: the retrain)
    offered: bool = True  # False: only its own page starts it (the Label page's retrains), so no picker offers it
    # Roughly what a run writes (model + checkpoint, MB): a run is refused before it starts with less free space.
    # A floor, not a promise: a big vocabulary or catalogue writes more.
    disk_mb: int = 10
    baseline: bool = False  # the kind the other kinds of its task are measured against (TF-IDF)
    variants: tuple[TaskVariant, ...] = ()  # the other tasks it trains, each with its own executor and loader

    @property
    def headline(self) -> Headline:
        return get_task(self.task).headline

    def trains(self, task: str) -> bool:
        """Whether it trains datasets of `task`: its own task, or one of its variants'."""
        return str(task) == str(self.task) or any(str(v.task) == str(task) for v in self.variants)

    def for_task(self, task: str | None) -> ModelKind:
        """The kind as it trains and serves `task`: itself, or its variant's executor, loaders and exports (no
        estimate, label curve or labelling job of the other task's data)."""
        variant = next((v for v in self.variants if task is not None and str(v.task) == str(task)), None)
        if variant is None:
            return self
        return replace(self, task=variant.task, execute=variant.execute, load=variant.load, exports=variant.exports,
                       exporter=variant.exporter, load_onnx=variant.load_onnx, estimate=None, curve=None, job=None,
                       variants=())

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

    def option(self, name: str) -> Option | None:
        return next((o for o in self.options if o.name == name), None)

    def make_config(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The full config of a run of this kind from the options a user gave (unknown or bad ones raise)."""
        return resolve(self.build_config)(self.name, dict(options))

    def defaults(self) -> dict[str, Any]:
        """What each option starts from on the form: its own default, else the kind's config default."""
        config = _defaults.get(self)
        if config is None:
            config = _defaults[self] = self.make_config({})
        return {o.name: o.default if o.default is not None else config.get(o.name) for o in self.options}

    def executor(self) -> Callable[[Any], dict[str, Any]]:
        return resolve(self.execute)

    def estimator(self) -> Callable[..., Any] | None:
        return resolve(self.estimate) if self.estimate else None

    def loader(self) -> Callable[..., Any]:
        if self.load is None:
            raise UnknownModelKind(f"{self.label} runs cannot be served")
        return resolve(self.load)

    def model_class(self) -> Any:
        if self.model is None:
            raise UnknownModelKind(f"{self.label} names no model class")
        return resolve(self.model)


_defaults: dict[ModelKind, dict[str, Any]] = {}  # each kind's make_config({}), built once


@dataclass
class _Registry:
    kinds: dict[str, ModelKind] = field(default_factory=dict)
    plugins_loaded: bool = False
    built_ins_loaded: bool = False


_registry = _Registry()


def register(kind: ModelKind) -> ModelKind:
    """Add (or replace, for tests and plugins) a model kind."""
    _load_built_ins()  # first, so the built-in kinds keep the first places in every picker
    _registry.kinds[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    _registry.kinds.pop(name, None)


def all_kinds(task: str | None = None, *, jobs: bool = False) -> list[ModelKind]:
    """Every model kind (of one task) a user can pick, in registration order: the order pickers show.
    With `jobs=True` also the jobs: those that are not models (data audits) and those only their page starts."""
    _load_plugins()
    return [k.for_task(task) for k in _registry.kinds.values()
            if (task is None or k.trains(task)) and (jobs or (k.offered and not k.is_job))]


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


def baseline_kind(task: str) -> ModelKind | None:
    """The kind whose runs are the bar for the other kinds of `task` (None: the task has none)."""
    return next((k.for_task(task) for k in all_kinds() if k.baseline and k.trains(task)), None)


def model_of_job(job: str) -> ModelKind:
    """The model kind whose `job` is `job` (the kind a Label-page retrain trains and serves)."""
    found = [k for k in all_kinds() if k.job == job]
    if not found:
        raise UnknownModelKind(f"no model kind trains as the {job!r} job")
    return found[0]


def applicable_config(model_kind: str, config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The part of a run's stored config that its kind's options name (all of it for an unregistered kind, or one
    that declares no options)."""
    kind = find_kind(model_kind)
    config = dict(config or {})
    if kind is None or not kind.options:
        return config
    names = {o.name for o in kind.options}
    return {k: v for k, v in config.items() if k in names}


def options_across_kinds(*, cli: bool = False) -> dict[str, tuple[Option, tuple[str, ...]]]:
    """Each option name of the kinds a user can pick (the CLI's flags: those with `cli`), with its first
    declaration and the kinds that take it, in registration order."""
    found: dict[str, tuple[Option, list[str]]] = {}
    for kind in all_kinds():
        for option in kind.options:
            if option.cli or not cli:
                found.setdefault(option.name, (option, []))[1].append(kind.name)
    return {name: (option, tuple(kinds)) for name, (option, kinds) in found.items()}


def headline_of(model_kind: str, task: str, metrics: Mapping[str, Any] | None) -> tuple[Headline, float | None]:
    """A run's headline metric and value; a run of an unregistered kind still gets its task's headline."""
    kind = find_kind(model_kind)
    headline = kind.for_task(task).headline if kind is not None else get_task(task).headline
    return headline, headline.value(metrics)


def _load_built_ins() -> None:
    if not _registry.built_ins_loaded:
        _registry.built_ins_loaded = True
        for module_name in BUILT_IN:
            importlib.import_module(module_name)  # each calls register(...) on import


def _load_plugins() -> None:
    if _registry.plugins_loaded:
        return
    _registry.plugins_loaded = True
    _load_built_ins()
    load_plugins()  # each plugin module calls register(...) (and register_task(...)) on import
