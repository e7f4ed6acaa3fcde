"""Planning a run to fit a time budget (`--minutes N`, issue 28 item 6): when the estimate of the whole run is over
the budget, the training sample (stratified), max length and epochs that fit, chosen from the estimate's own parts,
and what the cut is expected to cost.

Pure arithmetic on an Estimate (its parts, the split sizes and the probe's token lengths), so the Train form and
`protolab train` show the same plan and a test can plan on a made-up estimate. Only the knobs a kind declares as
options are turned (core.runs.kinds): a kind without them gets no plan. core.training reads the dataset's label
curve and calls this.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.runs.timing import format_eta

ROWS, LENGTH, EPOCHS = "train_rows", "max_length", "epochs"
KNOBS = (ROWS, LENGTH, EPOCHS)
# The max lengths a plan may pick, longest first: the usual widths of text models.
LENGTHS = (512, 384, 256, 192, 128, 96, 64, 48, 32, 24, 16)
KEEP_WHOLE = 0.95  # a max length that leaves this share of texts untruncated costs little accuracy
MIN_ROWS_PER_CLASS = 8  # the label curve's smallest size: below it a class is barely learnt
# Parts of an Estimate that grow with the data (the rest, start-up, loading and saving, do not).
SCALED_PARTS = ("tokenising", "training", "evaluation")


@dataclass(frozen=True)
class BudgetPlan:
    """What a run over its budget trains instead: `changes` maps each option turned to (asked, planned)."""

    minutes: float
    estimate_s: float  # the run as asked
    planned_s: float  # the run as planned
    changes: dict[str, tuple[Any, Any]]
    expected_loss: str  # one sentence: what the cut is expected to cost
    fits: bool = True  # False: even the smallest plan is over the budget (training then stops at it)
    rows_of: dict[str, int] = field(default_factory=dict)  # the training split's rows, asked and planned

    def apply(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return {**config, **{name: planned for name, (_, planned) in self.changes.items()}}

    @property
    def message(self) -> str:
        chose = ", ".join(_change_text(name, asked, planned) for name, (asked, planned) in self.changes.items())
        head = (f"to fit the {self.minutes:g}-minute budget (the run as asked: about {format_eta(self.estimate_s)}) "
                f"Protolab chose {chose}: about {format_eta(self.planned_s)}")
        if not self.fits:
            head += "; still over the budget, so training stops when it runs out"
        return f"{head}. {self.expected_loss}"

    def event(self) -> dict[str, Any]:
        return {"event": "budget_plan", "minutes": self.minutes, "estimate_s": round(self.estimate_s, 1),
                "planned_s": round(self.planned_s, 1), "fits": self.fits,
                "changes": {k: list(v) for k, v in self.changes.items()}, "expected_loss": self.expected_loss,
                "message": self.message}


def _change_text(name: str, asked: Any, planned: Any) -> str:
    if name == ROWS:
        return f"a stratified sample of {planned:,} of the {asked:,} training rows"
    if name == LENGTH:
        return f"max length {planned} (was {asked})"
    return f"{planned} epoch{'s' if planned != 1 else ''} (was {asked})"


def predicted_seconds(estimate: Any, asked: Mapping[str, Any], rows: int, length: int, epochs: int) -> float:
    """The estimate's total with `rows` training rows, `length` tokens and `epochs`, scaling each part by what it
    grows with: tokenising by rows, training by rows × epochs × tokens, evaluation by the validation passes
    (one per epoch, then validation and test once more) × tokens. Batches pad to their own longest text
    (length-bucketed), so tokens are the mean of min(text length, max length) over the probe's texts."""
    n_train, n_val, n_test = (int(estimate.sizes.get(k, 0)) for k in ("train", "validation", "test"))
    parts = estimate.parts
    e0, l0 = int(asked.get(EPOCHS) or 1), int(asked.get(LENGTH) or length)
    tokens = _token_share(estimate.token_lengths, length, l0)
    fixed = sum(v for k, v in parts.items() if k not in SCALED_PARTS)
    tokenising = parts.get("tokenising", 0.0) * (rows + n_val + n_test) / max(1, n_train + n_val + n_test)
    training = parts.get("training", 0.0) * rows / max(1, n_train) * epochs / e0 * tokens
    evaluation = parts.get("evaluation", 0.0) * (n_val * (epochs + 1) + n_test) / max(1, n_val * (e0 + 1) + n_test)
    return fixed + tokenising + training + evaluation * tokens


def _token_share(lengths: Sequence[int], length: int, asked: int) -> float:
    if not len(lengths):
        return length / asked
    lengths = np.asarray(lengths)
    return float(np.minimum(lengths, length).mean() / max(1e-9, np.minimum(lengths, asked).mean()))


