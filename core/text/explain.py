"""Why the model said what it said: leave-one-word-out occlusion, the same for every model family.

Leaving a word out moves every class's probability; the class that loses the most is the one the word
pushed towards, and that loss is its strength (all variants scored in one batched call). Only the words
the model actually reads are occluded: a token model reads the beginning of a long text, so occluding
the rest would measure nothing. The HTML rendering escapes every word.
"""

from __future__ import annotations

import contextlib
import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from core.text.serving import TextClassifier

MAX_UNITS = 64  # longer texts are occluded in runs of consecutive words, so one explanation stays one batch
MAX_INLINE_WORDS = 150  # up to this many words the whole text is shown coloured; beyond, only the strongest
STRONGEST = 20  # how many words (or runs of words) a long text shows
MIN_STRENGTH = 0.005  # a probability change below half a point is noise (batch padding, float rounding): no colour
NEUTRAL = "#94a3b8"
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Explanation:
    words: list[str]
    weights: list[float]  # > 0: pushed towards `label`; < 0: pushed away from it
    label: str
    confidence: float
    grouped: int  # words per occluded unit (1 = every word on its own)
    towards: list[str | None]  # per word: the class it pushes towards (None: no measurable effect, or not read)
    strengths: list[float]  # per word: how much that class's probability drops when the word is left out
    read: int  # how many of the words the model reads (the rest was cut off and explains nothing)


def split_words(text: str) -> list[str]:
    return _WORD.findall(text)


def explain(classifier: TextClassifier, text: str, max_units: int = MAX_UNITS) -> Explanation:
    """Occlusion of each word of `text` that the model reads: which class it pushes towards, and how hard."""
    words = split_words(text)
    if not words:
        return Explanation([], [], "", 0.0, 1, [], [], 0)
    read = words_read(classifier, words)
    group = -(-read // max_units)  # ceil: words per unit
    units = [(start, min(start + group, read)) for start in range(0, read, group)]
    # Beyond the read window plus one unit nothing can slide into view when a unit is left out.
    tail = words[:read + group]
    variants = [" ".join(words)] + [" ".join(tail[:a] + tail[b:]) for a, b in units]
    proba = classifier.predict_proba(variants)  # one batched call: original + one variant per unit
    best = int(proba[0].argmax())
    drops = proba[0] - proba[1:]  # units, classes: how much leaving each unit out lowers each class
    pushed = drops.argmax(axis=1)
    strength = drops.max(axis=1)
    sizes = [b - a for a, b in units]
    unread = len(words) - read
    towards = [classifier.labels[c] if s >= MIN_STRENGTH else None for c, s in zip(pushed, strength, strict=True)]
    return Explanation(
        words=words, weights=[float(w) for w in np.repeat(drops[:, best], sizes)] + [0.0] * unread,
        label=classifier.labels[best], confidence=float(proba[0, best]), grouped=group,
        towards=[t for t, n in zip(towards, sizes, strict=True) for _ in range(n)] + [None] * unread,
        strengths=[float(x) for x in np.repeat(np.maximum(strength, 0.0), sizes)] + [0.0] * unread, read=read)


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
    line = ("Each word is coloured by the class it pushes towards, in the colours of the bars above; the darker, "
            "the more that class's probability drops when the word is left out.")
    e = explanation
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
    colours), darker for stronger; a long text shows only its strongest words. Every word is HTML-escaped."""
    e = explanation
    if not (len(e.words) == len(e.towards) == len(e.strengths)):
        raise ValueError("words, towards and strengths must have the same length")
    # A floor on the scale keeps weak effects pale instead of stretching noise to full colour.
    scale = max(max(e.strengths, default=0.0), 0.1)

    def chip(text: str, label: str | None, strength: float) -> str:
        if label is None:
            return _chip(text, NEUTRAL, 0.0, "no measurable effect")
        alpha = 0.15 + 0.6 * min(1.0, strength / scale)
        return _chip(text, colours.get(label, NEUTRAL), alpha, f"towards {label} (-{strength:.1%} without it)")

    if len(e.words) <= MAX_INLINE_WORDS:
        spans = [chip(w, t, s) for w, t, s in zip(e.words, e.towards, e.strengths, strict=True)]
    else:
        spans = [chip(text, label, s) for text, label, s in strongest(e)]
    return f'<div style="line-height: 2.1; font-size: 1.05rem;">{" ".join(spans)}</div>'
