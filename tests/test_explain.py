"""Word importance by occlusion: right words for trained models, every family, bounded cost, escaped HTML."""

from __future__ import annotations

import re

import numpy as np
import pytest

from core.charts.sentiment import label_colours
from core.text.explain import (
    MAX_INLINE_WORDS,
    STRONGEST,
    explain,
    legend,
    render_explanation_html,
    split_words,
    strongest,
    top_words,
)
from core.text.serving import TextClassifier, TfidfClassifier, load_classifier
from core.text.tfidf import TfidfConfig, train_tfidf


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


COLOURS = dict(zip(["negative", "positive"], label_colours(["negative", "positive"]), strict=True))


class Keywords(TextClassifier):
    """Each 'good' pushes towards positive, each 'bad' towards negative, 'meh' does nothing."""

    family, labels, max_length = "tfidf", ["negative", "positive"], 512

    def score(self, texts, batch_size=64):
        z = np.array([t.split().count("good") - 1.5 * t.split().count("bad") for t in texts], dtype=float)
        p = 1 / (1 + np.exp(-z))
        return np.column_stack([1 - p, p]), [False] * len(texts)


def test_words_are_coloured_by_the_class_they_push_towards_in_the_bars_colours() -> None:
    # A negative verdict: "good" pushes towards positive and must wear the positive bar's green, not red.
    exp = explain(Keywords(), "bad bad good meh")
    assert exp.label == "negative"
    assert exp.towards == ["negative", "negative", "positive", None]
    out = render_explanation_html(exp, COLOURS)
    spans = re.findall(r'<span [^>]*rgba\((\d+),(\d+),(\d+),([\d.]+)\)[^>]*>([^<]*)</span>', out)
    colour = {word: "#" + "".join(f"{int(c):02x}" for c in rgb) for *rgb, alpha, word in spans}
    assert colour["good"] == COLOURS["positive"] == "#16a34a"
    assert colour["bad"] == COLOURS["negative"] == "#dc2626"
    assert float(spans[3][3]) == 0.0  # "meh" changes nothing: no colour at all
    assert "class it pushes towards" in legend(exp)


def test_html_escapes_every_word() -> None:
    words = ["<script>alert('x')</script>", '"><img src=x onerror=alert(1)>', "fine&dandy"]
    exp = explain(Keywords(), " ".join(words))
    out = render_explanation_html(exp, COLOURS)
    assert "<script>" not in out and "<img" not in out
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in out
    assert "&quot;&gt;&lt;img" in out and "fine&amp;dandy" in out
    assert len(re.findall(r"<span ", out)) == len(exp.words) == 5


def test_script_payload_from_user_text_comes_out_escaped(make_served_run) -> None:
    clf = load_classifier(make_served_run("tfidf"))
    exp = explain(clf, "great <script>document.cookie</script> product")
    out = render_explanation_html(exp, COLOURS)
    assert "<script>" not in out and "&lt;script&gt;document.cookie&lt;/script&gt;" in out


def test_long_text_shows_only_its_strongest_words() -> None:
    words = ["meh"] * 6000 + ["good"] + ["meh"] * 2000 + ["bad"]
    exp = explain(Keywords(), " ".join(words))
    out = render_explanation_html(exp, COLOURS)
    assert len(re.findall(r"<span ", out)) <= STRONGEST < len(words)
    top = strongest(exp)
    assert {label for _, label, _ in top} == {"positive", "negative"}  # the two cue runs, nothing else
    assert "only the" in legend(exp) and f"{len(words):,} words" in legend(exp)
    assert len(exp.words) > MAX_INLINE_WORDS


@pytest.mark.parametrize("family", ["lstm", "transformer"])
def test_a_token_model_is_explained_word_by_word_on_the_words_it_reads(make_served_run, family: str) -> None:
    # A 40,000-character review: the model reads its first ~32 tokens. Occluding the whole text in 64
    # groups gave the read part one group, one weight, one colour; now each read word is its own unit.
    clf = load_classifier(make_served_run(family, max_length=32))
    text = " ".join(["the awful broken product was fine"] * 1200)
    assert len(text) > 40_000
    exp = explain(clf, text)
    assert exp.grouped == 1 and 10 <= exp.read < 32
    assert all(t is None for t in exp.towards[exp.read:])
    assert "reads only the first" in legend(exp)
    assert len(re.findall(r"<span ", render_explanation_html(exp, COLOURS))) <= STRONGEST