def plan_budget(estimate: Any, asked: Mapping[str, Any], knobs: Sequence[str], class_counts: Mapping[str, int], *,
                curve: Mapping[int, float] | None = None, curve_model: str = "") -> BudgetPlan | None:
    """The plan for a run with config `asked` whose `estimate` is over its `minutes`; None when it fits (or has no
    budget, or no knob to turn). In order, as each costs more accuracy than the one before: a max length that
    still leaves 95 % of the texts whole, then fewer epochs (down to 1), then a stratified sample of the training
    rows (at least 8 a class), the largest that fits. `curve`: macro-F1 by labels a class of the dataset's label
    curve for `curve_model`, to say what the sample costs."""
    minutes = asked.get("minutes")
    knobs = [k for k in KNOBS if k in knobs]
    if not minutes or not knobs or estimate.seconds <= 60.0 * minutes:
        return None
    budget = 60.0 * float(minutes)
    n_train = int(estimate.sizes.get("train", 0))
    length, epochs, rows = int(asked.get(LENGTH) or 0), int(asked.get(EPOCHS) or 1), n_train

    def seconds(r: int | None = None) -> float:  # the plan so far, with `r` rows instead of `rows`
        return predicted_seconds(estimate, asked, rows if r is None else r, length, epochs)

    if LENGTH in knobs and length and len(estimate.token_lengths):
        whole = int(np.quantile(estimate.token_lengths, KEEP_WHOLE))
        length = min([length, *(w for w in LENGTHS if whole <= w < length)])
    if EPOCHS in knobs:
        while epochs > 1 and seconds() > budget:
            epochs -= 1
    floor = min(n_train, MIN_ROWS_PER_CLASS * max(1, len(class_counts)))
    if ROWS in knobs and seconds() > budget:
        rows = _largest_rows(seconds, budget, floor, n_train)
    planned = {ROWS: rows, LENGTH: length, EPOCHS: epochs}
    before = {ROWS: n_train, LENGTH: int(asked.get(LENGTH) or 0), EPOCHS: int(asked.get(EPOCHS) or 1)}
    changes = {k: (before[k], planned[k]) for k in knobs if planned[k] != before[k]}
    if not changes:
        return None
    return BudgetPlan(minutes=float(minutes), estimate_s=float(estimate.seconds), planned_s=seconds(),
                      changes=changes, fits=seconds() <= budget, rows_of={"asked": n_train, "planned": rows},
                      expected_loss=expected_loss(rows, n_train, len(class_counts), curve, curve_model,
                                                  _truncated(estimate.token_lengths, length, before[LENGTH])))


def _largest_rows(seconds: Any, budget: float, floor: int, n_train: int) -> int:
    """The most rows whose predicted time is within `budget` (time grows with rows: a bisection), at least `floor`."""
    low, high = floor, n_train
    if seconds(low) > budget:
        return low
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if seconds(middle) <= budget else (low, middle)
    return low


def _truncated(lengths: Sequence[int], length: int, asked: int) -> float:
    """The share of the probe's texts cut at `length` that were whole at `asked`."""
    if not len(lengths) or length >= asked:
        return 0.0
    lengths = np.asarray(lengths)
    return float(((lengths > length) & (lengths <= asked)).mean())


def expected_loss(rows: int, n_train: int, n_classes: int, curve: Mapping[int, float] | None, curve_model: str,
                  truncated: float = 0.0) -> str:
    """One sentence on what training on `rows` of `n_train` rows costs: from the label curve's last doubling
    (macro-F1 gained from its second-largest to its largest size, per doubling of labels a class) times the
    doublings the sample gives up. Label curves flatten, so that is an upper bound; no curve: unknown."""
    cut = f" Max length cuts {truncated:.0%} of the texts short." if truncated >= 0.005 else ""
    if rows >= n_train:
        return "The whole training split is kept; fewer epochs or shorter texts may cost some macro-F1." + cut
    per_class, full = rows / max(1, n_classes), n_train / max(1, n_classes)
    sizes = sorted(curve or {})
    if len(sizes) < 2:
        return (f"Expected loss unknown: no label curve for this dataset (a curve shows what {per_class:,.0f} "
                f"instead of {full:,.0f} examples a class costs).") + cut
    low, high = sizes[-2], sizes[-1]
    per_doubling = max(0.0, (curve[high] - curve[low]) / math.log2(high / low))
    loss = per_doubling * math.log2(full / per_class)
    name = f"{curve_model}'s " if curve_model else ""
    return (f"Expected loss: at most about {loss:.2f} macro-F1 ({name}label curve gains {per_doubling:+.3f} per "
            f"doubling of labels a class at {low}→{high}; {per_class:,.0f} instead of {full:,.0f} a class is "
            f"{math.log2(full / per_class):.1f} doublings fewer, and curves flatten, so likely less).") + cut
