"""Which run a demo shows first: the one pinned on purpose, else the best that clears its baselines.

Without a pin the default is the best run by the lower end of its 95 % interval among runs that are not weak,
on the largest test set (a 60-text score never outranks a 3,700-text one by luck); weak runs come last, and in
presentation mode they are left out unless pinned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from core.evaluation.uncertainty import run_intervals
from core.evaluation.weakness import Weakness, run_weakness
from core.runs.registry import headline_of

T = TypeVar("T")
DEMO_ORDER_HELP = "The run pinned for demos first, then the best that clearly beats its baselines; weak runs last."


@dataclass(frozen=True)
class DemoStanding:
    """What the demo order needs to know about one completed run."""

    pinned: bool
    weakness: Weakness
    lower_bound: float | None  # the low end of the headline's 95 % interval (the figure itself without one)
    test_rows: int


def demo_standing(run: Any, s: Any | None = None) -> DemoStanding:
    headline, value = headline_of(run.model_kind, run.task, run.metrics)
    interval = run_intervals(run, "test").get(headline.key)
    lower = interval.ci_low if interval is not None else value
    rows = interval.n if interval is not None else _test_rows(run.metrics or {})
    return DemoStanding(bool(getattr(run, "pinned", False)), run_weakness(run, s), lower, rows)


def _test_rows(metrics: dict[str, Any]) -> int:
    n = ((metrics.get("reports") or {}).get("test") or {}).get("n", metrics.get("n_test"))
    return int(n) if isinstance(n, (int, float)) else 0


def _rank(standing: DemoStanding, largest: int) -> tuple:
    if standing.pinned:
        return (0,)
    if standing.weakness.weak:
        return (3, -(standing.lower_bound or 0.0))
    on_largest = standing.test_rows >= largest
    return (1 if on_largest else 2, -standing.test_rows, -(standing.lower_bound or 0.0))


def order_for_demo(items: Sequence[T], standing_of: dict[Any, DemoStanding], key: Any, *,
                   present: bool = False) -> list[T]:
    """`items` in demo order (`key(item)` finds its standing); in presentation mode without weak unpinned runs."""
    strong = [standing_of[key(i)] for i in items if not standing_of[key(i)].weakness.weak]
    largest = max((st.test_rows for st in strong), default=0)
    ordered = sorted(items, key=lambda i: _rank(standing_of[key(i)], largest))
    if present:
        ordered = [i for i in ordered if standing_of[key(i)].pinned or not standing_of[key(i)].weakness.weak]
    return ordered
