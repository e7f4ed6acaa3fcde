"""The tasks Protolab knows (text and image classification, interactions): one entry each, above the model kinds.

A task says what its datasets hold and how an upload is mapped, validated, split and profiled, its metrics and
headline, what the Train and Evaluate pages draw for it, its demo page and its API shape. Pages and core ask the
entry; none compares task names. Entries name their code as "module:attribute" strings (core or ui functions),
resolved on first use, so listing the tasks imports nothing heavy. Plugin modules named in PROTOLAB_MODEL_KINDS
may register tasks as well as kinds (core.runs.registry loads them).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from core import settings
from core.errors import ProtolabError
from core.metric_keys import CLASSIFICATION_HEADLINE, COMPARED_CLASSIFICATION_METRICS, DISPLAY_K, at_k, ranking_keys
from db.enums import TaskKind

FILES_PATH = "files"  # a task's multipart endpoint: POST /v1/runs/{id}/{verb}/files (Task.serve_files)

class UnknownTask(ProtolabError):
    """A task nobody registered (a dataset or run made by a plugin that is not loaded)."""


@dataclass(frozen=True)
class Headline:
    """The one figure a list of runs shows: its metric key in Run.metrics and how people read it."""

    key: str  # "macro_f1" or "<metric>@<k>"
    label: str  # "macro-F1", "NDCG@<K>"

    def value(self, metrics: Mapping[str, Any] | None) -> float | None:
        """The figure from a run's stored metrics; '<metric>@<k>' also looks in by_k (a run cut at another K)."""
        metrics = metrics or {}
        value = metrics.get(self.key)
        if not isinstance(value, (int, float)) and "@" in self.key:
            name, k = self.key.split("@", 1)
            value = ((metrics.get("by_k") or {}).get(k) or {}).get(name)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    def text(self, metrics: Mapping[str, Any] | None) -> str | None:
        value = self.value(metrics)
        return f"{self.label} {value:.3f}" if value is not None else None


@dataclass(frozen=True)
class Figure:
    """One figure of a finished run on the Train page; "{k}" in label and key is the run's K."""

    label: str  # "Test macro-F1", "Test NDCG@{k}"
    key: str  # "macro_f1", "ndcg@{k}"
    format: str = ".3f"

    def show(self, metrics: Mapping[str, Any]) -> tuple[str, str]:
        """(label, formatted value) of a run's metrics (0 when the run did not record it)."""
        k = metrics.get("k", DISPLAY_K)
        value = metrics.get(self.key.format(k=k), 0)
        return self.label.format(k=k), format(value if isinstance(value, (int, float)) else 0, self.format)


@dataclass(frozen=True)
class Demo:
    """A task's demo page: app.py lists one navigation entry per distinct page (tasks may share one)."""

    page: str  # the page file, e.g. "pages/sentiment.py"
    title: str  # "Sentiment demo": its navigation label
    icon: str = "✨"

    @property
    def url_path(self) -> str:
        # Each page's address is its file's name: a fresh server's first request routes by the pages/ folder
        # (ui.common.ensure_db), so /x must name pages/x.py to reach the same page either way.
        return self.page.rsplit("/", 1)[-1].removesuffix(".py")


@dataclass(frozen=True)
class Versions:
    """How a task's datasets get versions (core.data.versions): rows relabelled or excluded, stored as a child."""

    # The frame column a change names its rows by besides row_id (matched when the change carries it): a text
    # for texts; an image's key for images (whose changes name the row_id, stable across versions).
    content: str = "text"
    # "module:function" (parent dataset id, the version's frame) -> write_dataset's `files` hook: the files a
    # version stores beside its frame (None: the frame is all).
    files: str | None = None
    # "module:function" (the version's frame) -> the Dataset.stats entries recounted for it (None: "classes").
    stats: str | None = None
    # "module:function" (dataset id, tuple of `content` values) -> one image data: URI each: the picture the
    # Evaluate page's marks editor shows beside each mistake (None: the content column is shown as it is).
    preview: str | None = None
    # The frame column a change relabels: "label" (one class), "labels" for tag sets (an encoded list per row).
    label: str = "label"
    # "module:function" (the change's `to`, the frame's `label` column) -> the value stored: how a relabel target
    # is checked and written (None: it must be one of the column's values, stored as it is).
    target: str | None = None


