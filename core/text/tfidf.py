"""The fast baseline: TF-IDF word n-grams + logistic regression (scikit-learn).

Saved with skops against an explicit list of trusted types (no pickle), with the
label names in JSON beside it, so a tampered file is refused instead of executed.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import ProtolabError
from core.text.config import TrainConfig

MODEL_FILE = "model.skops"
LABELS_FILE = "labels.json"

# Everything a fitted TfidfVectorizer + LogisticRegression pipeline holds that is not a plain
# builtin or numpy array. Anything else in a file is refused by skops.io.load.
TRUSTED_TYPES = [
    "sklearn.pipeline.Pipeline",
    "sklearn.feature_extraction.text.TfidfVectorizer",
    "sklearn.feature_extraction.text.TfidfTransformer",
    "sklearn.linear_model._logistic.LogisticRegression",
    "numpy.float64",
    "numpy.int64",
    "numpy.dtype",
]


class BaselineError(ProtolabError):
    """The baseline could not be trained or loaded (one class only, missing or untrusted file)."""


@dataclass(frozen=True)
class TfidfConfig:
    # The reference figure for the tweets corpus (macro-F1 0.728) used word 1-2 grams,
    # sublinear tf and C=4.
    ngram_range: tuple[int, int] = (1, 2)
    sublinear_tf: bool = True
    min_df: int = 1
    max_features: int | None = 200_000
    C: float = 4.0
    max_iter: int = 1000
    class_weight: str | None = None  # None | "balanced"
    # SAGA to a 1e-3 tolerance: on the 30k-tweet corpus 5 s instead of lbfgs's 81 s (96 iterations over
    # 200k features), macro-F1 0.730 instead of 0.731 (BENCHMARKS.md, "Estimates"). Seeded: SAGA shuffles.
    solver: str = "saga"
    tol: float = 1e-3
    seed: int = 0

    @classmethod
    def of_run(cls, cfg: TrainConfig) -> TfidfConfig:
        """The model a run with settings `cfg` trains (and the estimate times: the same one)."""
        return cls(ngram_range=(1, cfg.tfidf_ngram_max), min_df=cfg.tfidf_min_df, max_features=cfg.tfidf_max_features,
                   C=cfg.tfidf_c, class_weight="balanced" if cfg.class_weights else None, seed=cfg.seed)


class TfidfModel:
    """A fitted pipeline plus its label names; probabilities come in `.labels` order."""

    def __init__(self, pipeline, labels: Sequence[str]) -> None:  # noqa: ANN001
        self.pipeline = pipeline
        self.labels = [str(label) for label in labels]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.pipeline.predict_proba(_clean(texts)), dtype=np.float64)

    def predict(self, texts: Sequence[str]) -> list[str]:
        proba = self.predict_proba(texts)
        return [self.labels[i] for i in proba.argmax(axis=1)]

    def term_contributions(self, text: str) -> dict[str, np.ndarray]:
        """Each n-gram of `text` the model knows -> what it adds to every class's logit (coefficient × its
        TF-IDF value; shape (len(labels),)). The intercept plus their sum is the model's decision function."""
        vectorizer, clf = self.pipeline.named_steps["tfidf"], self.pipeline.named_steps["clf"]
        row = vectorizer.transform(_clean([text])).tocsr()
        coef = np.asarray(clf.coef_, dtype=np.float64)
        if coef.shape[0] == 1:  # binary: one weight vector, the logit of classes_[1] against classes_[0]
            coef = np.vstack([np.zeros_like(coef), coef])
        terms = vectorizer.get_feature_names_out()
        return {str(terms[j]): coef[:, j] * value for j, value in zip(row.indices, row.data, strict=True)}

    def intercepts(self) -> np.ndarray:
        """The classes' logits for a text with no known n-gram (the other half of term_contributions)."""
        b = np.asarray(self.pipeline.named_steps["clf"].intercept_, dtype=np.float64)
        return np.array([0.0, b[0]]) if b.shape[0] == 1 else b

    def word_terms(self, word: str) -> list[str]:
        """The unigrams the vectorizer reads in one whitespace-separated word ("Don't," -> ["don"])."""
        vectorizer = self.pipeline.named_steps["tfidf"]
        return vectorizer.build_tokenizer()(vectorizer.build_preprocessor()(word))


def train_tfidf(texts: Sequence[str], labels: Sequence[str], cfg: TfidfConfig = TfidfConfig()) -> TfidfModel:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    labels = [str(label) for label in labels]
    if len(set(labels)) < 2:
        raise BaselineError("the TF-IDF baseline needs at least two different labels in the training split")
    pipeline = Pipeline([
        ("tfidf", TfidfVectorizer(ngram_range=tuple(cfg.ngram_range), sublinear_tf=cfg.sublinear_tf,
                                  min_df=cfg.min_df, max_features=cfg.max_features)),
        ("clf", LogisticRegression(C=cfg.C, max_iter=cfg.max_iter, class_weight=cfg.class_weight, solver=cfg.solver,
                                   tol=cfg.tol, random_state=cfg.seed)),
    ])
    try:
        pipeline.fit(_clean(texts), labels)
    except ValueError as exc:  # e.g. "empty vocabulary" when every text is blank
        raise BaselineError(f"could not train the TF-IDF baseline: {exc}") from exc
    # LogisticRegression orders predict_proba's columns by classes_ (sorted), so these are the labels.
    return TfidfModel(pipeline, list(pipeline.classes_))


def save_tfidf(model: TfidfModel, folder: Path) -> None:
    import skops.io as sio

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vectorizer = model.pipeline.named_steps["tfidf"]
    # skops stores every NumPy scalar as its own array entry and rescans the zip for each one,
    # so a 200k-term vocabulary of np.int64 took over 15 minutes to save; plain ints take a second.
    vectorizer.vocabulary_ = {term: int(index) for term, index in vectorizer.vocabulary_.items()}
    if hasattr(vectorizer, "stop_words_"):  # terms cut by min_df/max_features: only needed for inspection
        vectorizer.stop_words_ = None
    sio.dump(model.pipeline, folder / MODEL_FILE)
    (folder / LABELS_FILE).write_text(json.dumps({"labels": model.labels}, indent=2))


def load_tfidf(folder: Path) -> TfidfModel:
    """Load a saved baseline, refusing any object type outside TRUSTED_TYPES."""
    import skops.io as sio

    folder = Path(folder)
    try:
        labels = json.loads((folder / LABELS_FILE).read_text())["labels"]
        untrusted = sorted(set(sio.get_untrusted_types(file=folder / MODEL_FILE)) - set(TRUSTED_TYPES))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise BaselineError(f"{folder} does not hold a loadable TF-IDF model: {exc}") from exc
    if untrusted:
        raise BaselineError(f"refusing to load {folder / MODEL_FILE}: it contains untrusted types "
                            f"{', '.join(untrusted)}")
    try:
        pipeline = sio.load(folder / MODEL_FILE, trusted=TRUSTED_TYPES)
    except Exception as exc:  # skops raises several types for damaged archives
        raise BaselineError(f"could not load {folder / MODEL_FILE}: {exc}") from exc
    if [str(c) for c in pipeline.classes_] != list(labels):
        raise BaselineError(f"{folder}: the label list does not match the saved model's classes")
    return TfidfModel(pipeline, labels)


def _clean(texts: Sequence[str]) -> list[str]:
    # Missing texts (None/NaN from pandas) become empty strings rather than crashing the vectorizer.
    return ["" if t is None or (isinstance(t, float) and np.isnan(t)) else str(t) for t in texts]
