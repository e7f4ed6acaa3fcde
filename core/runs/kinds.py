"""The built-in model kinds and their option schemas: one `register(ModelKind(...))` each, loaded by
core.runs.registry before any plugin. The Train form, the CLI's flags and Compare are drawn from these entries.

Code is named as "module:attribute" strings (resolved on first use), so listing the kinds imports no torch or
scikit-learn. Defaults are not repeated here: an option without one starts from its kind's config dataclass.
"""

from __future__ import annotations

from dataclasses import replace

from core.runs.device import DEVICE_KINDS, DEVICES
from core.runs.registry import SEVERAL_GPUS, ModelKind, Option, TaskVariant, register
from db.enums import LABEL_RETRAIN_KIND, TaskKind

GPU = DEVICE_KINDS  # the kinds that can use a GPU run on any device
BIGGEST_SEED = 2**31 - 1

# --- options shared by the text classifiers ----------------------------------------------------------------
MODEL_ID = Option("model_id", str, "Pretrained model", "a Hugging Face model id or a local folder; MiniLM is bundled "
                  "and works offline, the others download once from the hub", widget="pretrained", main=True)
EPOCHS = Option("epochs", int, "Epochs", "passes over the training split", low=1, high=100)
BATCH_SIZE = Option("batch_size", int, "Batch size", "examples a step; halved automatically on GPU OOM",
                    low=1, high=1024, log=True)
LEARNING_RATE = Option("learning_rate", float, "Learning rate", "peak AdamW step size, reached after the warm-up",
                       low=1e-7, high=1.0, log=True, step=1e-5, format="%.1e", flag="--lr")
MAX_LENGTH = Option("max_length", int, "Max length (tokens)", "longer texts are truncated; shorter is faster",
                    low=8, high=512)
WARMUP = Option("warmup_ratio", float, "Warm-up (share of steps)",
                "the learning rate rises linearly, then decays to 0", low=0.0, high=0.5)
WEIGHT_DECAY = Option("weight_decay", float, "Weight decay", "AdamW's pull of the weights towards 0 "
                      "(regularisation)", low=0.0, high=1.0)
PATIENCE = Option("patience", int, "Patience (epochs)", "stop after this many epochs without a better validation "
                  "F1; 0 = never stop early", low=0, high=20)
DEVICE = Option("device", str, "Device", "auto picks CUDA, then Apple MPS, then CPU (cuda:N names one GPU)",
                choices=DEVICES, open_choices=True, widget="device")
GPUS = Option("gpus", int, "GPUs", "more than one trains with DistributedDataParallel (torchrun)", low=1,
              when=SEVERAL_GPUS)
SEED = Option("seed", int, "Seed", "same seed, same data: same run", low=0, high=BIGGEST_SEED)
CLASS_WEIGHTS = Option("class_weights", bool, "Balance classes", "weight rare labels up (for imbalanced data)",
                       cli=False)
# Set by neither the form nor a flag, but they change what a run learns: Compare shows them, a search may vary them.
GRAD_ACCUM = Option("grad_accum_steps", int, "Gradient accumulation steps", low=1, high=64, form=False, cli=False)
MAX_GRAD_NORM = Option("max_grad_norm", float, "Gradient clipping norm", low=0.1, high=10.0, log=True, form=False,
                       cli=False)
# A time budget, for CPU users facing an hour-long estimate: training stops cleanly when the run would pass it,
# keeping the best weights so far (evaluated and saved as any run is); the run's events say where it stopped.
MINUTES = Option("minutes", float, "Time budget (minutes)", "stop training when the whole run would pass this many "
                 "minutes, keeping the best weights so far; empty = no budget", low=0.5, high=10_080.0, step=1.0,
                 format="%.1f", main=True)
# What a time budget's plan (core.runs.budget_plan) samples; a user may set it too (`--train-rows N`).
TRAIN_ROWS = Option("train_rows", int, "Training rows", "train on a stratified sample of this many rows of the "
                    "training split; empty = all", low=1, high=100_000_000, log=True, form=False)
NEURAL = (MINUTES, TRAIN_ROWS, EPOCHS, BATCH_SIZE, LEARNING_RATE, MAX_LENGTH, WARMUP, WEIGHT_DECAY, PATIENCE, DEVICE,
          GPUS, SEED, CLASS_WEIGHTS, GRAD_ACCUM, MAX_GRAD_NORM)
