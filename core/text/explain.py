"""Why the model said what it said, in log-odds, so that a 100 %-confident verdict is still explained.

A TF-IDF model is linear, so it is explained exactly: each word's and word pair's contribution is its
coefficient × its TF-IDF value (their sum plus the intercept is the model's score). Every other model by
leave-one-word-out occlusion on log-odds: the class whose log-odds fall the most when a word is left out is
the class the word pushed towards, and that fall is its strength (all variants scored in one batched call).
Probabilities would not do: at 100 % leaving a word out changes nothing visible, and occluding one word of a
TF-IDF text also removes the word pairs around it ("bad" in "not bad" looked positive). Only the words the
model actually reads are occluded: a token model reads the beginning of a long text, so occluding the rest
would measure nothing. The HTML rendering escapes every word.
"""

from __future__ import annotations

import contextlib
import html
import math
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from core.text.serving import TextClassifier

MAX_UNITS = 64  # longer texts are occluded in runs of consecutive words, so one explanation stays one batch
MAX_INLINE_WORDS = 150  # up to this many words the whole text is shown coloured; beyond, only the strongest
STRONGEST = 20  # how many words (or runs of words) a long text shows
PHRASES = 6  # how many word pairs (TF-IDF bigrams) are shown under the words
MIN_STRENGTH = 0.02  # log-odds; below this (half a point of probability at 50 %) is noise: no colour
SCALE_FLOOR = 0.5  # log-odds; weak effects stay pale instead of being stretched to full colour
NEUTRAL = "#94a3b8"
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Explanation:
    words: list[str]
    weights: list[float]  # log-odds; > 0: pushed towards `label`; < 0: pushed away from it
    label: str
    confidence: float
    grouped: int  # words per occluded unit (1 = every word on its own)
    towards: list[str | None]  # per word: the class it pushes towards (None: no measurable effect, or not read)
    strengths: list[float]  # per word: by how much (log-odds) it raises that class against the others
    read: int  # how many of the words the model reads (the rest was cut off and explains nothing)
    method: str = "occlusion"  # or "contributions": a linear model's exact terms
    phrases: list[tuple[str, str, float]] = field(default_factory=list)  # word pairs: (text, towards, strength)


def split_words(text: str) -> list[str]:
    return _WORD.findall(text)


def explain(classifier: TextClassifier, text: str, max_units: int = MAX_UNITS) -> Explanation:
    """Which class each word of `text` pushes towards, and how hard (log-odds)."""
    words = split_words(text)
    if not words:
        return Explanation([], [], "", 0.0, 1, [], [], 0)
    linear = classifier.term_contributions(text)
    if linear is not None:
        return _explain_linear(classifier, text, words, *linear)
    return _explain_by_occlusion(classifier, words, max_units)


