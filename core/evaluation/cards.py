"""Model cards for an audience: what a demoed model does and how good it is, in plain words.

Presentation mode shows these instead of run numbers and metric names; the technical line stays one
click away. Pure functions of stored metrics, so the wording is tested without a page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MAX_NAMED_LABELS = 5  # beyond this many classes, the card names a few and counts the rest


@dataclass(frozen=True)
class ModelCard:
    title: str  # "A model trained on product reviews"
    what: str  # one sentence: what it does for you
    how_good: str  # one sentence: how often it is right, on data it never saw
    technical: str  # run, model kind, metric names: for whoever asks


def times_in_ten(rate: float) -> str:
    """A rate as people say it: 0.83 -> "8 times in 10", 0.97 -> "97 times in 100"."""
    rate = min(max(float(rate), 0.0), 1.0)
    if 0.0 < rate < 0.1 or rate >= 0.95:  # "0 in 10" or "10 in 10" would be untrue
        return f"{round(rate * 100)} times in 100"
    return f"{round(rate * 10)} times in 10"


def _people(rate: float) -> str:
    return times_in_ten(rate).replace(" times", "")


def _choices(labels: Sequence[str]) -> str:
    labels = [str(x) for x in labels]
    if len(labels) > MAX_NAMED_LABELS:
        return f"which of {len(labels)} categories it belongs to (such as {', '.join(labels[:3])})"
    return f"whether it is {', '.join(labels[:-1])} or {labels[-1]}" if len(labels) > 1 else f"if it is {labels[0]}"


def likely_range(rate: float, low: float, high: float) -> str:
    """A 95 % interval in the words of `times_in_ten`: "between 7 and 9", or in hundredths when tens hide it."""
    scale = 100 if "in 100" in times_in_ten(rate) else 10
    lo, hi = round(min(max(low, 0.0), 1.0) * scale), round(min(max(high, 0.0), 1.0) * scale)
    if lo == hi and scale == 10:
        return f"between {round(low * 100)} and {round(high * 100)} times in 100"
    return f"between {lo} and {hi}"


def classifier_card(*, labels: Sequence[str], accuracy: float | None, dataset_name: str, technical: str,
                    n_test: int | None = None, items: str = "texts",
                    accuracy_interval: tuple[float, float] | None = None, reads: str = "a text") -> ModelCard:
    """The card of a text classifier: which labels it gives, how often it was right on unseen `items`, and
    (with its 95 % interval) how far that could move on a test of this size."""
    what = f"Reads {reads} and says {_choices(labels)}."
    if accuracy is None:
        how_good = "It has not been scored on held-out examples yet, so treat its answers as a first impression."
    else:
        unseen = f"{n_test:,} {items}" if n_test else items
        spread = (f" — {likely_range(accuracy, *accuracy_interval)} on a test this size —"
                  if accuracy_interval is not None else "")
        how_good = f"It was right {times_in_ten(accuracy)}{spread} on {unseen} it never saw during training."
    return ModelCard(title=f"A model trained on {dataset_name}", what=what, how_good=how_good, technical=technical)


def tagger_card(*, tags: Sequence[str], recall: float | None, precision: float | None, dataset_name: str,
                technical: str, n_test: int | None = None) -> ModelCard:
    """The card of a multi-label model: which tags it may give (several, one or none), how many of the tags a
    person set it found on unseen texts (micro recall), and how many of the tags it gave were right (precision)."""
    tags = [str(t) for t in tags]
    if len(tags) > MAX_NAMED_LABELS:
        named = f"{len(tags)} tags (such as {', '.join(tags[:3])})"
    else:
        named = f"{', '.join(tags[:-1])} and {tags[-1]}" if len(tags) > 1 else tags[0]
    what = f"Reads a text and gives it every tag that applies — several, one or none — from {named}."
    if recall is None or precision is None:
        how_good = "It has not been scored on held-out texts yet, so treat its tags as a first impression."
    else:
        unseen = f"{n_test:,} texts" if n_test else "texts"
        how_good = (f"It finds {_people(recall)} of the tags a person would set, and {_people(precision)} of the "
                    f"tags it sets are right (on {unseen} it never saw during training).")
    return ModelCard(title=f"A tagger trained on {dataset_name}", what=what, how_good=how_good, technical=technical)


def recommender_card(*, hit_rate: float | None, k: int, dataset_name: str, technical: str,
                     n_items: int | None = None) -> ModelCard:
    """The card of a recommender: how often its top-k held something a person really chose next."""
    catalogue = f" from a catalogue of {n_items:,}" if n_items else ""
    what = f"Suggests what someone will like next{catalogue}, from what they and people like them chose before."
    if hit_rate is None:
        how_good = "It has not been tested on held-out choices yet, so treat its picks as a first impression."
    else:
        how_good = (f"For {_people(hit_rate)} people, its top {k} held something they really went on to choose "
                    "(choices it never saw during training).")
    return ModelCard(title=f"Recommendations learned from {dataset_name}", what=what, how_good=how_good,
                     technical=technical)