TORCH_TEXT = ("torch", "transformers", "sklearn.metrics", "safetensors.torch")

# --- recommenders ------------------------------------------------------------------------------------------
K = Option("k", int, "K (ranking metrics)", "cut-off of the ranking metrics: Precision@K, Recall@K, NDCG@K …",
           low=1, high=100)
# The form starts from the split chosen at upload (training used to re-split silently); the CLI keeps the
# config's default, the published 75/25 protocol.
SPLIT = Option("split_protocol", str, "Evaluation split", "compare runs only when they use the same split",
               default="dataset", choices=("stratified_item", "leave_last_out", "dataset"),
               choice_text=("75/25 per item, seed 42 (comparable with published MovieLens figures)",
                            "leave the last interaction of each user out (by time)",
                            "the split stored with the dataset"))
TRAIN_RATIO = Option("train_ratio", float, "Training share", low=0.5, high=0.95, form=False, cli=False)
REC_DEVICE = replace(DEVICE, form=False)
REC_COMMON = (K, SPLIT, SEED, TRAIN_RATIO)
FACTORS = Option("factors", int, "Latent factors", "size of the learned user and item vectors", low=4, high=1024,
                 log=True)
REC_EPOCHS = replace(EPOCHS, help="passes over the interactions", high=1000)
REC_LR = replace(LEARNING_RATE, help="Adam's step size", low=1e-5, step=None, format="%.4f")
REC_BATCH = replace(BATCH_SIZE, help="interactions a step", form=False, cli=False)
NEIGHBOURS = Option("neighbours", int, "Neighbours", low=10, high=1000, log=True, form=False, cli=False)
RECS = "core.recs.config:build_config", "core.recs.training:execute_run", "core.recs.serving:load_run_model"
REC_ESTIMATE = "core.recs.estimate:estimate_recommender"
NUMPY_SAVE = ("safetensors.numpy",)
TEXT = "core.text.config:build_config", "core.text.executor:execute_run"
# The text kinds on multi-label texts (core.multilabel): the same names, options and form; a sigmoid per tag.
ML_TRAIN, ML_SERVE = "core.multilabel.training", "core.multilabel.serving"
# Their networks export as the single-label ones do (logits out), with the tags' thresholds beside the graph.
MULTILABEL_NEURAL = TaskVariant(TaskKind.MULTILABEL, f"{ML_TRAIN}:execute_neural", f"{ML_SERVE}:load_neural_tagger",
                                exports=("onnx", "onnx-int8"), exporter="core.export.tags:export_tag_run",
                                load_onnx="core.export.tags:load_onnx_tagger")


def _searched(options: tuple[Option, ...], **ranges: tuple[float, float]) -> tuple[Option, ...]:
    """`options` with the default search range of those named (`protolab search` and the Train page's Search mode
    try these; --space overrides them)."""
    unknown = set(ranges) - {o.name for o in options}
    assert not unknown, f"no such options: {unknown}"
    return tuple(replace(o, search=ranges[o.name]) if o.name in ranges else o for o in options)


# --- image classification (core.images) ---------------------------------------------------------------------
IMAGES = "images"  # core.images.TASK (not imported: that would load PIL to list the kinds)
IMAGE_SIZE = Option("image_size", int, "Image size (pixels)", "the square side the model sees; smaller is faster",
                    low=8, high=1024)
AUGMENT = Option("augment", bool, "Augment", "random resized crops and left-right flips of the training images",
                 cli=False)
IMAGE_CONFIG = "core.images.config:build_config"
IMAGE_LOAD = "core.images.serving:load_image_classifier"
TORCH_IMAGES = ("torch", "sklearn.metrics", "safetensors.torch", "PIL.Image")
# Every image network exports the same way: ONNX from normalised pixels to logits, checked on the run's own images.
IMAGE_EXPORT = {"exports": ("onnx", "onnx-int8"), "exporter": "core.export.images:export_image_run"}


def _image_options(*, size: int, epochs: int, batch: int) -> tuple[Option, ...]:
    return (replace(IMAGE_SIZE, default=size), replace(EPOCHS, default=epochs), replace(BATCH_SIZE, default=batch),
            LEARNING_RATE, AUGMENT, WARMUP, WEIGHT_DECAY, PATIENCE, DEVICE, GPUS, SEED, CLASS_WEIGHTS, GRAD_ACCUM,
            MAX_GRAD_NORM)


