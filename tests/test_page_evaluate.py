"""AppTest of pages/evaluate.py: one classification run, a recommender run, comparisons, reviews, broken artifacts."""

from __future__ import annotations

import json
import shutil

import pytest
from streamlit.testing.v1 import AppTest

from core.settings import run_dir
from db import runs as run_queries
from db import session_scope
from db.enums import TaskKind
from tests.conftest import sklearn_predictions, store_completed_run, store_ranking_run, with_splits

PAGE = "../pages/evaluate.py"


def charts(at: AppTest) -> dict[str, dict]:
    """Plotly charts on the page by key, each as its figure JSON."""
    return {el.proto.id.rsplit("-", 1)[-1]: json.loads(el.proto.spec) for el in at.get("plotly_chart")}


def open_run(run_id: int) -> AppTest:
    """The Evaluate page opened on one run (its id in the URL, as a link from Train gives it), drawn without error."""
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["run"] = str(run_id)
    at.run()
    assert not at.exception
    return at


def noisy_dataset() -> int:
    """A sentiment set with some labels flipped, so the classifier makes mistakes to analyse."""
    from core.data.storage import write_dataset
    from tests.conftest import sentiment_frame

    frame = with_splits(sentiment_frame(200))
    frame.loc[frame.index[::6], "label"] = "negative"
    with session_scope() as s:
        return write_dataset(s, name="noisy <b>sentiment</b>", task=TaskKind.CLASSIFICATION, frame=frame,
                             mapping={"text": "text", "label": "label"}).id


@pytest.fixture
def two_runs() -> tuple[int, int]:
    ds = noisy_dataset()
    labels, preds = sklearn_predictions(ds)
    baseline = store_completed_run(ds, labels, preds, model_kind="tfidf", name="tfidf baseline")
    labels, preds = sklearn_predictions(ds, seed=1)
    lstm = store_completed_run(ds, labels, preds, model_kind="lstm", name="lstm",
                               config={"epochs": 3, "learning_rate": 0.01, "seed": 0})
    return baseline, lstm


def test_empty_page_says_what_to_do() -> None:
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert "No completed runs yet" in at.info[0].value


def test_classification_run_renders_every_chart_and_error_analysis(two_runs: tuple[int, int]) -> None:
    baseline, lstm = two_runs
    at = open_run(lstm)
    assert at.selectbox(key="run").value == lstm
    found = charts(at)
    for key in ("per_class_chart", "cm_chart", "roc_chart", "pr_chart", "calibration_chart", "learning_chart",
                "threshold_chart"):
        assert key in found, key
    assert found["cm_chart"]["data"][0]["type"] == "heatmap"
    with session_scope() as s:
        report = run_queries.get_run(s, lstm).metrics["reports"]["test"]
    assert found["cm_chart"]["data"][0]["z"] == report["confusion_matrix"]
    headline = at.dataframe[0].value  # st.dataframe without selection keeps no key in AppTest
    assert headline.loc[headline["metric"] == "macro f1", "this run"].iloc[0] == pytest.approx(report["macro_f1"])
    assert headline["TF-IDF baseline"].notna().all()
    assert any(f"#{baseline} tfidf baseline" in c.value for c in at.caption)
    assert len(at.get("download_button")) == 2  # HTML report and predictions CSV

    assert at.radio(key="err_split").value == "validation"  # validation mistakes first: the test set stays put
    mistakes = at.dataframe(key=f"marks_{lstm}_validation_(any)_(any)").value  # the data_editor of marks
    n_all = int(next(c.value for c in at.caption if "mistakes of" in c.value).split()[0])
    assert n_all > 0
    at.selectbox(key="err_true").set_value("positive").run()
    n_pos = int(next(c.value for c in at.caption if "mistakes of" in c.value).split()[0])
    assert not at.exception and 0 <= n_pos <= n_all
    assert len(mistakes) == min(n_all, 200) and set(mistakes.columns) >= {"text", "true", "predicted", "exclude"}
    assert list(mistakes["confidence"]) == sorted(mistakes["confidence"], reverse=True)
    assert at.button(key="save_version").disabled  # nothing marked yet

    at.toggle(key="cm_normalise").set_value(True).run()
    z = charts(at)["cm_chart"]["data"][0]["z"]
    assert all(abs(sum(row) - 1) < 1e-9 or sum(row) == 0 for row in z)
    at.radio(key="split").set_value("validation").run()
    assert not at.exception
    with session_scope() as s:
        val = run_queries.get_run(s, lstm).metrics["reports"]["validation"]
    assert charts(at)["per_class_chart"]["data"][0]["y"] == [v["precision"] for v in val["per_class"].values()]