@dataclass(frozen=True)
class Labelling:
    """How the Label page labels an unlabelled pool of texts with this task's labels (core.labelling.pool)."""

    choice: str  # what the label-set editor offers: "one label per text", "several tags per text"
    # A text gets a set of labels (toggled, then confirmed; stored encoded as the task's datasets store a row's
    # tags) rather than one label (a key gives it and moves on).
    several: bool
    # "module:function" (a text's labels, a list) -> the string stored for them (LabelEvent.label), and back
    encode: str
    decode: str
    # "module:function" (ParsedTable of `text` and `label` as stored, SplitConfig) -> PreparedDataset: the
    # labelled rows prepared as one of the task's datasets ("save as a version")
    prepare: str
    # "module:function" (RunContext, retrain config, the pool, its LabelState) -> the retrain's metrics: the
    # background model behind the suggestions, trained on the labels so far
    retrain: str


@dataclass(frozen=True)
class Task:
    """Everything Protolab needs to know about one task. References marked (ui) draw with Streamlit."""

    name: str  # stored as Dataset.task and Run.task (at most 16 characters)
    label: str  # "Text classification": the Datasets page's task picker
    holds: str  # "labelled texts": what one of its datasets holds, in pickers and messages
    run_noun: str  # "a classification run", "a recommender run": how messages name one of its runs
    headline: Headline
    metrics: tuple[str, ...]  # the figures Compare's bars show, in order
    # (ui) "module:function" (ParsedTable, SplitConfig, file id) -> PreparedDataset: the mapping widgets (keyed by
    # the uploaded file's id, so another file starts afresh) and the validation that prepares the dataset
    upload: str
    profile: str  # "module:function" (stored frame) -> profile dict: the numbers behind the dataset's charts
    inspect: str  # (ui) "module:function" (summary, profile, metric column) draws a stored dataset
    train_form: str  # (ui) "module:function" (dataset_id, model kind of the run in the URL or None): the Train form
    evaluate: str  # (ui) "module:function" (run, split) draws a completed run on the Evaluate page
    compare: str  # (ui) "module:function" (runs, metric points, names by run id): its charts under Compare runs
    summary: tuple[Figure, ...]  # the figures the Train page shows of a completed run
    # (what the Datasets page says, SplitConfig.method); with one the page offers no choice.
    split_methods: tuple[tuple[str, str], ...] = (("stratified", "stratified"),)
    stats_keys: tuple[str, ...] = ()  # Dataset.stats entries a dataset's summary (CLI show, pages) repeats
    evaluate_splits: tuple[str, ...] = ("test",)  # the splits Evaluate offers, the first by default
    metric_values: str | None = None  # "module:function" (run) -> {metric: value} for Compare; None: its metrics
    demo: Demo | None = None  # its stakeholder-facing demo page
    # "module:function" (argparse namespace, ParsedTable, SplitConfig keywords) -> PreparedDataset: what
    # `protolab datasets add --task NAME` maps with its flags (None: the command refuses the task).
    cli_prepare: str | None = None
    verb: str = "predict"  # its API endpoint: POST /v1/runs/{id}/{verb}
    # "module:function" (served model, JSON body) -> JSON answer, for a task without a typed endpoint of its own
    # in core.api.app (the built-in tasks have one).
    serve: str | None = None
    # "module:function" (served model, [(file name, bytes), ...]) -> JSON answer: POST /v1/runs/{id}/{verb}/files,
    # the same answer for files sent as a multipart upload (None: the task takes no file uploads).
    serve_files: str | None = None
    # "module:function" (bytes from the page or a path from the CLI, file name) -> ParsedTable: how an upload of
    # the task is read (None: as a table file, core.data.datasets.read_table).
    reader: str | None = None
    # "module:function" (bytes, file name) -> bool: the upload looks like one of its datasets (the Datasets page
    # then picks the task for the user, e.g. a ZIP of images).
    claims: str | None = None
    # "module:function" (run id, texts) -> one JSON object per text: what `protolab predict --run ID TEXT...` prints
    # for a task whose answer is not one label per text (None: the classification answer).
    predict: str | None = None
    versions: Versions | None = None  # how its datasets are relabelled into versions (None: they are not)
    # "module:function" (served model, pandas DataFrame) -> DataFrame: how the MLflow pyfunc of one of its runs
    # predicts (core.tracking.pyfunc; None: each row goes to `serve` as a JSON body).
    pyfunc_predict: str | None = None
    # "module:function" (run row) -> {name: plotly figure}: the figures its runs log to MLflow beside their curves
    tracked_figures: str | None = None
    # "module:function" (run row, split) -> HTML: the body of a run's report (`protolab report`, Evaluate's
    # download) after its dataset and model sections, drawn with core.export.report's html_table / html_figure.
    report: str = "core.export.report:metrics_body"
    # "module:function" (frame, AuditConfig, run_probabilities=, on_progress=, should_stop=, dataset_id=) ->
    # AuditResult: how the Data health tab and `protolab datasets audit` audit one of its datasets (None: its
    # datasets are not audited). `dataset_id` is the stored dataset's, for an audit that reads files beside the frame.
    audit: str | None = None
    # "module:function" (sample frame, AuditConfig, embeddings or None) -> None: the label-error step of its audit
    # that the pre-flight estimate times on a sample (None: the classification audit's cross-validation).
    audit_probe: str | None = None
    audit_from_runs: bool = True  # its audit can take a completed run's held-out probabilities (source run:ID)
    # "module:function" (dataset, model kind, stored config) -> Estimate: the audit's pre-flight estimate when it is
    # not the text audit's (MiniLM and cross-validation timed on a sample of texts, core.health.estimate)
    audit_estimate: str | None = None
    # (ui) "module:function" (dataset id, audit sources, labels): the Data health tab's form that starts its audit
    audit_form: str = "ui.data_health:audit_form"
    # (ui) "module:function" (dataset id, the stored audit as a plain dict): what the Data health tab shows of it
    health_view: str = "ui.data_health:findings_view"
    labelling: Labelling | None = None  # how the Label page labels texts with its labels (None: it does not)

    def part(self, name: str) -> Any:
        """The function one of its references names: `task.part("evaluate")(run, split)`."""
        return resolve(getattr(self, name))

    def endpoint(self, run_id: int) -> str:
        return f"/v1/runs/{run_id}/{self.verb}"

    def files_endpoint(self, run_id: int) -> str:
        return f"{self.endpoint(run_id)}/{FILES_PATH}"

    def split_method(self, said: str) -> str:
        """The SplitConfig method of what the page said ('per-user random' -> 'random')."""
        return dict(self.split_methods)[said]

    def values_for_compare(self, run: Any) -> dict[str, Any]:
        return resolve(self.metric_values)(run) if self.metric_values else dict(run.metrics or {})


