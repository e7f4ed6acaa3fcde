"""The TF-IDF baseline: it learns, round-trips through skops, and refuses untrusted files."""

from __future__ import annotations

import numpy as np
import pytest

from core.evaluation.metrics import classification_report
from core.text.tfidf import BaselineError, TfidfConfig, load_tfidf, save_tfidf, train_tfidf
from tests.conftest import sentiment_frame, with_splits


@pytest.fixture(scope="module")
def splits():
    frame = with_splits(sentiment_frame(n=200, seed=1))
    return frame[frame.split == "train"], frame[frame.split == "validation"]


def test_tfidf_learns(splits) -> None:
    train, val = splits
    model = train_tfidf(list(train.text), list(train.label), TfidfConfig())
    assert model.labels == ["negative", "positive"]
    proba = model.predict_proba(list(val.text))
    assert proba.shape == (len(val), 2) and np.allclose(proba.sum(1), 1.0)
    report = classification_report(list(val.label), model.predict(list(val.text)), model.labels)
    assert report["macro_f1"] > 0.9
    # Column order follows .labels.
    assert model.labels[int(model.predict_proba(["love love excellent"]).argmax())] == "positive"


def test_tfidf_round_trip_is_identical(splits, tmp_path) -> None:
    train, val = splits
    model = train_tfidf(list(train.text), list(train.label), TfidfConfig(min_df=2, class_weight="balanced"))
    save_tfidf(model, tmp_path / "tfidf")
    assert (tmp_path / "tfidf" / "model.skops").exists() and (tmp_path / "tfidf" / "labels.json").exists()
    loaded = load_tfidf(tmp_path / "tfidf")
    assert loaded.labels == model.labels
    assert np.array_equal(loaded.predict_proba(list(val.text)), model.predict_proba(list(val.text)))


def test_tampered_file_with_unknown_types_is_refused(splits, tmp_path) -> None:
    import os

    import skops.io as sio
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    train, _ = splits
    save_tfidf(train_tfidf(list(train.text), list(train.label)), tmp_path / "tfidf")
    # Replace the model with one that would call os.system when used.
    evil = Pipeline([("f", FunctionTransformer(func=os.system))])
    sio.dump(evil, tmp_path / "tfidf" / "model.skops")
    with pytest.raises(BaselineError, match="untrusted"):
        load_tfidf(tmp_path / "tfidf")


def test_corrupt_or_missing_files_are_clear_errors(tmp_path) -> None:
    with pytest.raises(BaselineError):
        load_tfidf(tmp_path)
    (tmp_path / "labels.json").write_text('{"labels": ["a", "b"]}')
    (tmp_path / "model.skops").write_bytes(b"not a zip file")
    with pytest.raises(BaselineError):
        load_tfidf(tmp_path)


def test_one_class_is_a_clear_error() -> None:
    with pytest.raises(BaselineError, match="two different labels"):
        train_tfidf(["a", "b"], ["x", "x"])


def test_missing_texts_do_not_crash(splits) -> None:
    train, _ = splits
    model = train_tfidf(list(train.text), list(train.label))
    assert len(model.predict([None, float("nan"), "great"])) == 3