def test_missing_artifacts_are_reported_not_crashing(two_runs: tuple[int, int]) -> None:
    _, lstm = two_runs
    shutil.rmtree(run_dir(lstm))
    at = open_run(lstm)
    assert any("cannot be read" in e.value for e in at.error)
    assert {"per_class_chart", "cm_chart"} <= set(charts(at))  # stored metrics still shown


def test_recommender_run_shows_ranking_metrics(interactions_dataset: int) -> None:
    run_id = store_ranking_run(interactions_dataset)
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert at.selectbox(key="run").value == run_id
    assert "rank_k_chart" in charts(at)
    assert {m.label for m in at.metric} >= {"ndcg@10", "precision@10", "recall@10", "map@10", "coverage"}
    assert "split" not in [r.key for r in at.radio]  # no split switch for ranking runs


def test_comparison_of_classification_runs(two_runs: tuple[int, int]) -> None:
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.segmented_control(key="mode").set_value("Compare runs").run()
    assert not at.exception
    board = at.dataframe[0].value
    assert sorted(board["run"]) == sorted(two_runs)
    assert list(board["macro_f1"]) == sorted(board["macro_f1"], reverse=True)
    found = charts(at)
    assert {"cmp_bars", "cmp_curves"} <= set(found)
    assert len(found["cmp_bars"]["data"]) == 2 and len(found["cmp_curves"]["data"]) == 2
    assert set(at.dataframe[-1].value.columns) >= {"run", "epochs", "learning_rate"}
    at.text_input(key="cmp_reviewer").set_value("Sam")
    at.text_area(key="cmp_comment").set_value("LSTM is not worth it yet")
    at.button(key="cmp_submit").click().run()
    assert not at.exception
    with session_scope() as s:
        for run_id in two_runs:
            [review] = run_queries.reviews_of(s, run_id)
            assert review.reviewer == "Sam" and sorted(review.compared_run_ids) == sorted(two_runs)
    assert sum("Sam" in m.value and "comparing" in m.value for m in at.markdown) == 1  # shown once


def test_compare_opens_on_the_current_runs_dataset_with_its_baseline_in_one_colour_each(
        completed_classification_run: int, two_runs: tuple[int, int]) -> None:
    baseline, lstm = two_runs  # on a dataset created after the other run's, so not the first in the list
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["run"] = str(lstm)
    at.run()
    at.segmented_control(key="mode").set_value("Compare runs").run()
    assert not at.exception
    box = at.selectbox(key="cmp_dataset")
    assert box.options == ["tiny-sentiment", "noisy <b>sentiment</b>"] and box.index == 1
    assert at.multiselect(key="cmp_runs").value == [lstm, baseline]
    found = charts(at)
    bars = {t["name"]: t["marker"]["color"] for t in found["cmp_bars"]["data"]}
    lines = {t["name"]: t["line"]["color"] for t in found["cmp_curves"]["data"]}
    assert bars == lines and len(set(bars.values())) == 2


def test_comparison_of_recommender_runs(interactions_dataset: int) -> None:
    store_ranking_run(interactions_dataset, model_kind="popularity", scale=0.5)
    store_ranking_run(interactions_dataset, model_kind="itemknn", scale=1.0)
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.segmented_control(key="mode").set_value("Compare runs").run()
    assert not at.exception
    found = charts(at)
    assert {"cmp_bars", "cmp_k_chart"} <= set(found)
    assert len(found["cmp_k_chart"]["data"]) == 2


def test_review_is_stored_and_shown(completed_classification_run: int) -> None:
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.text_input(key="run_reviewer").set_value("Dana <script>x</script>")
    at.text_area(key="run_comment").set_value("Good enough for the pilot")
    at.radio(key="run_verdict").set_value("needs_work")
    at.button(key="run_submit").click().run()
    assert not at.exception
    with session_scope() as s:
        reviews = run_queries.reviews_of(s, completed_classification_run)
        assert [(r.reviewer, r.verdict.value) for r in reviews] == [("Dana <script>x</script>", "needs_work")]
    assert any("Dana" in m.value and "needs work" in m.value for m in at.markdown)