def _setfit_options() -> tuple[Option, ...]:
    return (Option("num_iterations", int, "Pair iterations", "contrastive pairs drawn per labelled example",
                   low=1, high=100),
            Option("max_pairs", int, "Max. pairs", "at most this many pairs in one run: caps the training time",
                   low=8, high=1_000_000, log=True),
            replace(EPOCHS, help="passes over the pairs", high=20), replace(BATCH_SIZE, high=512),
            replace(LEARNING_RATE, label="Learning rate (encoder)", help="the encoder's AdamW step size",
                    search=(1e-5, 1e-4)),
            MAX_LENGTH, DEVICE, SEED, CLASS_WEIGHTS, replace(MODEL_ID, form=False))


for _kind in (
    ModelKind("transformer", TaskKind.CLASSIFICATION, "Transformer (fine-tune)",
              "the most accurate; fine-tunes a pretrained model (MiniLM by default), best on a GPU",
              *TEXT, "core.text.serving:load_transformer_classifier", devices=GPU, multi_gpu=True,
              has_epochs=True,
              # 1e-4, not BERT-base's usual 5e-5: MiniLM-L6 with a fresh head learns little in the few dozen steps
              # of a small dataset at 5e-5 (demo reviews, 3 epochs: macro-F1 0.32 vs 1.00 at 1e-4 / 2e-4).
              options=_searched((MODEL_ID, *NEURAL), learning_rate=(1e-5, 3e-4), weight_decay=(0.0, 0.1),
                                warmup_ratio=(0.0, 0.2)),
              learning_rate=1e-4, auto_batch=True, exports=("onnx", "onnx-int8", "hf"),
              estimate="core.text.estimate:estimate_run", imports=TORCH_TEXT, model="core.text.executor:TransformerNet",
              curve="core.labelling.label_curve:fit_transformer", short="Transformer", disk_mb=400,
              variants=(MULTILABEL_NEURAL,)),
    ModelKind("lstm", TaskKind.CLASSIFICATION, "LSTM (BiLSTM on subwords)",
              "a small recurrent network: fast to train, even on a CPU",
              *TEXT, "core.text.serving:load_lstm_classifier", devices=GPU, multi_gpu=True, has_epochs=True,
              options=_searched((Option("init_embeddings", bool, "Start from MiniLM's word embeddings",
                                        "usually learns faster and better than random embeddings", main=True,
                                        cli=False),
                                 replace(MODEL_ID, form=False), *(replace(o, default=64) if o is BATCH_SIZE else o
                                                                  for o in NEURAL)),
                                learning_rate=(3e-4, 1e-2), weight_decay=(0.0, 0.1)),
              learning_rate=2e-3, auto_batch=True, exports=("onnx", "onnx-int8"),
              estimate="core.text.estimate:estimate_run", imports=TORCH_TEXT, model="core.text.lstm:LstmNet",
              short="LSTM", disk_mb=100, variants=(MULTILABEL_NEURAL,)),
    ModelKind("tfidf", TaskKind.CLASSIFICATION, "TF-IDF + logistic regression (fast baseline)",
              "the baseline every model must beat: word and bigram counts on a CPU; seconds for a few thousand "
              "texts, about a minute for 30,000 (Estimate says how long)",
              TEXT[0], "core.text.executor:execute_tfidf_run", "core.text.serving:load_tfidf_classifier",
              options=(Option("tfidf_c", float, "C (inverse regularisation)", "higher fits the training data more "
                              "closely", low=0.01, high=1000.0, log=True, cli=False, search=(0.05, 100.0)),
                       Option("tfidf_ngram_max", int, "Longest word n-gram", low=1, high=3, cli=False, search=(1, 3)),
                       Option("tfidf_min_df", int, "Min. document frequency", low=1, high=100, cli=False,
                              search=(1, 5)),
                       SEED, CLASS_WEIGHTS,
                       Option("tfidf_max_features", int, "Vocabulary size", low=1000, high=1_000_000, log=True,
                              form=False, cli=False)),
              exports=("skops",), estimate="core.text.estimate:estimate_tfidf_run",
              imports=("sklearn.feature_extraction.text", "sklearn.linear_model", "sklearn.pipeline",
                       "sklearn.metrics", "skops.io"),
              curve="core.labelling.label_curve:fit_tfidf", short="TF-IDF", baseline=True,
              disk_mb=20, variants=(TaskVariant(TaskKind.MULTILABEL, f"{ML_TRAIN}:execute_tfidf",
                                                        f"{ML_SERVE}:load_tfidf_tagger", exports=("skops",),
                                                        exporter="core.export.tags:export_tfidf_tag_run"),)),
    ModelKind("setfit", TaskKind.CLASSIFICATION, "SetFit (few-shot, from 8 examples a class)",
              "contrastive fine-tuning of MiniLM + a logistic head: the best with few labels; minutes on a CPU",
              "core.text.fewshot:build_config", "core.text.fewshot_run:execute_run",
              "core.text.fewshot_run:load_setfit_classifier", devices=GPU, options=_setfit_options(),
              curve="core.labelling.label_curve:fit_setfit", few_shot=True, short="SetFit", job=LABEL_RETRAIN_KIND,
              disk_mb=200, variants=(TaskVariant(TaskKind.MULTILABEL, f"{ML_TRAIN}:execute_setfit",
                                                         f"{ML_SERVE}:load_setfit_tagger"),)),
    ModelKind("ease", TaskKind.INTERACTIONS, "EASE (linear item model; best on MovieLens)",
              "the strongest item-to-item model on small catalogues; seconds", *RECS,
              options=(*REC_COMMON, REC_DEVICE, Option("l2", float, "L2 regularisation", low=1.0, high=1e5, log=True,
                                                       form=False, cli=False, search=(10.0, 5000.0))),
              estimate=REC_ESTIMATE, imports=NUMPY_SAVE, model="core.recs.models:Ease", short="EASE",
              disk_mb=50),
    ModelKind("itemknn", TaskKind.INTERACTIONS, "Item k-NN (cosine)",
              "people who liked this also liked: simple, explainable", *RECS,
              options=_searched((*REC_COMMON, REC_DEVICE, NEIGHBOURS,
                                 Option("shrink", float, "Shrinkage", low=0.0, high=100.0, form=False, cli=False)),
                                neighbours=(10, 500), shrink=(0.0, 50.0)),
              estimate=REC_ESTIMATE, imports=NUMPY_SAVE, model="core.recs.models:ItemKnn", short="Item k-NN"),
    ModelKind("bpr", TaskKind.INTERACTIONS, "BPR matrix factorisation",
              "learned user and item factors; uses a GPU when there is one", *RECS, devices=GPU, has_epochs=True,
              options=_searched((*REC_COMMON, REC_EPOCHS, FACTORS, REC_LR, DEVICE, REC_BATCH,
                                 replace(WEIGHT_DECAY, low=0.0, high=0.1, form=False, cli=False)),
                                factors=(16, 256), learning_rate=(1e-4, 1e-1), weight_decay=(0.0, 0.01)),
              estimate=REC_ESTIMATE, imports=("torch", *NUMPY_SAVE), model="core.recs.models:Bpr", short="BPR"),
    ModelKind("sequential", TaskKind.INTERACTIONS, "GRU over each user's history",
              "predicts the next item from the order of a user's history; use a leave-last-out split", *RECS,
              devices=GPU, has_epochs=True,
              options=_searched((K, replace(SPLIT, default="leave_last_out"), SEED, TRAIN_RATIO, REC_EPOCHS, FACTORS,
                                 REC_LR, DEVICE, REC_BATCH,
                                 replace(MAX_LENGTH, label="History length", low=2, high=1000, form=False, cli=False),
                                 Option("dropout", float, "Dropout", low=0.0, high=0.9, form=False, cli=False)),
                                factors=(16, 256), learning_rate=(1e-4, 1e-1), dropout=(0.0, 0.5)),
              estimate=REC_ESTIMATE, imports=("torch", *NUMPY_SAVE), model="core.recs.sequential:Sequential",
              short="GRU"),
    ModelKind("content", TaskKind.INTERACTIONS, "Content (catalogue text) + k-NN",
              "recommends from item titles and descriptions, so new items get recommended too", *RECS, devices=GPU,
              options=(*REC_COMMON, replace(MODEL_ID, form=False), REC_DEVICE, NEIGHBOURS,
                       Option("collaborative_weight", float, "Weight of the k-NN blend", low=0.0, high=1.0,
                              form=False, cli=False)),
              estimate=REC_ESTIMATE, imports=("torch", "sentence_transformers", *NUMPY_SAVE),
              model="core.recs.models:Content", short="Content"),
    ModelKind("popularity", TaskKind.INTERACTIONS, "Popularity (baseline)",
              "the most popular items for everyone: the baseline", *RECS, options=(*REC_COMMON, REC_DEVICE),
              estimate=REC_ESTIMATE, imports=NUMPY_SAVE, model="core.recs.models:Popularity", short="Popularity"),
    ModelKind("vision", IMAGES, "Pretrained vision model (fine-tune)",
              "the most accurate: fine-tunes EfficientNet-Lite0 (ImageNet, bundled, offline) or a Hugging Face image "
              "model; minutes on a CPU for a few thousand images", IMAGE_CONFIG,
              "core.images.training:execute_vision_run", IMAGE_LOAD, devices=GPU, multi_gpu=True, has_epochs=True,
              options=(replace(MODEL_ID, help="empty: the bundled EfficientNet-Lite0 (ImageNet, works offline); or a "
                               "Hugging Face image-classification model id or local folder", widget=None),
                       *_image_options(size=160, epochs=5, batch=32)),
              # 5e-4: the pretrained features survive it; 1e-3+ with a fresh head visibly forgets them early.
              learning_rate=5e-4, imports=TORCH_IMAGES, short="Vision", disk_mb=60, **IMAGE_EXPORT),
    ModelKind("linear_probe", IMAGES, "Linear probe (frozen EfficientNet-Lite0 + logistic regression)",
              "the baseline and the few-shot model: embeds each image once with the pretrained backbone and fits a "
              "logistic regression; seconds to a minute on a CPU", IMAGE_CONFIG,
              "core.images.training:execute_probe_run", IMAGE_LOAD, devices=GPU,
              options=(replace(IMAGE_SIZE, default=224),
                       Option("probe_c", float, "C (inverse regularisation)", "higher fits the training images more "
                              "closely", low=1e-4, high=1000.0, log=True, cli=False),
                       DEVICE, SEED, CLASS_WEIGHTS),
              imports=(*TORCH_IMAGES, "sklearn.linear_model"), short="Linear probe", few_shot=True, baseline=True,
              disk_mb=60, **IMAGE_EXPORT),
    ModelKind("cnn", IMAGES, "Small CNN (from scratch)",
              "the classic approach: a six-layer convolutional network trained from random weights; needs more "
              "images and epochs than the pretrained model", IMAGE_CONFIG, "core.images.training:execute_cnn_run",
              IMAGE_LOAD, devices=GPU, multi_gpu=True, has_epochs=True,
              options=(*_image_options(size=64, epochs=10, batch=64),
                       Option("cnn_width", int, "Width (channels)", "channels of the first block, doubled per block",
                              low=4, high=256, log=True, form=False, cli=False)),
              learning_rate=2e-3, imports=TORCH_IMAGES, short="CNN", disk_mb=20, **IMAGE_EXPORT),
    ModelKind("data_audit", TaskKind.CLASSIFICATION, "Data health audit",
              "label errors, near-duplicates, leakage and oddities of a dataset (a job, not a model)",
              "core.health.jobs:build_config", "core.health.jobs:execute_audit",
              estimate="core.health.estimate:estimate_audit",
              imports=("torch", "transformers", "sklearn.linear_model", "cleanlab.filter")),
    ModelKind(LABEL_RETRAIN_KIND, TaskKind.CLASSIFICATION, "SetFit on the labels so far (Label page)",
              "the Label page's background retrain: suggestions and uncertainty for the texts still unlabelled",
              "core.text.fewshot:build_config", "core.labelling.retrain:execute_retrain",
              "core.text.fewshot_run:load_setfit_classifier", devices=GPU, few_shot=True, short="SetFit",
              offered=False, disk_mb=200,
              # a pool labelled with tag sets retrains as a multi-label run (core.multilabel.labelling)
              variants=(TaskVariant(TaskKind.MULTILABEL, "core.labelling.retrain:execute_retrain",
                                    f"{ML_SERVE}:load_setfit_tagger"),)),
    ModelKind("label_curve", TaskKind.CLASSIFICATION, "How many labels do I need (label curve)",
              "macro-F1 of SetFit, TF-IDF and the Transformer at 8-64 labels a class (a job, not a model)",
              "core.labelling.curve_job:build_config", "core.labelling.curve_job:execute_label_curve",
              devices=GPU),
):
    register(_kind)
