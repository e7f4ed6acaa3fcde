"""Word importance by occlusion: right words for trained models, every family, bounded cost, escaped HTML."""

from __future__ import annotations

import re

import numpy as np
import pytest

from core.text.explain import explain, render_explanation_html, split_words, top_words
from core.text.serving import TextClassifier, load_classifier


class CountingKeyword(TextClassifier):
    """A transparent model: P(positive) rises with each 'good'; records how it was called."""

    family, labels, max_length = "tfidf", ["negative", "positive"], 512

    def __init__(self) -> None:
        self.calls: list[int] = []

    def score(self, texts, batch_size=64):
        self.calls.append(len(texts))
        goods = np.array([t.split().count("good") for t in texts], dtype=float)
        p = 1 / (1 + np.exp(-(goods * 2 - 1)))
        return np.column_stack([1 - p, p]), [False] * len(texts)


def test_occlusion_finds_the_word_and_uses_one_batch() -> None:
    model = CountingKeyword()
    exp = explain(model, "the food was good tonight")
    assert exp.label == "positive" and exp.grouped == 1
    assert model.calls == [6]  # original + one variant per word, in a single call
    weights = dict(zip(exp.words, exp.weights, strict=True))
    assert weights["good"] > 0.4 and all(abs(weights[w]) < 1e-9 for w in ("the", "food", "was", "tonight"))
    assert top_words(exp) == [("good", weights["good"])]


def test_long_texts_are_occluded_in_groups() -> None:
    model = CountingKeyword()
    exp = explain(model, " ".join(["filler"] * 300 + ["good"]), max_units=50)
    assert len(model.calls) == 1 and model.calls[0] == 1 + 43 and exp.grouped == 7
    assert len(exp.weights) == 301 and exp.weights[-1] > 0


@pytest.mark.parametrize("family", ["transformer", "lstm", "tfidf"])
def test_every_family_is_explained(make_served_run, family: str) -> None:
    clf = load_classifier(make_served_run(family))
    exp = explain(clf, "the product was awful and broken")
    assert exp.words == split_words("the product was awful and broken")
    assert len(exp.weights) == 6 and all(np.isfinite(exp.weights))
    assert exp.label in clf.labels
    if family != "transformer":  # trained on the tiny data: the cue words carry the verdict
        assert exp.label == "negative"
        assert {w for w, _ in top_words(exp, 2)} <= {"awful", "broken"}


def test_html_escapes_every_word() -> None:
    words = ["<script>alert('x')</script>", '"><img src=x onerror=alert(1)>', "fine&dandy"]
    out = render_explanation_html(words, [0.4, -0.2, 0.0])
    assert "<script>" not in out and "<img" not in out
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in out
    assert "&quot;&gt;&lt;img" in out and "fine&amp;dandy" in out
    assert len(re.findall(r"<span ", out)) == 3
    assert "rgba(22,163,74" in out and "rgba(220,38,38" in out  # towards and against


def test_script_payload_from_user_text_comes_out_escaped(make_served_run) -> None:
    clf = load_classifier(make_served_run("tfidf"))
    exp = explain(clf, "great <script>document.cookie</script> product")
    out = render_explanation_html(exp.words, exp.weights)
    assert "<script>" not in out and "&lt;script&gt;document.cookie&lt;/script&gt;" in out


def test_empty_text_and_mismatched_lengths() -> None:
    assert explain(CountingKeyword(), "   ").words == []
    assert render_explanation_html([], []).startswith("<div")
    with pytest.raises(ValueError):
        render_explanation_html(["a"], [])