def test_real_tfidf_run_from_the_worker_is_evaluated(classification_dataset: int,
                                                     capsys: pytest.CaptureFixture) -> None:
    """A run trained by the real worker (core.text.training, TF-IDF): page, CLI and report read what it stored."""
    import subprocess
    import sys
    from pathlib import Path

    from core.cli import main
    from core.export.report import build_report
    from core.text.config import build_config

    with session_scope() as s:
        run_id = run_queries.create_run(s, dataset_id=classification_dataset, task=TaskKind.CLASSIFICATION,
                                        model_kind="tfidf", config=build_config("tfidf", {}), name="real tfidf").id
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, "-m", "core.runs.worker", str(run_id)], capture_output=True, text=True,
                          timeout=300, cwd=root)
    with session_scope() as s:
        run = run_queries.get_run(s, run_id)
        assert run.status.value == "completed", (proc.stderr[-2000:], run.error)
        stored = run.metrics["reports"]["test"]
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception and not at.error
    found = charts(at)
    assert {"per_class_chart", "cm_chart", "roc_chart", "calibration_chart", "threshold_chart"} <= set(found)
    assert found["cm_chart"]["data"][0]["z"] == stored["confusion_matrix"]
    assert main(["eval", str(run_id), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["macro_f1"] == pytest.approx(stored["macro_f1"])
    assert build_report([run_id]).count('class="plotly-graph-div"') >= 5


def test_real_recommender_run_from_the_worker_is_evaluated(interactions_dataset: int) -> None:
    """A popularity run trained by the real worker (core.recs.training): page and comparison read its metrics."""
    import subprocess
    import sys
    from pathlib import Path

    from core.recs.config import build_config

    root = Path(__file__).resolve().parent.parent
    ids = []
    for kind in ("popularity", "itemknn"):
        with session_scope() as s:
            ids.append(run_queries.create_run(s, dataset_id=interactions_dataset, task=TaskKind.INTERACTIONS,
                                              model_kind=kind, config=build_config(kind, {})).id)
        proc = subprocess.run([sys.executable, "-m", "core.runs.worker", str(ids[-1])], capture_output=True, text=True,
                              timeout=300, cwd=root)
        with session_scope() as s:
            run = run_queries.get_run(s, ids[-1])
            assert run.status.value == "completed", (proc.stderr[-2000:], run.error)
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception and not at.error
    assert "rank_k_chart" in charts(at)
    at.segmented_control(key="mode").set_value("Compare runs").run()
    assert not at.exception
    found = charts(at)
    assert len(found["cmp_bars"]["data"]) == 2 and len(found["cmp_k_chart"]["data"]) == 2
    assert at.dataframe[0].value["ndcg@10"].notna().all()


@pytest.mark.e2e
def test_clicking_a_confusion_cell_filters_the_mistakes_in_chromium(protolab_home) -> None:  # noqa: ANN001
    """In a real browser (streamlit run + Chromium), a click on a cell fills the two error filters."""
    import time

    from playwright.sync_api import expect

    from tests.e2e.conftest import CHROMIUM_ARGS, chromium_or_skip, start_server, wait_until_drawn

    executable = chromium_or_skip()
    ds = noisy_dataset()
    labels, preds = sklearn_predictions(ds)
    run_id = store_completed_run(ds, labels, preds, name="clickable")
    with session_scope() as s:
        matrix = run_queries.get_run(s, run_id).metrics["reports"]["test"]["confusion_matrix"]
    from playwright.sync_api import sync_playwright

    server = start_server(protolab_home)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            page.goto(server.url + "/evaluate")
            page.get_by_text("Error analysis").first.wait_for()
            page.get_by_role("tab", name="Confusion matrix").click()
            chart = page.locator(".js-plotly-plot").nth(1)
            chart.scroll_into_view_if_needed()
            cell = chart.locator(".scatterlayer .point").nth(1)  # row 0 (true labels[0]), column 1
            # A click that lands while the chart is still being laid out is lost: click once it has settled.
            box = wait_until_drawn(page, chart, cell)
            page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            boxes = page.get_by_test_id("stSelectbox")  # the click reruns the script, which fills both filters
            expect(boxes.nth(1).locator("input").first).to_have_value(labels[0], timeout=60_000)
            expect(boxes.nth(2).locator("input").first).to_have_value(labels[1], timeout=60_000)
            page.get_by_text(f"{matrix[0][1]} mistakes of").first.wait_for()
            browser.close()
    finally:
        server.stop()
        time.sleep(0.2)


def test_saved_version_retrains_in_one_click(completed_classification_run: int, classification_dataset: int,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """After marks are saved as a version, one click starts the same model and config on it."""
    import core.runs.jobs
    from core.data import versions
    from core.evaluation.predictions import load_predictions

    monkeypatch.setattr(core.runs.jobs, "launch_worker", lambda run_id, gpus=1: 0)  # no worker process here
    with session_scope() as s:
        text = run_queries.get_run(s, completed_classification_run).dataset.name
    first = load_predictions(completed_classification_run, "validation").iloc[0]
    exclude = {"action": "exclude", "split": "validation", "text": first["text"], "label": first["label"]}
    with session_scope() as s:
        version = versions.create_dataset_version(s, classification_dataset, [exclude])
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["new_version"] = (completed_classification_run, version.id, version.name)
    at.run()
    assert any(version.name in s.value for s in at.success) and text in version.name
    at.button(key="retrain").click().run()
    assert not at.exception
    with session_scope() as s:
        new = run_queries.list_runs(s, dataset_id=version.id)[0]
        old = run_queries.get_run(s, completed_classification_run)
        assert (new.model_kind, new.config, new.parent_run_id) == (old.model_kind, old.config, old.id)
    assert at.session_state["compare_preset"] == [completed_classification_run, new.id]
    assert any(f"Run #{new.id} started" in i.value for i in at.info)


def test_comparison_groups_a_dataset_with_its_versions(completed_classification_run: int,
                                                       classification_dataset: int) -> None:
    from core.data import versions
    from core.evaluation import predictions

    first = predictions.load_predictions(completed_classification_run, "validation").iloc[0]
    exclude = {"action": "exclude", "split": "validation", "text": first["text"], "label": first["label"]}
    with session_scope() as s:
        version = versions.create_dataset_version(s, classification_dataset, [exclude])
    labels, preds = sklearn_predictions(version.id)
    retrained = store_completed_run(version.id, labels, preds, name="on the version")
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["compare_preset"] = [completed_classification_run, retrained]
    at.run()
    at.segmented_control(key="mode").set_value("Compare runs").run()
    assert not at.exception
    assert at.selectbox(key="cmp_dataset").options == ["tiny-sentiment"]  # one group: the root and its version
    assert sorted(at.dataframe[0].value["run"]) == sorted([completed_classification_run, retrained])
    assert sorted(at.multiselect(key="cmp_runs").value) == sorted([completed_classification_run, retrained])
    assert len(charts(at)["cmp_bars"]["data"]) == 2


def test_tfidf_run_page_has_no_learning_curves_and_is_the_baseline(two_runs: tuple[int, int]) -> None:
    baseline, lstm = two_runs
    at = open_run(baseline)
    assert "learning_chart" not in charts(at)  # TF-IDF trains in one go: no epochs to draw
    assert not any("No completed TF-IDF run" in c.value for c in at.caption)
    assert any("This run is a TF-IDF baseline" in c.value for c in at.caption)
    assert "TF-IDF baseline" not in at.dataframe[0].value.columns
    at.selectbox(key="run").set_value(lstm).run()
    assert "learning_chart" in charts(at)


def test_recommender_run_is_shown_beside_a_popularity_baseline(interactions_dataset: int) -> None:
    from tests.test_recommenders import completed_run

    run_id = completed_run(interactions_dataset, "itemknn")
    at = open_run(run_id)
    table = at.dataframe[0].value
    assert list(table.columns) == ["metric", "this run", "popularity baseline"] and table.notna().all().all()
    assert any("Evaluated on: a fresh 75/25 split per item" in c.value and "not the split chosen at upload" in c.value
               for c in at.caption)
