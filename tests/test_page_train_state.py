"""Train and Evaluate pages across reloads and links (issue 12, item 9): the form comes back on the run's
dataset and model, the choice lives in the URL, a link to a missing run says so, and a dataset of German
texts gets the multilingual model suggested."""

from __future__ import annotations

import pandas as pd
from streamlit.testing.v1 import AppTest

from core.data.storage import write_dataset
from core.text.language import MULTILINGUAL_MODEL_ID
from db import runs as run_queries
from db import session_scope
from db.enums import RunStatus, TaskKind
from tests.conftest import sentiment_frame, with_splits

TRAIN, EVALUATE = "../pages/train.py", "../pages/evaluate.py"


def store(name: str, frame: pd.DataFrame | None = None) -> int:
    with session_scope() as s:
        return write_dataset(s, name=name, task=TaskKind.CLASSIFICATION,
                             frame=frame if frame is not None else with_splits(sentiment_frame(60)),
                             mapping={"text": "text", "label": "label"}).id


def queued_run(dataset_id: int, model_kind: str, **changes) -> int:
    with session_scope() as s:
        run = run_queries.create_run(s, dataset_id=dataset_id, task=TaskKind.CLASSIFICATION, model_kind=model_kind,
                                     config={"epochs": 1})
        for name, value in changes.items():
            setattr(run, name, value)
        return run.id


def train_page(**params: str) -> AppTest:
    at = AppTest.from_file(TRAIN, default_timeout=60)
    for key, value in params.items():
        at.query_params[key] = value
    return at.run()


def test_a_reload_mid_run_restores_the_runs_dataset_and_model() -> None:
    first, second = store("first"), store("second")
    run = queued_run(first, "lstm", status=RunStatus.CANCELLED)
    at = train_page(run=str(run))  # what the URL holds after Start; a reload is a fresh session
    assert not at.exception
    assert at.selectbox(key="dataset").value == first  # not the newest dataset
    assert at.radio(key="family").value == "lstm"  # not the first model
    assert second != first


def test_the_choice_is_written_to_the_url_and_read_back() -> None:
    first, second = store("first"), store("second")
    at = train_page()
    at.selectbox(key="dataset").set_value(first).run()
    at.radio(key="family").set_value("tfidf").run()
    assert (at.query_params["dataset"], at.query_params["model"]) in ((str(first), "tfidf"), ([str(first)], ["tfidf"]))
    again = train_page(dataset=str(first), model="tfidf")
    assert again.selectbox(key="dataset").value == first and again.radio(key="family").value == "tfidf"
    assert train_page(dataset="12345", model="nonsense").radio(key="family").value == "transformer"
    assert second


def test_a_link_to_a_missing_run_says_so_on_train_and_evaluate() -> None:
    dataset = store("reviews")
    latest = queued_run(dataset, "tfidf", status=RunStatus.CANCELLED)
    at = train_page(run="999")
    assert not at.exception
    assert [w.value for w in at.warning] == ["Run #999 does not exist (deleted, or a mistyped link)."]
    assert not any(f"Run #{latest}" in m.value for m in at.markdown)  # no other run in its place
    from tests.conftest import sklearn_predictions, store_completed_run

    labels, preds = sklearn_predictions(dataset)
    done = store_completed_run(dataset, labels, preds, model_kind="tfidf", name="tfidf")
    ev = AppTest.from_file(EVALUATE, default_timeout=60)
    ev.query_params["run"] = "999"
    ev.run()
    assert not ev.exception
    assert [w.value for w in ev.warning if "#999" in w.value] == [
        "Run #999 does not exist (deleted, or a mistyped link): showing the latest completed run instead."]
    ev = AppTest.from_file(EVALUATE, default_timeout=60)
    ev.query_params["run"] = str(latest)
    ev.run()
    assert any(f"Run #{latest} has not completed (it is cancelled)" in w.value for w in ev.warning)
    assert ev.selectbox(key="run").value == done


def test_german_texts_suggest_the_multilingual_model() -> None:
    german = ["Das Produkt ist sehr gut und ich bin mit der Lieferung zufrieden, aber der Preis ist hoch.",
              "Die App ist nicht gut, sie stürzt ständig ab und der Support antwortet nicht auf meine Fragen."]
    frame = with_splits(pd.DataFrame({"text": [f"{german[i % 2]} ({i})" for i in range(60)],
                                      "label": ["positiv", "negativ"] * 30}))
    de = store("bewertungen", frame)
    store("englisch")  # the newest, so the page opens on it
    at = train_page()
    assert at.selectbox(key="model_choice").value != MULTILINGUAL_MODEL_ID  # English texts: the default
    assert not any("multilingual" in i.value for i in at.info)
    at.selectbox(key="dataset").set_value(de).run()
    assert not at.exception
    assert at.selectbox(key="model_choice_multilingual").value == MULTILINGUAL_MODEL_ID
    assert any("look German" in i.value and "multilingual" in i.value for i in at.info)
