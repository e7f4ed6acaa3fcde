"""Why the model said what it said: leave-one-word-out occlusion, the same for every model family.

Each word's weight is how much the predicted class's probability drops when that word is removed
(all variants scored in one batched call); the HTML rendering escapes every word.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.text.serving import TextClassifier

MAX_UNITS = 64  # longer texts are occluded in runs of consecutive words, so one explanation stays one batch
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Explanation:
    words: list[str]
    weights: list[float]  # > 0: pushed towards `label`; < 0: pushed away from it
    label: str
    confidence: float
    grouped: int  # words per occluded unit (1 = every word on its own)


def split_words(text: str) -> list[str]:
    return _WORD.findall(text)


def explain(classifier: TextClassifier, text: str, max_units: int = MAX_UNITS) -> Explanation:
    """Occlusion weights of each word of `text` for the class the model predicts."""
    words = split_words(text)
    if not words:
        return Explanation([], [], "", 0.0, 1)
    group = -(-len(words) // max_units)  # ceil: words per unit
    units = [(start, min(start + group, len(words))) for start in range(0, len(words), group)]
    variants = [" ".join(words)] + [" ".join(words[:a] + words[b:]) for a, b in units]
    proba = classifier.predict_proba(variants)  # one batched call: original + one variant per unit
    best = int(proba[0].argmax())
    drops = proba[0, best] - proba[1:, best]  # units, how much removing each unit lowers the prediction
    weights = np.repeat(drops, [b - a for a, b in units])
    return Explanation(words=words, weights=[float(w) for w in weights], label=classifier.labels[best],
                       confidence=float(proba[0, best]), grouped=group)


def top_words(explanation: Explanation, n: int = 5) -> list[tuple[str, float]]:
    """The words that pushed hardest towards the prediction (positive weights only), strongest first."""
    pairs = sorted(zip(explanation.words, explanation.weights, strict=True), key=lambda p: -p[1])
    return [(w, s) for w, s in pairs if s > 0][:n]


def render_explanation_html(words: Sequence[str], weights: Sequence[float]) -> str:
    """Words as coloured spans (green: towards the prediction, red: against), each word HTML-escaped."""
    if len(words) != len(weights):
        raise ValueError("words and weights must have the same length")
    scale = max((abs(w) for w in weights), default=0.0) or 1.0
    spans = []
    for word, weight in zip(words, weights, strict=True):
        alpha = min(1.0, abs(weight) / scale) * 0.75
        rgb = "22,163,74" if weight >= 0 else "220,38,38"
        spans.append(f'<span title="{weight:+.3f}" style="background: rgba({rgb},{alpha:.2f}); '
                     f'border-radius: 4px; padding: 1px 3px; margin: 0 1px;">{html.escape(word, quote=True)}</span>')
    return f'<div style="line-height: 2.1; font-size: 1.05rem;">{" ".join(spans)}</div>'
