"""Log-scale axes are labelled with whole numbers at 1-2-5 steps, not Plotly's "2 3 … 100 2"."""

from __future__ import annotations

from core.charts import datasets as charts
from core.charts.axes import log_ticks, short_number


def test_long_tail_log_axis_spells_out_its_ticks() -> None:
    fig = charts.long_tail([1] * 50 + [3, 7, 40, 120, 900], "item")
    axis = fig.layout.yaxis
    assert axis.type == "log" and axis.tickmode == "array"
    assert list(axis.ticktext) == ["1", "2", "5", "10", "20", "50", "100", "200", "500"]
    assert list(axis.tickvals) == [1, 2, 5, 10, 20, 50, 100, 200, 500]


def test_many_decades_keep_powers_of_ten_only() -> None:
    ticks, labels = log_ticks([1, 2_000_000])
    assert labels == ["1", "10", "100", "1k", "10k", "100k", "1M"]
    assert ticks == [1, 10, 100, 1000, 10_000, 100_000, 1_000_000]


def test_short_numbers() -> None:
    assert [short_number(v) for v in (0.5, 12, 2000, 1_500_000, 3e9)] == ["0.5", "12", "2k", "1.5M", "3B"]
    assert log_ticks([]) == ([1.0], ["1"])
