"""A recommendation is never an item the user already has: with more likes than the catalogue leaves, fewer
items come back (in core, the CLI and the API), never a liked or seen one."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from core.api.app import create_app
from core.api.served import ServedModels
from core.recs.serving import load_recommender
from tests.test_recommenders import completed_run


@pytest.mark.parametrize("kind", ["popularity", "itemknn", "ease"])
def test_more_likes_than_the_catalogue_leaves_returns_only_new_items(interactions_dataset: int, kind: str) -> None:
    model = load_recommender(completed_run(interactions_dataset, kind))
    liked = model.items[:-3]  # all but three of the items the model knows
    recs = model.recommend_for_likes(liked, k=10)
    got = [item for item, _, _ in recs]
    assert set(got) <= set(model.items[-3:]) and len(got) == len(set(got)) <= 3
    assert recs and all(reason is None or reason in liked for _, _, reason in recs)
    everything = model.recommend_for_likes(model.items, k=10)
    assert everything == []  # nothing left to recommend: an empty list, not the liked items back


@pytest.mark.parametrize("kind", ["popularity", "itemknn"])
def test_a_known_user_asking_for_more_than_is_left_gets_only_unseen_items(interactions_dataset: int,
                                                                          kind: str) -> None:
    model = load_recommender(completed_run(interactions_dataset, kind))
    user = model.users[0]
    seen = set(model.user_history(user)["item"])
    recs = model.recommend(user, k=len(model.items))
    got = {item for item, _, _ in recs}
    assert not got & seen and len(recs) == len(got) <= len(model.items) - len(seen)


def test_api_recommend_never_returns_a_liked_item(interactions_dataset: int) -> None:
    run_id = completed_run(interactions_dataset, "popularity")
    items = load_recommender(run_id).items
    models = ServedModels([run_id])
    models.load()
    client = TestClient(create_app(models, require_key=False))
    r = client.post(f"/v1/runs/{run_id}/recommend", json={"like": items[:-2], "k": 10})
    assert r.status_code == 200, r.text
    got = [row["item"] for row in r.json()["items"]]
    assert got and set(got) <= set(items[-2:])
