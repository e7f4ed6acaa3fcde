"""Batch scoring: reading messy uploads, choosing the text column, progress, summaries, a formula-safe CSV."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from core.charts.sentiment import label_distribution, probability_bars
from core.text.batch_scoring import (
    BatchInputError,
    check_text_column,
    read_upload,
    results_csv,
    score_frame,
    text_columns,
)
from core.text.serving import load_classifier


def test_reads_cp1252_csv_and_excel() -> None:
    raw = "id,review\n1,Caf\xe9 was great\n2,awful \u201cservice\u201d\n".encode("cp1252")
    frame = read_upload(raw, "reviews.csv")
    assert list(frame["review"]) == ["Café was great", "awful \u201cservice\u201d"]
    buffer = io.BytesIO()
    pd.DataFrame({"stars": [5, 1], "comment": ["love it", "hate it"]}).to_excel(buffer, index=False)
    assert list(read_upload(buffer.getvalue(), "reviews.xlsx")["comment"]) == ["love it", "hate it"]


@pytest.mark.parametrize("data", [b"", b"\x00\x01\x02garbage\xff" * 50])
def test_unreadable_upload_is_a_friendly_error(data: bytes) -> None:
    with pytest.raises(BatchInputError, match="upload.csv"):
        read_upload(data, "upload.csv")


def test_text_column_choice() -> None:
    frame = pd.DataFrame({"id": ["1", "2", "3"], "stars": ["5", "4", "1"], "notes": ["a", "b", ""],
                          "customer_review": ["loved the fast delivery", "fine", "broken on arrival, awful"]})
    assert text_columns(frame) == ["customer_review", "notes"]
    assert check_text_column(frame, None) == "customer_review"
    with pytest.raises(BatchInputError, match="holds no text"):
        check_text_column(frame, "stars")
    with pytest.raises(BatchInputError, match="no column named 'nope'"):
        check_text_column(frame, "nope")
    with pytest.raises(BatchInputError, match="no column of this file holds text"):
        check_text_column(pd.DataFrame({"a": ["1", "2"], "b": [None, " "]}), None)


@pytest.mark.parametrize("family", ["tfidf", "lstm"])
def test_scores_every_row_with_progress(make_served_run, family: str) -> None:
    clf = load_classifier(make_served_run(family))
    frame = pd.DataFrame({"text": ["love great", "hate awful", "   ", None, "wonderful amazing"] * 5,
                          "confidence": ["x"] * 25})
    steps: list[float] = []
    result = score_frame(clf, frame, "text", on_progress=lambda f, _t: steps.append(f), chunk_rows=4)
    assert steps[0] == 0.0 and steps[-1] == 1.0 and steps == sorted(steps) and len(steps) == 1 + 4
    assert result.scored == 15 and result.empty == 10
    assert result.label_counts == {"negative": 5, "positive": 10}
    out = result.frame
    assert list(out.columns[:2]) == ["text", "confidence"]  # the upload's own columns are kept as they were
    assert {"predicted_label", "confidence_2", "p_negative", "p_positive", "truncated"} <= set(out.columns)
    assert list(out["predicted_label"][:3]) == ["positive", "negative", pd.NA]
    assert np.isnan(out["confidence_2"][2]) and out["confidence_2"][0] > 0.5


def test_export_neutralises_formulas(make_served_run) -> None:
    clf = load_classifier(make_served_run("tfidf"))
    frame = pd.DataFrame({"text": ["=HYPERLINK(\"http://evil\",\"great\")", "+1 love it", "@SUM(A1) hate"],
                          "=cmd": ["-2", "ok", "fine"]})
    csv = results_csv(score_frame(clf, frame, "text")).decode("utf-8-sig")
    back = pd.read_csv(io.StringIO(csv), dtype=str)
    assert back["text"].tolist() == ["'=HYPERLINK(\"http://evil\",\"great\")", "'+1 love it", "'@SUM(A1) hate"]
    assert "'=cmd" in back.columns and back["'=cmd"][0] == "'-2"
    assert not any(line.startswith(("=", "+", "-", "@")) for line in csv.splitlines())


def test_charts_show_the_numbers() -> None:
    fig = probability_bars({"negative": 0.2, "positive": 0.8}, predicted="positive")
    bar = fig.data[0]
    assert list(bar.y) == ["negative", "positive"] and list(bar.x) == [0.2, 0.8]
    assert list(bar.text) == ["20%", "80%"] and list(bar.marker.opacity) == [0.45, 1.0]
    assert list(bar.marker.color) == ["#dc2626", "#16a34a"]
    dist = label_distribution({"negative": 1, "neutral": 1, "positive": 2}).data[0]
    assert list(dist.y) == [1, 1, 2] and dist.text[2] == "2 (50%)"
