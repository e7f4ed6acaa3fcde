"""How far an audit's label-error flags can be trusted on real data, and the one set of flags that the Data health
tab pre-fills and `protolab datasets version --relabel-suggested` relabels.

The precision of a flag (the share of flagged rows that are really mislabelled) grows with its score. It was
measured on real crowd labels, not seeded flips: 200 of the 648 likely label errors the audit's TF-IDF pass finds
in the whole tweets corpus, drawn at random, each text judged by hand blind to its label and the suggestion
(BENCHMARKS.md, "Data health: precision on real labels"): 61 % were really mislabelled, 72 % of those scored 0.98
or more. Only the flags whose score band was measured at PREFILL_PRECISION or better are
pre-filled by default; the user can move the cut and sees the measured precision of what they pick.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Band:
    """Flags scored at least `low` (up to the next band): how many were judged, and how many were right."""

    low: float
    judged: int
    mislabelled: int  # the given label was wrong
    suggestion_right: int  # ... and the audit's suggestion was the right label

    @property
    def precision(self) -> float:
        return self.mislabelled / self.judged if self.judged else 0.0


# Measured on the tweets corpus (BENCHMARKS.md, "Data health: precision on real labels"), highest band first.
REAL_BANDS: tuple[Band, ...] = (Band(0.98, 47, 34, 25), Band(0.97, 34, 20, 14), Band(0.96, 62, 33, 24),
                                 Band(0.95, 57, 35, 29))
SYNTHETIC_PRECISION = 0.698  # the same audit on tweets with 5 % of labels flipped at random (BENCHMARKS.md)
PREFILL_PRECISION = 0.7  # pre-fill by default only the flags whose band was right at least this often


def band_of(score: float, bands: Sequence[Band] = REAL_BANDS) -> Band | None:
    return next((b for b in bands if score >= b.low), None)


def flag_confidence(score: float, bands: Sequence[Band] = REAL_BANDS) -> float | None:
    """The measured precision of flags scored like this one: how likely its label is really wrong."""
    band = band_of(score, bands)
    return band.precision if band is not None else None


def default_min_score(bands: Sequence[Band] = REAL_BANDS, wanted: float = PREFILL_PRECISION) -> float:
    """The lowest score from which every band up was measured at `wanted` precision or better (1.0: none was)."""
    cut = 1.0
    for band in bands:  # highest first
        if band.precision < wanted:
            break
        cut = band.low
    return cut


def measured_precision(min_score: float, bands: Sequence[Band] = REAL_BANDS) -> tuple[float, int] | None:
    """(precision, rows judged) of all measured flags scored at least `min_score`; None when none was judged."""
    judged = [b for b in bands if b.low >= min_score - 1e-9]
    n = sum(b.judged for b in judged)
    return (sum(b.mislabelled for b in judged) / n, n) if n else None


def measured_suggestion_right(min_score: float, bands: Sequence[Band] = REAL_BANDS) -> float | None:
    """The share of the measured flags scored at least `min_score` whose suggested label was the right one."""
    judged = [b for b in bands if b.low >= min_score - 1e-9]
    n = sum(b.judged for b in judged)
    return sum(b.suggestion_right for b in judged) / n if n else None


def prefilled(label_issues: Iterable[Mapping[str, Any]], min_score: float) -> list[Mapping[str, Any]]:
    """The likely label errors scored at least `min_score`: what pre-fill and --relabel-suggested both change."""
    return [issue for issue in label_issues
            if issue.get("likely", True) and float(issue["score"]) >= min_score - 1e-9]
