"""Why a multi-label model gave (or did not give) a tag: each word's effect on that tag's log-odds, by
leave-one-word-out occlusion, every variant scored in one batched call.

Each tag is its own yes/no question (a sigmoid), so a word is measured against one tag at a time: how far the
tag's log-odds fall when the word is left out. Log-odds, not probabilities, so a tag given at 100 % is still
explained. The result is a core.text.explain.Explanation per tag (towards the tag, or towards "not <tag>"), drawn
by the same renderer as the single-label demo.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.multilabel.serving import Tagger
from core.text.explain import MAX_UNITS, MIN_STRENGTH, Explanation, split_words

EPS = 1e-7  # probabilities are clipped here before the logit: a saturated sigmoid keeps a finite log-odds


def against(tag: str) -> str:
    """The name an explanation gives the direction away from `tag` (its colour key)."""
    return f"not {tag}"


def explain_tags(tagger: Tagger, text: str, tags: Sequence[str] | None = None,
                 max_units: int = MAX_UNITS) -> dict[str, Explanation]:
    """For each of `tags` (default: every tag of the model), which words push `text` towards it and which away."""
    words = split_words(text)
    tags = list(tags if tags is not None else tagger.labels)
    if not words:
        return {t: Explanation([], [], t, 0.0, 1, [], [], 0) for t in tags}
    group = -(-len(words) // max_units)  # ceil: words per occluded unit
    units = [(start, min(start + group, len(words))) for start in range(0, len(words), group)]
    variants = [" ".join(words)] + [" ".join(words[:a] + words[b:]) for a, b in units]
    proba, _ = tagger.score(variants)
    p = np.clip(np.asarray(proba, dtype=np.float64), EPS, 1 - EPS)
    odds = np.log(p) - np.log1p(-p)
    drops = odds[0] - odds[1:]  # units, tags: how much leaving each unit out lowers each tag's log-odds
    sizes = [b - a for a, b in units]
    out = {}
    for tag in tags:
        j = tagger.labels.index(tag)
        drop = np.repeat(drops[:, j], sizes)
        towards = [tag if d >= MIN_STRENGTH else against(tag) if d <= -MIN_STRENGTH else None for d in drop]
        out[tag] = Explanation(words=words, weights=[float(d) for d in drop], label=tag,
                               confidence=float(proba[0][j]), grouped=group, towards=towards,
                               strengths=[float(abs(d)) for d in drop], read=len(words))
    return out
