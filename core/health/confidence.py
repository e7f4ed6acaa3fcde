"""How far an audit's label-error flags can be trusted on real data, per audit mode, and the one set of flags that
the Data health tab pre-fills and `protolab datasets version --relabel-suggested` relabels.

The precision of a flag (the share of flagged rows that are really mislabelled) grows with its score, and differs
between the ways an audit gets its probabilities (its *mode*: TF-IDF + MiniLM, TF-IDF alone, a run's held-out
predictions). It was measured on real crowd labels, not seeded flips: 200 likely label errors of the whole tweets
corpus drawn at random per mode, each text judged by hand blind to its label and the suggestion (BENCHMARKS.md,
"Precision on real labels"; the default mode's judgments in bench/judgments/). Only the flags whose score band was
measured at PREFILL_PRECISION or better are pre-filled by default; the user can move the cut and sees the measured
precision of what they pick.
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


SYNTHETIC_PRECISION = 0.698  # the default audit on tweets with 5 % of labels flipped at random (BENCHMARKS.md)
PREFILL_PRECISION = 0.7  # pre-fill by default only the flags whose band was right at least this often
QUICK_PASS_CUT = 0.98  # the TF-IDF pass's measured cut (34 of 47 mislabelled from 0.98 up)


def default_min_score(bands: Sequence[Band] | None = None, wanted: float = PREFILL_PRECISION) -> float:
    """The lowest score from which every band up was measured at `wanted` precision or better (1.0: none was).
    Without `bands`: the default audit mode's cut."""
    if bands is None:
        return DEFAULT_MODE.cut
    cut = 1.0
    for band in bands:  # highest first
        if band.precision < wanted:
            break
        cut = band.low
    return cut


@dataclass(frozen=True)
class Calibration:
    """One audit mode: which audits it covers, and how often its flags were right on real labels."""

    name: str  # "embeddings": what the tab and the summary call it
    label: str  # "TF-IDF + MiniLM (the default)"
    source: str  # "cv" | "run": the audit source it covers (core.health.audit.parse_source)
    embeddings: bool | None  # the AuditConfig.embeddings it covers (None: either)
    bands: tuple[Band, ...]  # measured on real labels, highest band first (empty: not measured)
    synthetic: float | None  # precision of all likely flags on seeded random flips (5 % of tweets)
    measured: str  # where the figures come from, as the tab says it
    fixed_cut: float | None = None  # the pre-fill cut where `bands` cannot justify one

    @property
    def cut(self) -> float:
        """The lowest score pre-filled by default."""
        return self.fixed_cut if self.fixed_cut is not None else default_min_score(self.bands)

    @property
    def precision(self) -> tuple[float, int] | None:
        """(precision, rows judged) of all its measured likely flags."""
        return measured_precision(0.0, self.bands)

    def covers(self, source: str, embeddings: bool) -> bool:
        kind = "cv" if str(source).strip().lower() == "cv" else "run"
        return kind == self.source and self.embeddings in (None, bool(embeddings))


MODES: tuple[Calibration, ...] = (
    Calibration(
        "embeddings", "cross-validated TF-IDF + MiniLM (the default)", "cv", True,
        # 200 of its 673 likely flags on all 38,158 tweets: bench/judgments/tweets_audit_embeddings.csv
        (Band(0.98, 54, 43, 31), Band(0.97, 48, 35, 24), Band(0.96, 59, 40, 31), Band(0.95, 39, 20, 14)),
        SYNTHETIC_PRECISION, "200 of its 673 likely flags on the real tweets, judged by hand "
        "(BENCHMARKS.md, bench/judgments/tweets_audit_embeddings.csv)"),
    Calibration(
        "tfidf", "cross-validated TF-IDF alone (the quick pass)", "cv", False,
        (Band(0.98, 47, 34, 25), Band(0.97, 34, 20, 14), Band(0.96, 62, 33, 24), Band(0.95, 57, 35, 29)),
        0.612, "200 of its 648 likely flags on the real tweets, judged by hand (BENCHMARKS.md)"),
    # Not measured on real labels: a run's probabilities are a fine-tuned model's, at least as sure as the quick
    # pass's TF-IDF, so its measured cut is kept rather than pre-filling more on no evidence.
    Calibration(
        "run", "a completed run's held-out predictions", "run", None, (), None,
        "not measured on real labels for a run's predictions: the quick pass's cut is kept",
        fixed_cut=QUICK_PASS_CUT),
)
DEFAULT_MODE = MODES[0]


def calibration_of(summary: Mapping[str, Any] | None) -> Calibration:
    """The mode of an audit from its stored summary or config (source, embeddings); old audits: the default."""
    summary = summary or {}
    source, embeddings = summary.get("source", "cv"), summary.get("embeddings", True)
    return next((m for m in MODES if m.covers(source, embeddings)), DEFAULT_MODE)


REAL_BANDS: tuple[Band, ...] = DEFAULT_MODE.bands  # the default audit's bands


def band_of(score: float, bands: Sequence[Band] = REAL_BANDS) -> Band | None:
    return next((b for b in bands if score >= b.low), None)


def flag_confidence(score: float, bands: Sequence[Band] = REAL_BANDS) -> float | None:
    """The measured precision of flags scored like this one: how likely its label is really wrong."""
    band = band_of(score, bands)
    return band.precision if band is not None else None


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