@dataclass
class _Tasks:
    tasks: dict[str, Task] = field(default_factory=dict)  # by name, in registration order
    plugins_loaded: bool = False  # the modules of PROTOLAB_MODEL_KINDS were imported


_tasks = _Tasks()


def register_task(task: Task) -> Task:
    """Add a task (or replace one of the same name: tests and plugins do)."""
    _tasks.tasks[task.name] = task
    return task


def all_tasks() -> list[Task]:
    """Every registered task, in registration order: the order pickers show."""
    load_plugins()
    return list(_tasks.tasks.values())


def labelling_tasks() -> list[Task]:
    """The tasks whose labels the Label page can give, in registration order (the first is the default)."""
    return [task for task in all_tasks() if task.labelling is not None]


def demos() -> list[Demo]:
    """The demo pages of every task, each once, in registration order (the first is presentation mode's root)."""
    return list(dict.fromkeys(task.demo for task in all_tasks() if task.demo is not None))


def get_task(name: str) -> Task:
    """The entry of a dataset's or run's task; UnknownTask names the ones there are."""
    load_plugins()
    try:
        return _tasks.tasks[str(name)]
    except KeyError:
        raise UnknownTask(f"unknown task {name!r}: use one of {', '.join(_tasks.tasks)}") from None


def resolve(reference: str) -> Any:
    """The object a "module:attribute" reference names."""
    module_name, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def load_plugins() -> None:
    """Import each module named in PROTOLAB_MODEL_KINDS once; each registers its kinds (and tasks) on import."""
    if _tasks.plugins_loaded:
        return
    _tasks.plugins_loaded = True
    for module_name in filter(None, (m.strip() for m in settings.MODEL_KINDS.get().split(","))):
        importlib.import_module(module_name)


# --- the built-in tasks --------------------------------------------------------------------------------
register_task(Task(
    TaskKind.CLASSIFICATION, "classification", "labelled texts", "a classification run",
    Headline(CLASSIFICATION_HEADLINE, "macro-F1"), COMPARED_CLASSIFICATION_METRICS,
    upload="ui.dataset_forms:classification_upload", profile="ui.dataset_forms:classification_profile",
    inspect="ui.dataset_forms:classification_inspect", train_form="ui.train_forms:classification_form",
    evaluate="ui.evaluate_views:classification_run", compare="ui.evaluate_views:classification_comparison",
    summary=(Figure("Test macro-F1", "macro_f1"), Figure("Test accuracy", "accuracy"),
             Figure("Train samples/s", "train_samples_per_s", ",.0f")),
    stats_keys=("classes",), evaluate_splits=("test", "validation"),
    demo=Demo("pages/sentiment.py", "Sentiment demo", "💬"),
    cli_prepare="core.cli.datasets:prepare_classification_args", verb="predict", versions=Versions(),
    pyfunc_predict="core.tracking.pyfunc:classify_frame",
    tracked_figures="core.tracking.figures:classification_figures", audit="core.health.audit:run_audit",
    report="core.export.report:classification_body",
    labelling=Labelling("one label per text", False, "core.labelling.pool:one_label", "core.labelling.pool:as_list",
                        "core.labelling.pool:prepare_classes", "core.labelling.retrain:train_on_classes")))
