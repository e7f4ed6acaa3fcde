"""The names of the metrics runs store and pages show, and the K that recommender lists show: defined once.

A classification run stores CLASSIFICATION_METRICS per split. A recommender run stores each ranking metric at its
own K as "<name>@<k>" (and at every K it measured in `by_k`); leaderboards, headlines, cards and the demo show them
at DISPLAY_K. A leaf module (no project imports), so every package can look the names up.
"""

from __future__ import annotations

DISPLAY_K = 10  # also a recommender's default cut-off, so a default run is shown at the K it was trained for
# Per K, except coverage: the share of the catalogue recommended to anyone, one figure for the run.
RANKING_METRICS = ("ndcg", "precision", "recall", "map", "hit_rate", "coverage")
CLASSIFICATION_METRICS = ("accuracy", "macro_precision", "macro_recall", "macro_f1",
                          "weighted_precision", "weighted_recall", "weighted_f1")
# What a comparison of classification runs shows (bars, report, leaderboard), in this order.
COMPARED_CLASSIFICATION_METRICS = ("accuracy", "macro_precision", "macro_recall", "macro_f1", "weighted_f1")
CLASSIFICATION_HEADLINE = "macro_f1"


def at_k(name: str, k: int = DISPLAY_K) -> str:
    """The stored key of a ranking metric at K ("ndcg@10"); coverage is one figure, not one per K."""
    return name if name == "coverage" else f"{name}@{k}"


def ranking_keys(k: int = DISPLAY_K) -> list[str]:
    """The ranking metrics' keys at K, in RANKING_METRICS' order (what a comparison of recommenders shows)."""
    return [at_k(name, k) for name in RANKING_METRICS]


def compared_keys(ranking: bool) -> list[str]:
    """The metrics a comparison of runs shows: the ranking ones at DISPLAY_K, or the classification ones."""
    return ranking_keys() if ranking else list(COMPARED_CLASSIFICATION_METRICS)
