"""AppTest of the Search view (Evaluate) and the Train page's Search mode on a real 2-trial TF-IDF search; the
fleet view names the trial a worker runs."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from core import settings
from core.cli import main as cli
from core.runs import fleet, queue
from db import read_scope, session_scope
from db import runs as run_queries
from db import searches as search_queries
from db.models import Dataset


def _search(capsys: pytest.CaptureFixture) -> dict:
    assert cli(["search", "--dataset", "tiny-sentiment", "--model", "tfidf", "--trials", "2", "--wait", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_search_view_draws_optunas_figures_marks_the_best_and_promotes_it(classification_dataset: int,
                                                                               capsys: pytest.CaptureFixture) -> None:
    out = _search(capsys)
    at = AppTest.from_file("../pages/evaluate.py", default_timeout=60).run()
    at.segmented_control(key="mode").set_value("Search").run()
    assert not at.exception
    assert at.selectbox(key="search").value == out["search_id"]
    figures = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert len(figures) >= 2  # the history and the parallel coordinates at least (importances need variety)
    titles = {f["layout"]["title"]["text"] for f in figures if f.get("layout", {}).get("title")}
    assert "Optimization History Plot" in titles and "Parallel Coordinate Plot" in titles
    table = at.dataframe[0].value
    assert list(table["trial"]) == [0, 1]
    starred = table[table["best"] == "⭐"]
    assert list(starred["trial"]) == [out["best"]["number"]]
    assert f"evaluate?run={out['best']['run_id']}" in list(table["run"])
    at.button(key="promote_best").click().run()
    assert not at.exception
    with read_scope() as s:
        assert run_queries.get_run(s, out["best"]["run_id"]).pinned
    at = AppTest.from_file("../pages/train.py", default_timeout=60).run()
    at.segmented_control(key="train_mode").set_value("Search").run()
    assert not at.exception
    assert at.selectbox(key="search_model").value == "transformer"
    at.selectbox(key="search_model").set_value("tfidf").run()
    at.number_input(key="search_trials").set_value(10).run()
    at.button(key="search_estimate").click().run(timeout=240)  # the estimator fits a probe: slow on a busy box
    assert not at.exception
    assert any("for the search" in c.value for c in at.caption), [c.value for c in at.caption]
    assert f"Search #{out['search_id']}" in [h.value for h in at.subheader]


def test_a_bad_space_on_the_train_page_says_why_and_starts_nothing(classification_dataset: int) -> None:
    at = AppTest.from_file("../pages/train.py", default_timeout=60).run()
    at.segmented_control(key="train_mode").set_value("Search").run()
    at.selectbox(key="search_model").set_value("tfidf").run()
    at.text_input(key="search_space").set_value("tfidf_c=log(0,1)").run()
    at.button(key="search_start").click().run()
    assert not at.exception
    assert "log scale needs a low above 0" in at.error[0].value
    with read_scope() as s:
        assert search_queries.list_searches(s) == []


def test_the_fleet_view_names_the_trial_each_worker_runs(classification_dataset: int,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from core.search import searches

    monkeypatch.setenv(settings.DISPATCH.name, "queue")  # trials wait for the fleet's daemons
    monkeypatch.setenv(settings.WORKER_STALE_AFTER_S.name, "600")  # the registered daemon below never beats
    daemon = fleet.FleetWorker(fleet.WorkerOptions(name="gpu-box", devices=("cpu",), max_parallel=2,
                                                   address="127.0.0.1"))
    daemon.register()
    daemon._beat_stop.set()
    assert searches.default_parallel() == 2  # every slot of the live fleet
    with session_scope() as s:
        search_id = searches.start_search(s, dataset=s.get(Dataset, classification_dataset), model_kind="tfidf",
                                          trials=2)
    import time

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with read_scope() as s:
            if len(search_queries.trials_of(s, search_id)) == 2:
                break
        time.sleep(0.3)
    taken = daemon._claim()  # the daemon takes both queued trials (without launching them here)
    assert len(taken) == 2
    with read_scope() as s:
        (member,) = queue.fleet_overview(s)
        numbers = {t.run_id: t.number for t in search_queries.trials_of(s, search_id)}
    assert sorted(member.runs) == sorted(f"#{run_id} tfidf (cpu) · trial {n} of search {search_id}"
                                         for run_id, n in numbers.items())
    with session_scope() as s:
        searches.stop_search(s, search_id)