register_task(Task(
    TaskKind.INTERACTIONS, "interactions", "interactions", "a recommender run",
    Headline(at_k("ndcg"), f"NDCG@{DISPLAY_K}"), tuple(ranking_keys()),
    upload="ui.dataset_forms:interactions_upload", profile="core.data.profiling:interactions_profile",
    inspect="ui.dataset_forms:interactions_inspect", train_form="ui.train_forms:recommender_form",
    evaluate="ui.evaluate_views:ranking_view", compare="ui.evaluate_views:ranking_comparison",
    summary=(Figure("Test NDCG@{k}", "ndcg@{k}"), Figure("Test recall@{k}", "recall@{k}"),
             Figure("Catalogue coverage", "coverage", ".1%")),
    split_methods=(("per-user random", "random"), ("leave last out (by time)", "time")),
    stats_keys=("users", "items", "interactions", "sparsity", "catalogue_items"),
    metric_values="core.evaluation.comparison:ranking_metrics_at",
    demo=Demo("pages/recommendations.py", "Recommendations demo", "🎬"),
    cli_prepare="core.cli.datasets:prepare_interactions_args", verb="recommend",
    pyfunc_predict="core.tracking.pyfunc:recommend_frame", tracked_figures="core.tracking.figures:ranking_figures",
    report="core.export.report:ranking_body"))
# Images are a second classification task: the same metrics, headline, figures, Evaluate views and API verb,
# with datasets of their own (core.images).
register_task(replace(
    _tasks.tasks[TaskKind.CLASSIFICATION], name="images", label="image classification", holds="labelled images",
    run_noun="an image classification run", upload="ui.images.datasets:upload",
    profile="core.images.profile:images_profile", inspect="ui.images.datasets:inspect",
    train_form="ui.train_forms:images_form", evaluate="ui.images.evaluate:images_run",
    stats_keys=("classes", "images"), demo=Demo("pages/image_classifier.py", "Image classifier", "🖼️"),
    cli_prepare="core.images.reading:prepare_from_args", reader="core.images.reading:read_images",
    verb="classify", serve="core.images.api:classify", serve_files="core.images.api:classify_files",
    claims="core.images.reading:looks_like_images", audit="core.health.images:audit_images",
    audit_from_runs=False, audit_estimate="core.health.images:estimate_image_audit",
    audit_form="ui.images.health:image_audit_form", health_view="ui.images.health:image_findings_view",
    labelling=None,
    versions=Versions("image", files="core.images.versions:linked_images", stats="core.images.versions:counts",
                      preview="core.images.gallery:thumbnail_uris")))
register_task(Task(
    TaskKind.MULTILABEL, "Multi-label text", "texts with tag sets", "a multi-label run",
    Headline("micro_f1", "micro-F1"), ("micro_f1", "macro_f1", "samples_f1", "subset_accuracy"),
    upload="ui.multilabel_forms:multilabel_upload", profile="core.multilabel.dataset:multilabel_profile",
    inspect="ui.multilabel_forms:multilabel_inspect", train_form="ui.train_forms:multilabel_form",
    evaluate="ui.multilabel_forms:multilabel_run", compare="ui.evaluate_views:classification_comparison",
    summary=(Figure("Test micro-F1", "micro_f1"), Figure("Test macro-F1", "macro_f1"),
             Figure("Train samples/s", "train_samples_per_s", ",.0f")),
    split_methods=(("iterative stratification", "stratified"),), stats_keys=("n_tags", "rows_without_tags"),
    evaluate_splits=("test", "validation"), cli_prepare="core.multilabel.dataset:prepare_from_args", verb="tag",
    serve="core.multilabel.serving:serve_tags", predict="core.multilabel.serving:predict_json",
    claims="core.multilabel.dataset:claims_upload",
    versions=Versions(label="labels", target="core.multilabel.versions:tag_set_target",
                      stats="core.multilabel.versions:recount"),
    demo=Demo("pages/tagging.py", "Tagging demo", "🏷️"), report="core.multilabel.report:multilabel_body",
    audit="core.multilabel.audit:audit_tag_sets", audit_probe="core.multilabel.audit:probe", audit_from_runs=False,
    health_view="ui.multilabel_health:tag_findings_view",
    labelling=Labelling("several tags per text", True, "core.multilabel.labels:encode", "core.multilabel.labels:decode",
                        "core.multilabel.labelling:prepare_labelled", "core.multilabel.labelling:train_on_tag_sets")))