def _explain_by_occlusion(classifier: TextClassifier, words: list[str], max_units: int) -> Explanation:
    read = words_read(classifier, words)
    group = -(-read // max_units)  # ceil: words per unit
    units = [(start, min(start + group, read)) for start in range(0, read, group)]
    # Beyond the read window plus one unit nothing can slide into view when a unit is left out.
    tail = words[:read + group]
    variants = [" ".join(words)] + [" ".join(tail[:a] + tail[b:]) for a, b in units]
    logp = classifier.log_proba(variants)  # one batched call: original + one variant per unit
    best = int(logp[0].argmax())
    odds = log_odds(logp)
    drops = odds[0] - odds[1:]  # units, classes: how much leaving each unit out lowers each class's log-odds
    pushed = drops.argmax(axis=1)
    strength = drops.max(axis=1)
    sizes = [b - a for a, b in units]
    unread = len(words) - read
    towards = [classifier.labels[c] if s >= MIN_STRENGTH else None for c, s in zip(pushed, strength, strict=True)]
    return Explanation(
        words=words, weights=[float(w) for w in np.repeat(drops[:, best], sizes)] + [0.0] * unread,
        label=classifier.labels[best], confidence=float(np.exp(logp[0, best])), grouped=group,
        towards=[t for t, n in zip(towards, sizes, strict=True) for _ in range(n)] + [None] * unread,
        strengths=[float(x) for x in np.repeat(np.maximum(strength, 0.0), sizes)] + [0.0] * unread, read=read)


def log_odds(logp: np.ndarray) -> np.ndarray:
    """Each class's log-odds against all the others, from log-probabilities (n, classes), without ever
    forming a probability that could round to 1."""
    out = np.empty_like(logp)
    for c in range(logp.shape[1]):
        others = np.delete(logp, c, axis=1)
        top = others.max(axis=1)
        out[:, c] = logp[:, c] - (top + np.log(np.exp(others - top[:, None]).sum(axis=1)))
    return out


def _explain_linear(classifier: TextClassifier, text: str, words: list[str], terms: Mapping[str, np.ndarray],
                    word_terms: Callable[[str], list[str]]) -> Explanation:
    """A linear model's own terms: a word gets its unigrams' contributions (shared among the word's
    occurrences), word pairs are listed beside it. A contribution vector adds to every class's logit."""
    proba = classifier.predict_proba([text])[0]
    best = int(proba.argmax())
    per_word = [word_terms(w) for w in words]
    occurrences = Counter(t for ts in per_word for t in ts)
    zero = np.zeros(len(classifier.labels))
    vectors = [sum((terms.get(t, zero) / occurrences[t] for t in ts), zero) for ts in per_word]
    directions = [_direction(v, classifier.labels) for v in vectors]
    phrases = [(term, *_direction(v, classifier.labels)) for term, v in terms.items() if " " in term]
    return Explanation(
        words=words, weights=[float(v[best] - np.delete(v, best).max()) for v in vectors],
        label=classifier.labels[best], confidence=float(proba[best]), grouped=1,
        towards=[t for t, _ in directions], strengths=[s for _, s in directions], read=len(words),
        method="contributions",
        phrases=sorted(((p, t, s) for p, t, s in phrases if t is not None), key=lambda p: -p[2])[:PHRASES])


def _direction(vector: np.ndarray, labels: Sequence[str]) -> tuple[str | None, float]:
    """The class a logit contribution favours most, and by how much over the class it favours least."""
    spread = float(vector.max() - vector.min())
    return (labels[int(vector.argmax())] if spread >= MIN_STRENGTH else None), spread


def words_read(classifier: TextClassifier, words: Sequence[str]) -> int:
    """How many leading `words` fit in the model's window (all of them for a bag-of-words model)."""
    tokenizer = getattr(classifier, "tokenizer", None)
    if tokenizer is None:
        return len(words)
    # Subword tokenizers split on whitespace first, so a text's tokens are its words' tokens in order.
    budget = classifier.max_length - tokenizer.num_special_tokens_to_add()
    lock = getattr(classifier, "_tokenize_lock", None)  # a fast tokenizer is not safe across sessions
    with lock if lock is not None else contextlib.nullcontext():
        encoded = tokenizer(list(words[:classifier.max_length]), add_special_tokens=False)["input_ids"]
    lengths = [len(ids) for ids in encoded]
    read = int(np.searchsorted(np.cumsum(lengths), budget, side="right"))
    return max(1, min(read, len(words)))


def top_words(explanation: Explanation, n: int = 5) -> list[tuple[str, float]]:
    """The words that pushed hardest towards the prediction (positive weights only), strongest first."""
    pairs = sorted(zip(explanation.words, explanation.weights, strict=True), key=lambda p: -p[1])
    return [(w, s) for w, s in pairs if s > 0][:n]


def strongest(explanation: Explanation, n: int = STRONGEST) -> list[tuple[str, str, float]]:
    """The n words (runs of words when occluded in groups) with the largest effect, strongest first:
    (text, class it pushes towards, strength)."""
    e, found = explanation, []
    for start in range(0, e.read, e.grouped):
        if e.towards[start] is not None:
            chunk = e.words[start:min(start + e.grouped, e.read)]
            text = " ".join(chunk[:8]) + (" …" if len(chunk) > 8 else "")
            found.append((text, e.towards[start], e.strengths[start]))
    return sorted(found, key=lambda f: -f[2])[:n]


def legend(explanation: Explanation) -> str:
    """The one line under the coloured words: what a colour means, and what a long text leaves out."""
    e = explanation
    if e.method == "contributions":
        line = ("Each word is coloured by the class it pushes towards, in the colours of the bars above; the darker, "
                "the more it adds to that class's score (its weight in the model × how much this text uses it).")
        if e.phrases:
            line += " Word pairs the model also weighs are listed below the text."
    else:
        line = ("Each word is coloured by the class it pushes towards, in the colours of the bars above; the darker, "
                "the more that class's odds fall when the word is left out.")
    if len(e.words) > MAX_INLINE_WORDS:
        line += f" Long text: only the {min(STRONGEST, len(strongest(e)))} strongest of its {len(e.words):,} words."
    if e.read < len(e.words):
        line += f" The model reads only the first {e.read:,} words, so nothing after them can matter."
    return line


def _chip(text: str, colour: str, alpha: float, title: str) -> str:
    r, g, b = (int(colour.lstrip("#")[i:i + 2], 16) for i in (0, 2, 4))
    return (f'<span title="{html.escape(title, quote=True)}" style="background: rgba({r},{g},{b},{alpha:.2f}); '
            f'border-radius: 4px; padding: 1px 3px; margin: 0 1px;">{html.escape(text, quote=True)}</span>')


def render_explanation_html(explanation: Explanation, colours: Mapping[str, str]) -> str:
    """Words as spans coloured by the class each pushes towards (`colours`: label -> "#rrggbb", the bars'
    colours), darker for stronger; a long text shows only its strongest words, a linear model its strongest
    word pairs below. Every word is HTML-escaped."""
    e = explanation
    if not (len(e.words) == len(e.towards) == len(e.strengths)):
        raise ValueError("words, towards and strengths must have the same length")
    scale = max(max(e.strengths, default=0.0), *(s for _, _, s in e.phrases), SCALE_FLOOR)

    def chip(text: str, label: str | None, strength: float) -> str:
        if label is None:
            return _chip(text, NEUTRAL, 0.0, "no measurable effect")
        alpha = 0.15 + 0.6 * min(1.0, strength / scale)
        return _chip(text, colours.get(label, NEUTRAL), alpha, f"towards {label}: odds ×{_odds(strength)} with it")

    if len(e.words) <= MAX_INLINE_WORDS:
        spans = [chip(w, t, s) for w, t, s in zip(e.words, e.towards, e.strengths, strict=True)]
    else:
        spans = [chip(text, label, s) for text, label, s in strongest(e)]
    out = f'<div style="line-height: 2.1; font-size: 1.05rem;">{" ".join(spans)}</div>'
    if e.phrases:
        pairs = " ".join(chip(text, label, s) for text, label, s in e.phrases)
        out += f'<div style="line-height: 2.1; font-size: 0.95rem;">Word pairs: {pairs}</div>'
    return out


def _odds(strength: float) -> str:
    factor = math.exp(min(strength, 50.0))
    return f"{factor:.1f}" if factor < 100 else f"{factor:,.0f}"
