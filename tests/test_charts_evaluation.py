"""core.charts.evaluation: each builder returns the traces it promises, with the numbers it was given."""

from __future__ import annotations

import pandas as pd
import pytest

from core.charts import evaluation as charts
from core.evaluation.analysis import Calibration, Curve, calibration

REPORT = {"labels": ["a", "b", "c"], "confusion_matrix": [[2, 1, 0], [0, 2, 0], [1, 1, 0]],
          "per_class": {"a": {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3},
                        "b": {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 2},
                        "c": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}}}


def test_per_class_bars_three_groups_with_support() -> None:
    fig = charts.per_class_bars(REPORT)
    assert [t.type for t in fig.data] == ["bar"] * 3
    assert [t.name for t in fig.data] == ["Precision", "Recall", "F1"]
    assert list(fig.data[0].x) == ["a (n=3)", "b (n=2)", "c (n=2)"]
    assert list(fig.data[1].y) == [2 / 3, 1.0, 0.0] and list(fig.data[0].customdata) == [3, 2, 2]
    assert fig.layout.barmode == "group"


def test_confusion_matrix_counts_and_row_normalised() -> None:
    fig = charts.confusion_matrix(REPORT["confusion_matrix"], REPORT["labels"])
    heat, cells = fig.data
    assert heat.type == "heatmap" and [list(r) for r in heat.z] == [[2, 1, 0], [0, 2, 0], [1, 1, 0]]
    assert list(heat.x) == ["a", "b", "c"] and heat.text[2][0] == "1"
    assert cells.type == "scatter" and len(cells.customdata) == 9 and list(cells.customdata[5]) == ["b", "c", "0"]
    norm = charts.confusion_matrix(REPORT["confusion_matrix"], REPORT["labels"], normalise=True).data[0]
    assert norm.z[0] == pytest.approx([2 / 3, 1 / 3, 0]) and norm.z[1] == pytest.approx([0, 1, 0])
    empty_row = charts.confusion_matrix([[0, 0], [1, 1]], ["x", "y"], normalise=True).data[0]
    assert list(empty_row.z[0]) == [0, 0]  # no support: zeros, not NaN


def test_roc_and_pr_curves_one_trace_per_class_with_area() -> None:
    curves = {"a": Curve([0, 0.5, 1], [0, 0.9, 1], 0.85), "b": Curve([0, 1], [0, 1], 0.5)}
    roc = charts.roc_curves(curves)
    assert [t.name for t in roc.data] == ["a (AUC 0.850)", "b (AUC 0.500)", "chance"]
    assert list(roc.data[0].y) == [0, 0.9, 1]
    pr = charts.pr_curves(curves)
    assert [t.name for t in pr.data] == ["a (AP 0.850)", "b (AP 0.500)"]


def test_reliability_diagram_bars_points_diagonal_and_ece() -> None:
    preds = pd.DataFrame({"label": ["x", "x", "y", "y"], "pred": ["x", "y", "y", "y"],
                          "confidence": [0.95, 0.95, 0.55, 0.55]})
    fig = charts.reliability_diagram(calibration(preds, n_bins=10))
    assert [t.type for t in fig.data] == ["bar", "scatter", "scatter"]
    assert len(fig.data[0].x) == 10 and fig.data[0].y[9] == pytest.approx(0.5)
    assert list(fig.data[1].y) == pytest.approx([0.55, 0.95])
    assert "ECE 0.450" in fig.layout.title.text
    empty = charts.reliability_diagram(Calibration([0, 0.5, 1], [None, None], [None, None], [0, 0], 0.0))
    assert list(empty.data[1].x) == []


def test_learning_curves_loss_by_step_and_validation_by_epoch() -> None:
    points = pd.DataFrame([
        {"run_id": 1, "name": "train_loss", "split": "train", "step": s, "epoch": None, "value": 1 / (s + 1)}
        for s in range(4)] + [
        {"run_id": 1, "name": n, "split": "validation", "step": e, "epoch": float(e), "value": v}
        for e in (1, 2) for n, v in (("macro_f1", 0.5 + e / 10), ("loss", 1 / e))])
    fig = charts.learning_curves(points)
    assert [t.name for t in fig.data] == ["train loss", "validation loss", "validation macro_f1"]
    assert list(fig.data[0].x) == [0, 1, 2, 3]
    assert list(fig.data[2].x) == [1.0, 2.0] and list(fig.data[2].y) == pytest.approx([0.6, 0.7])
    assert fig.data[1].xaxis == "x2"
    assert len(charts.learning_curves(points.iloc[0:0]).data) == 0


def test_comparison_bars_and_overlaid_curves() -> None:
    names = {1: "#1 a", 2: "#2 b"}
    fig = charts.comparison_bars({2: {"accuracy": 0.9}, 1: {"accuracy": 0.8, "macro_f1": 0.7}},
                                 ["accuracy", "macro_f1"], names)
    assert [t.name for t in fig.data] == ["#2 b", "#1 a"] and list(fig.data[0].y) == [0.9, None]
    points = pd.DataFrame([{"run_id": r, "name": "macro_f1", "split": "validation", "step": e, "epoch": float(e),
                            "value": 0.1 * r + e / 10} for r in (1, 2) for e in (1, 2, 3)])
    curves = charts.overlaid_learning_curves(points, names)
    assert [t.name for t in curves.data] == ["#1 a", "#2 b"] and list(curves.data[1].x) == [1.0, 2.0, 3.0]
    # Drawn in different orders, each run keeps its one colour.
    assert {t.name: t.marker.color for t in fig.data} == {t.name: t.line.color for t in curves.data}
    assert fig.data[0].marker.color == charts.run_colour(2) != charts.run_colour(1)


def test_run_colours_differ_for_nearby_runs() -> None:
    assert len({charts.run_colour(i) for i in range(100, 124)}) == 24


def test_metric_vs_k_single_and_comparison() -> None:
    by_k = {1: {"ndcg": 0.1, "precision": 0.3}, 10: {"ndcg": 0.3, "precision": 0.2},
            5: {"ndcg": 0.2, "precision": 0.25}}
    fig = charts.metric_vs_k(by_k, ["ndcg", "precision"])
    assert [t.name for t in fig.data] == ["ndcg", "precision"]
    assert list(fig.data[0].x) == [1, 5, 10] and list(fig.data[0].y) == [0.1, 0.2, 0.3]
    cmp = charts.metric_vs_k_comparison({1: by_k, 2: {1: {"ndcg": 0.5}}}, {1: "#1", 2: "#2"}, "ndcg")
    assert [t.name for t in cmp.data] == ["#1", "#2"] and list(cmp.data[1].y) == [0.5]
    assert cmp.data[1].line.color == charts.run_colour(2)


def test_threshold_chart_three_lines() -> None:
    table = pd.DataFrame({"threshold": [0.0, 0.5, 1.0], "precision": [0.5, 0.8, 0.0], "recall": [1.0, 0.6, 0.0],
                          "f1": [0.67, 0.69, 0.0]})
    fig = charts.threshold_chart(table, "positive", current=0.5)
    assert [t.name for t in fig.data] == ["Precision", "Recall", "F1"]
    assert list(fig.data[1].y) == [1.0, 0.6, 0.0] and fig.layout.shapes[0].x0 == 0.5
