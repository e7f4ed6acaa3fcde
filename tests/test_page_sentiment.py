"""The Sentiment demo page under AppTest: each family end to end, bad inputs, XSS, empty and broken states."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.settings import run_dir

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "sentiment.py")


def page(**state) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=180)
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def texts(at: AppTest, kind: str) -> str:
    return " ".join(str(e.value) for e in getattr(at, kind))


def html_blocks(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if m.allow_html]


def test_empty_state_points_to_datasets_and_train() -> None:
    at = page()
    assert not at.exception
    assert "No trained model to demo yet" in texts(at, "info")
    assert not at.selectbox and not at.text_area


@pytest.mark.parametrize("family", ["transformer", "lstm", "tfidf"])
def test_single_text_explanation_and_batch(make_served_run, family: str) -> None:
    run_id = make_served_run(family)
    at = page()
    assert not at.exception, at.exception
    assert at.selectbox(key="run").value == run_id
    assert "tiny-sentiment" in texts(at, "markdown") and at.metric[0].label == "Macro-F1"

    at.text_area(key="text").input("love great wonderful").run()
    assert not at.exception, at.exception
    prediction = at.metric[2]
    assert prediction.label == "Prediction" and prediction.value in {"positive", "negative"}
    if family != "transformer":  # trained models get the tiny data right
        assert prediction.value == "positive"
    assert len(at.get("plotly_chart")) == 1
    why = html_blocks(at)
    assert len(why) == 1 and why[0].count("<span ") == 3 and ">love</span>" in why[0]

    at.button(key="example_1").click().run()  # an example fills the text box and is analysed
    assert at.text_area(key="text").value.startswith("The app keeps crashing")
    assert ">crashing</span>" in html_blocks(at)[0]

    frame = pd.DataFrame({"id": [1, 2, 3, 4], "review": ["love it great", "awful hate", "", "wonderful"]})
    at.file_uploader(key="upload").upload("reviews.csv", frame.to_csv(index=False).encode(), "text/csv").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="text_col").value == "review"
    at.button(key="score").click().run()
    assert not at.exception, at.exception
    assert [m.value for m in at.metric[-3:]] == ["3", "1", "0"]
    assert len(at.get("plotly_chart")) == 2  # probabilities + label distribution
    assert at.get("download_button")


def test_best_macro_f1_run_is_the_default(make_served_run) -> None:
    make_served_run("tfidf", macro_f1=0.7)
    best = make_served_run("lstm", macro_f1=0.9)
    make_served_run("tfidf", macro_f1=0.8)
    at = page()
    assert at.selectbox(key="run").value == best
    assert len(at.selectbox(key="run").options) == 3


@pytest.mark.parametrize("text", ["", "   \n  "])
def test_empty_and_whitespace_input_get_a_friendly_message(make_served_run, text: str) -> None:
    make_served_run("tfidf")
    at = page()
    at.text_area(key="text").input(text)
    at.button(key="analyse").click().run()
    assert not at.exception
    assert "at least one word" in texts(at, "warning")
    assert not at.get("plotly_chart")


def test_long_text_is_truncated_with_a_note(make_served_run) -> None:
    make_served_run("transformer", max_length=16)
    at = page(text="great service " * 100)
    assert not at.exception
    assert "longer than the model reads (16 tokens)" in texts(at, "info")
    absurd = page(text="x" * 150_000)
    assert "characters long" in texts(absurd, "warning") and not absurd.exception


def test_script_in_the_input_comes_out_escaped(make_served_run) -> None:
    make_served_run("tfidf")
    at = page(text='great <script>alert("x")</script> <img src=x onerror=alert(1)>')
    assert not at.exception
    (why,) = html_blocks(at)
    assert "<script>" not in why and "<img" not in why
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in why


@pytest.mark.parametrize(("content", "message"), [
    (b"id,stars\n1,5\n2,3\n", "no column with text"),
    (b"", "the file is empty"),
])
def test_files_without_usable_text_get_a_friendly_message(make_served_run, content: bytes, message: str) -> None:
    make_served_run("tfidf")
    at = page()
    at.file_uploader(key="upload").upload("numbers.csv", content, "text/csv").run()
    assert not at.exception
    assert message in texts(at, "warning")
    assert "score" not in [b.key for b in at.button]


def test_excel_upload_is_scored(make_served_run) -> None:
    make_served_run("tfidf")
    buffer = io.BytesIO()
    pd.DataFrame({"comment": ["love it great", "awful"], "n": [1, 2]}).to_excel(buffer, index=False)
    at = page()
    at.file_uploader(key="upload").upload("r.xlsx", buffer.getvalue(), "application/octet-stream").run()
    at.button(key="score").click().run()
    assert not at.exception and at.get("download_button")


def test_the_download_says_which_cells_it_quotes(make_served_run) -> None:
    make_served_run("tfidf")
    at = page()
    csv = b"comment\n@united worst airline ever\nlove it great\n=1+1 awful\n"
    at.file_uploader(key="upload").upload("r.csv", csv, "text/csv").run()
    at.button(key="score").click().run()
    assert not at.exception
    assert any(c.value.startswith("2 cells start with =, +, -, @") for c in at.caption)


def test_runs_without_files_are_not_offered_and_damaged_ones_explain_themselves(make_served_run) -> None:
    gone = make_served_run("tfidf", macro_f1=0.95)
    shutil.rmtree(run_dir(gone))
    kept = make_served_run("tfidf", macro_f1=0.5)
    at = page()
    assert at.selectbox(key="run").options == [f"#{kept} tfidf on tiny-sentiment · macro-F1 0.500"]
    broken = make_served_run("tfidf", macro_f1=0.99)
    (run_dir(broken) / "model" / "labels.json").write_text("{broken")
    at = page()
    assert not at.exception and at.selectbox(key="run").value == broken
    assert "cannot be served" in texts(at, "error") and not at.text_area


def test_presentation_mode_has_no_links_into_the_workshop(make_served_run) -> None:
    make_served_run("tfidf")
    normal, present = page(), page(present=True)
    # Run on its own (no navigation), ui.common.page_link draws its link as a caption.
    assert "→ Full evaluation of this run" in [c.value for c in normal.caption]
    assert not present.get("page_link") and "Full evaluation" not in texts(present, "caption")
    assert not present.exception and present.text_area(key="text") is not None


def test_really_trained_transformer_on_the_page_and_cli(classification_dataset: int, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """A MiniLM fine-tuned by the real worker (1 epoch) is served by the page and the CLI."""
    import json

    from core.cli import main
    from tests.test_predict import train_for_real

    run_id = train_for_real(classification_dataset, "transformer", epochs=1, max_length=32, batch_size=8,
                            learning_rate=2e-4)
    at = page(text="love this wonderful great product")
    assert not at.exception, at.exception
    assert at.selectbox(key="run").value == run_id and at.metric[2].value == "positive"
    assert ">wonderful</span>" in html_blocks(at)[0]
    frame = pd.DataFrame({"text": ["awful broken terrible service", "great fantastic happy"]})
    at.file_uploader(key="upload").upload("r.csv", frame.to_csv(index=False).encode(), "text/csv").run()
    at.button(key="score").click().run()
    assert not at.exception and at.get("download_button")
    assert main(["predict", "--run", str(run_id), "awful broken terrible service", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["label"] == "negative"


def test_long_text_shows_its_strongest_words_in_the_bars_colours(make_served_run) -> None:
    from core.charts.sentiment import label_colours
    from core.text.explain import STRONGEST

    make_served_run("tfidf")
    at = page()
    long_text = " ".join(["the parcel arrived on a tuesday in a box"] * 1000 + ["awful broken", "love great"])
    assert len(long_text) > 40_000
    at.text_area(key="text").input(long_text).run()
    assert not at.exception, at.exception
    (why,) = html_blocks(at)
    assert 0 < why.count("<span ") <= STRONGEST  # not one chip per word of a 40,000-character text
    bars = at.get("plotly_chart")[0].proto.spec
    chips = {tuple(map(int, rgb)) for rgb in re.findall(r"rgba\((\d+),(\d+),(\d+),0\.[1-9]", why)}
    bar_colours = {tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in label_colours(["negative", "positive"])
                   if c in bars}
    assert chips and chips <= bar_colours  # every coloured chip wears the colour of a prediction bar
    assert "class it pushes towards" in texts(at, "caption") and "strongest" in texts(at, "caption")


def test_presentation_mode_shows_a_plain_model_card_with_the_numbers_on_request(make_served_run) -> None:
    run_id = make_served_run("tfidf", macro_f1=0.8)
    present = page(present=True)
    assert not present.exception
    shown = texts(present, "markdown") + texts(present, "subheader") + texts(present, "selectbox")
    assert "right 8 times in 10" in shown and "Reads a text and says whether it is negative or positive" in shown
    assert "macro-F1" not in shown and f"#{run_id}" not in shown and not present.metric
    assert present.selectbox(key="run").format_func(run_id) == "Model 1 · tiny-sentiment"
    (details,) = present.expander
    assert "macro-F1 0.800" in texts(details, "caption")  # the technical line, one click away
    normal = page()
    assert normal.metric[0].label == "Macro-F1" and all(e.label != "Technical details" for e in normal.expander)
