"""What a user reads back from an upload: row numbers that match their spreadsheet and the preview (blank lines
counted), HTML entities unescaped at import and said so (page and CLI), and a Label chart that says when it is
empty (issue 28, item 10)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hyp
from streamlit.testing.v1 import AppTest

from core.charts import labelling as label_charts
from core.cli import main
from core.data.classification import prepare_classification
from core.data.reading import parse_upload
from core.data.types import ClassificationMapping

PAGE = Path(__file__).resolve().parents[1] / "pages" / "datasets.py"
LABELS = ("good", "bad", "meh")


def lines_with_a_gap(empty_at: int, blank_before: int) -> list[str]:
    """A CSV's lines: header, 12 labelled texts, the one at `empty_at` without its text, and a blank line before
    data row `blank_before` (a spreadsheet shows it as an empty row, so every later row number counts it)."""
    rows = [f"{'' if i == empty_at else f'text number {i}'},{LABELS[i % 3]}" for i in range(12)]
    return ["text,label", *rows[:blank_before], "", *rows[blank_before:]]


def test_a_warning_names_the_row_a_spreadsheet_and_the_preview_show() -> None:
    lines = lines_with_a_gap(empty_at=6, blank_before=3)
    table = parse_upload("\n".join(lines).encode() + b"\n", "r.csv")
    prepared = prepare_classification(table, ClassificationMapping("text", "label"))
    row = next(i for i, line in enumerate(lines, start=1) if line.startswith(","))  # 1-based, as a spreadsheet
    assert row == 9
    assert any(f"(row {row})" in w for w in prepared.warnings), prepared.warnings
    preview = table.preview(20)
    assert preview.index.name == "row" and list(preview.index[:4]) == [2, 3, 4, 6]
    assert preview.loc[row, "text"] == ""


@settings(max_examples=60, deadline=None)
@given(gaps=hyp.lists(hyp.integers(0, 3), min_size=5, max_size=5))
def test_row_numbers_count_every_blank_line(gaps: list[int]) -> None:
    lines = ["text,label"]
    for i, gap in enumerate(gaps):
        lines += [""] * gap + [f"x{i},{LABELS[i % 3]}"]
    table = parse_upload("\n".join(lines).encode(), "r.csv")
    expected = [n for n, line in enumerate(lines, start=1) if line.startswith("x")]
    assert table.row_numbers(range(len(table.frame))) == expected
    assert list(table.frame["text"]) == [f"x{i}" for i in range(5)]


def test_json_records_are_numbered_from_one() -> None:
    table = parse_upload(b'[{"text": "a", "label": "x"}, {"text": "b", "label": "y"}]', "r.json")
    assert table.rows([1]) == "record 2" and list(table.preview().index) == [1, 2]


ESCAPED = ["I&#039;ve had it", "Fish &amp; chips", "&quot;fine&quot; they said", "AT&T works", "&copy 2020 plain"]


def escaped_rows(n: int = 15) -> list[dict[str, str]]:
    return [{"text": f"{ESCAPED[i % 5]} ({i})", "label": LABELS[i % 3]} for i in range(n)]


def test_html_entities_are_unescaped_and_counted() -> None:
    import pandas as pd

    table = parse_upload(pd.DataFrame(escaped_rows()).to_csv(index=False).encode(), "r.csv")
    prepared = prepare_classification(table, ClassificationMapping("text", "label"))
    texts = set(prepared.frame["text"])
    assert {"I've had it (0)", "Fish & chips (1)", '"fine" they said (2)'} <= texts
    assert {"AT&T works (3)", "&copy 2020 plain (4)"} <= texts  # no semicolon: the ampersand is meant
    assert any("unescaped HTML entities" in n and "in 9 texts" in n for n in prepared.notes), prepared.notes


def test_the_cli_says_how_many_texts_it_unescaped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import pandas as pd

    path = tmp_path / "reviews.csv"
    pd.DataFrame(escaped_rows()).to_csv(path, index=False)
    assert main(["datasets", "add", str(path), "--name", "r", "--task", "classification",
                 "--text-col", "text", "--label-col", "label"]) == 0
    out = capsys.readouterr().out
    assert "unescaped HTML entities" in out and "in 9 texts" in out
    assert "{" not in out.splitlines()[0]  # the split sizes in words, not a Python dict


def test_the_datasets_page_says_what_it_unescaped_and_numbers_its_preview() -> None:
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    data = "\n".join(lines_with_a_gap(empty_at=6, blank_before=3)).replace("text number 1,", "a &amp; b,")
    at.file_uploader(key="upload").set_value(("r.csv", data.encode(), "text/csv")).run()
    assert not at.exception
    assert any("unescaped HTML entities" in i.value and "in 1 text," in i.value for i in at.info)
    assert any("(row 9)" in w.value for w in at.warning)
    shown = at.dataframe[0].value
    # the preview is the file as it is; the note says what import does to it
    assert shown.loc[9, "text"] == "" and shown.loc[3, "text"] == "a &amp; b"


def test_an_empty_label_chart_says_so_instead_of_a_minus_one_to_one_axis() -> None:
    empty = label_charts.labels_per_class({"bug": 0, "feature": 0})
    assert empty.layout.yaxis.visible is False
    assert any("No labels yet" in a.text for a in empty.layout.annotations)
    some = label_charts.labels_per_class({"bug": 2, "feature": 0})
    assert some.layout.yaxis.range[0] == 0 and some.layout.yaxis.dtick == 1 and not some.layout.annotations
