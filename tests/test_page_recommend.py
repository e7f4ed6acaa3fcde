"""The Recommendations demo page under AppTest: empty state, the three modes, with and without a catalogue."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from db import runs as run_queries
from db import session_scope
from tests.conftest import store_interactions
from tests.test_recommenders import completed_run

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "recommendations.py")


def _page() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=90).run()


def _texts(at: AppTest) -> str:
    return " ".join(str(df.value.to_dict()) for df in at.dataframe)


def test_empty_state_points_to_datasets_and_train() -> None:
    at = _page()
    assert not at.exception
    assert "No trained recommender" in at.info[0].value


def test_existing_user_mode_shows_history_and_reasons(interactions_dataset: int) -> None:
    worse = completed_run(interactions_dataset, "popularity")
    best = completed_run(interactions_dataset, "itemknn")
    at = _page()
    assert not at.exception
    with session_scope() as s:
        ndcg = {r: run_queries.get_run(s, r).metrics["by_k"]["10"]["ndcg"] for r in (worse, best)}
    assert at.selectbox(key="run").value == max(ndcg, key=ndcg.get)  # default: best NDCG@10
    at.selectbox(key="run").set_value(best).run()
    at.selectbox(key="user").set_value("u1").run()
    assert not at.exception
    history, recs = at.dataframe[0].value, at.dataframe[1].value
    assert history["title"].str.startswith("Space").all() and "rating" in history.columns
    assert len(recs) == 10 and recs["title"].head(4).str.startswith("Space").all()
    assert recs["why"].str.startswith("because you liked Space").any()
    assert set(recs["item"]).isdisjoint(history["item"])


def test_new_visitor_and_similar_items_modes(interactions_dataset: int) -> None:
    completed_run(interactions_dataset, "itemknn")
    at = _page()
    at.radio(key="mode").set_value(at.radio(key="mode").options[1]).run()
    assert "Pick a few items" in at.info[0].value
    at.multiselect(key="likes").set_value(["i2", "i4"]).run()
    assert not at.exception
    recs = at.dataframe[0].value
    assert recs["title"].head(5).str.startswith("Garden").all()
    at.radio(key="mode").set_value(at.radio(key="mode").options[2]).run()
    at.selectbox(key="item").set_value("i3").run()
    at.slider(key="top_n").set_value(5).run()
    assert not at.exception
    similar = at.dataframe[0].value
    assert len(similar) == 5 and "i3" not in set(similar["item"])
    assert similar["title"].str.startswith("Space").sum() >= 4


def test_works_without_a_catalogue() -> None:
    dataset_id = store_interactions("no-catalogue", seed=2, catalogue=False)
    completed_run(dataset_id, "bpr")
    at = _page()
    assert not at.exception
    assert "no item catalogue" in " ".join(c.value for c in at.caption)
    recs = at.dataframe[1].value
    assert (recs["title"] == recs["item"]).all()  # ids stand in for titles
    at.radio(key="mode").set_value(at.radio(key="mode").options[1]).run()
    at.multiselect(key="likes").set_value(["i1"]).run()
    assert not at.exception and len(at.dataframe[0].value) == 10


def test_items_you_like_has_no_select_all_matches(interactions_dataset: int) -> None:
    # With the bulk action on, Enter after typing a title picked "Select N matches" and added every fuzzy match.
    completed_run(interactions_dataset, "itemknn")
    at = _page()
    at.radio(key="mode").set_value(at.radio(key="mode").options[1]).run()
    assert at.multiselect(key="likes").proto.select_all == 0


def test_similar_items_offer_popularity_damped_lists_by_default(interactions_dataset: int) -> None:
    from core.recs.similarity import DEFAULT_DAMPED

    completed_run(interactions_dataset, "ease")
    at = _page()
    at.radio(key="mode").set_value(at.radio(key="mode").options[2]).run()
    at.selectbox(key="item").set_value("i3").run()
    assert at.toggle(key="damped").value is DEFAULT_DAMPED is True
    damped = at.dataframe[0].value
    at.toggle(key="damped").set_value(False).run()
    plain = at.dataframe[0].value
    assert not at.exception and "i3" not in set(damped["item"]) and len(plain) == 10
    assert damped["similarity"].is_monotonic_decreasing


def test_presentation_mode_shows_a_plain_recommender_card(interactions_dataset: int) -> None:
    run_id = completed_run(interactions_dataset, "itemknn")
    at = AppTest.from_file(PAGE, default_timeout=90)
    at.session_state["present"] = True
    at.run()
    assert not at.exception
    shown = " ".join(m.value for m in at.markdown)
    assert "people, its top 10 held something they really went on to choose" in shown
    assert "NDCG" not in shown and not at.metric and f"#{run_id}" not in shown
    assert "NDCG@10" in at.expander[0].caption[0].value
