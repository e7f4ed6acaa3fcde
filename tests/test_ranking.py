"""Ranking metrics against hand-computed cases (binary relevance, natural-log discount, MAP over #relevant)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from core.recs.encoding import encode
from core.recs.models import Popularity
from core.recs.ranking import RankingAccumulator, evaluate_lists, metrics_from_hits
from core.recs.training import evaluate_model, top_k


def test_single_user_hand_computed_at_4_and_2() -> None:
    result = evaluate_lists([[1, 2, 3, 4]], [{1, 3}], ks=[2, 4], n_catalogue=10)
    at4, at2 = result[4], result[2]
    assert at4["precision"] == pytest.approx(0.5)
    assert at4["recall"] == pytest.approx(1.0)
    dcg = 1 / math.log(2) + 1 / math.log(4)  # hits at ranks 1 and 3
    idcg = 1 / math.log(2) + 1 / math.log(3)  # two relevant items at ranks 1 and 2
    assert at4["ndcg"] == pytest.approx(dcg / idcg)
    assert at4["ndcg"] == pytest.approx(0.919721, abs=1e-6)
    assert at4["map"] == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert at4["hit_rate"] == 1.0
    assert at4["coverage"] == pytest.approx(0.4)
    assert at2["precision"] == pytest.approx(0.5)
    assert at2["recall"] == pytest.approx(0.5)
    assert at2["ndcg"] == pytest.approx((1 / math.log(2)) / (1 / math.log(2) + 1 / math.log(3)))
    assert at2["map"] == pytest.approx(0.5)


def test_means_over_users_and_a_user_with_no_hit() -> None:
    result = evaluate_lists([[1, 2], [5, 6]], [{1}, {7}], ks=[2], n_catalogue=10)[2]
    assert result["precision"] == pytest.approx((0.5 + 0.0) / 2)
    assert result["recall"] == pytest.approx((1.0 + 0.0) / 2)
    assert result["ndcg"] == pytest.approx(0.5)
    assert result["hit_rate"] == pytest.approx(0.5)
    assert result["coverage"] == pytest.approx(4 / 10)


def test_map_is_normalised_by_all_relevant_items_not_by_k() -> None:
    result = evaluate_lists([[1, 2]], [{1, 3, 5, 7}], ks=[2], n_catalogue=10)[2]
    assert result["map"] == pytest.approx(1 / 4)
    assert result["recall"] == pytest.approx(1 / 4)
    # Ideal DCG is capped at k: two relevant items could have filled both slots.
    assert result["ndcg"] == pytest.approx((1 / math.log(2)) / (1 / math.log(2) + 1 / math.log(3)))


def test_perfect_ranking_scores_one() -> None:
    result = evaluate_lists([[3, 4, 9]], [{3, 4, 9}], ks=[3], n_catalogue=10)[3]
    assert result["ndcg"] == pytest.approx(1.0)
    assert result["map"] == pytest.approx(1.0)
    assert result["precision"] == pytest.approx(1.0)


def test_users_without_relevant_items_are_not_scored() -> None:
    acc = RankingAccumulator([1], n_catalogue=3)
    acc.add(np.array([[0], [1]]), np.array([[True, False, False], [False, False, False]]))
    assert acc.n_users == 1
    assert acc.result()[1]["precision"] == 1.0


def test_unrankable_relevant_items_still_count_in_recall() -> None:
    hits = np.array([[True, False]])
    per_user = metrics_from_hits(hits, np.array([4]), 2)
    assert per_user["recall"][0] == pytest.approx(0.25)


def test_top_k_excludes_seen_items_and_sorts() -> None:
    scores = np.array([[0.9, 0.1, 0.8, 0.5]])
    seen = sp.csr_matrix(np.array([[1, 0, 0, 0]], dtype=np.float32))
    assert top_k(scores, 2, seen).tolist() == [[2, 3]]
    assert top_k(scores, 2).tolist() == [[0, 2]]


def test_evaluate_model_excludes_training_items_and_scores_only_shared_users() -> None:
    train = pd.DataFrame({"user": ["a", "a", "b", "c", "c", "d"], "item": ["x", "y", "x", "z", "y", "x"]})
    data = encode(train, ["a", "b", "c", "d"], ["x", "y", "z"])
    # Popularity ranks x first for everyone; a has seen it, so a's first slot must be z.
    test = pd.DataFrame({"user": ["a", "b", "ghost"], "item": ["z", "y", "x"]})
    by_k, n_users = evaluate_model(Popularity.fit(data.matrix), data, test, ks=[1])
    assert n_users == 2  # "ghost" is not in train; c has no test items
    # a: the only unseen item is z (hit); b: y (seen twice) beats z (once) among unseen -> hit
    assert by_k[1]["precision"] == pytest.approx(1.0)