def test_empty_text_and_mismatched_lengths() -> None:
    exp = explain(CountingKeyword(), "   ")
    assert exp.words == []
    assert render_explanation_html(exp, COLOURS).startswith("<div")
    with pytest.raises(ValueError):
        render_explanation_html(type(exp)(["a"], [], "", 0.0, 1, [], [], 0), COLOURS)


# Known sentences for a real TF-IDF model: "bad" is a negative word, "not bad" a positive pair.
AIRLINE_NEGATIVE = ["bad service", "bad food and bad seats", "the worst airline ever", "worst delay ever",
                    "bad crew, bad day", "a bad flight", "bad bad bad", "lost my bag, bad", "the seats were bad",
                    "worst food", "bad at everything", "rude and bad", "not good at all", "not worth it at all"]
AIRLINE_POSITIVE = ["great flight", "lovely crew", "not bad, actually fine", "great seats and food",
                    "really great day", "lovely service", "great great", "fine and lovely", "the crew was great",
                    "smooth and lovely flight", "not bad", "good food at last"]


def _airline_tfidf(c: float = 4.0) -> TfidfClassifier:
    model = train_tfidf(AIRLINE_NEGATIVE + AIRLINE_POSITIVE,
                        ["negative"] * len(AIRLINE_NEGATIVE) + ["positive"] * len(AIRLINE_POSITIVE),
                        TfidfConfig(C=c, solver="lbfgs"))
    return TfidfClassifier(model, 512)


def test_tfidf_contributions_add_up_to_the_models_score() -> None:
    clf = _airline_tfidf()
    text = "Not bad at all, the worst crew ever"
    terms = clf.model.term_contributions(text)
    logits = clf.model.intercepts() + sum(terms.values())
    assert logits[1] - logits[0] == pytest.approx(clf.model.pipeline.decision_function([text])[0])
    assert {"not bad", "worst", "bad"} <= set(terms)


def test_tfidf_colours_a_word_by_its_own_weight_and_lists_the_pair_beside_it() -> None:
    # Occluding "bad" also took "not bad" away, so "bad" looked positive under a negative verdict.
    exp = explain(_airline_tfidf(), "Not bad at all...")
    assert exp.label == "negative" and exp.method == "contributions"
    assert dict(zip(exp.words, exp.towards, strict=True))["bad"] == "negative"
    assert ("not bad", "positive") in [(text, label) for text, label, _ in exp.phrases]
    out = render_explanation_html(exp, COLOURS)
    assert "Word pairs:" in out and "not bad" in out and "Word pairs" in legend(exp)


def test_a_100_percent_tfidf_verdict_still_has_coloured_words() -> None:
    clf = _airline_tfidf(c=1e5)
    exp = explain(clf, "worst airline ever")
    assert exp.label == "negative" and f"{exp.confidence:.0%}" == "100%"
    assert dict(zip(exp.words, exp.towards, strict=True))["worst"] == "negative"
    assert max(exp.strengths) > 1.0


def test_a_saturated_token_model_is_explained_in_log_odds(make_served_run) -> None:
    import torch

    clf = load_classifier(make_served_run("lstm"))
    with torch.no_grad():  # the same network, its head scaled up: every verdict rounds to exactly 100 %
        clf.model.classifier.weight.mul_(1000.0)
        clf.model.classifier.bias.mul_(1000.0)
    text = "the product was awful and broken"
    assert clf.predict_proba([text]).max() == 1.0
    exp = explain(clf, text)
    assert exp.label == "negative" and exp.method == "occlusion"
    coloured = [w for w, t in zip(exp.words, exp.towards, strict=True) if t is not None]
    assert coloured and max(exp.strengths) > 1.0
